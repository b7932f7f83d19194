"""The stack: provisioning, topology and the steady-state check."""

from harness.stack.spec import StackSpec
from harness.stack.stack import Stack
from harness.stack.steady_state import SteadyState, steady_state, wait_for_steady_state
from harness.stack.topology import Topology, discover

__all__ = ["Stack", "StackSpec", "SteadyState", "Topology", "discover", "steady_state",
           "wait_for_steady_state"]
