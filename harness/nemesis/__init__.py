"""The nemesis: the fault catalogue and its recorder."""

from harness import engines
from harness.nemesis.faults import CATALOGUE, Fault
from harness.nemesis.nemesis import ActiveFault, Nemesis

engines.register_faults()  # each engine's own faults (e.g. Swarm's `docker service ...` operations)

__all__ = ["CATALOGUE", "ActiveFault", "Fault", "Nemesis"]
