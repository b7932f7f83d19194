"""The nemesis: the fault catalogue and its recorder."""

from harness.engines.swarm_nodes import faults as node_faults  # noqa: F401 - registers the host faults
from harness.nemesis import swarm_faults  # noqa: F401 - registers the swarm engine's faults
from harness.nemesis.faults import CATALOGUE, Fault
from harness.nemesis.nemesis import ActiveFault, Nemesis

__all__ = ["CATALOGUE", "ActiveFault", "Fault", "Nemesis"]
