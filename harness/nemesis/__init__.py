"""The nemesis: the fault catalogue and its recorder."""

from harness.nemesis.faults import CATALOGUE, Fault
from harness.nemesis.nemesis import ActiveFault, Nemesis

__all__ = ["CATALOGUE", "ActiveFault", "Fault", "Nemesis"]
