"""Checkers: pure functions over a history -> ``{"valid": True | False | "unknown", ...}``."""

from harness.checkers.after_recovery import after_recovery
from harness.checkers.availability import availability, counts
from harness.checkers.compose import UNKNOWN, Checker, Validity, check_safe, compose, merge_valid
from harness.checkers.fault_effect import fault_effect
from harness.checkers.faults import Fault, faults
from harness.checkers.rpo import rpo
from harness.checkers.rto import rto
from harness.checkers.split_brain import split_brain

__all__ = [
    "UNKNOWN",
    "Checker",
    "Fault",
    "Validity",
    "after_recovery",
    "availability",
    "check_safe",
    "compose",
    "counts",
    "fault_effect",
    "faults",
    "merge_valid",
    "rpo",
    "rto",
    "split_brain",
]
