"""Checkers: pure functions over a history -> ``{"valid": True | False | "unknown", ...}``."""

from harness.checkers.availability import availability, counts
from harness.checkers.compose import UNKNOWN, Checker, Validity, check_safe, compose, merge_valid
from harness.checkers.faults import Fault, faults
from harness.checkers.rpo import rpo
from harness.checkers.rto import rto

__all__ = [
    "UNKNOWN",
    "Checker",
    "Fault",
    "Validity",
    "availability",
    "check_safe",
    "compose",
    "counts",
    "faults",
    "merge_valid",
    "rpo",
    "rto",
]
