"""A Swarm of several hosts (`--engine swarm-nodes`): Docker-in-Docker nodes on one
machine (`nodes`), the stack deployed through a manager's engine (`deployment`),
Patroni members on distinct nodes (`placement`) and host faults (`faults`)."""

from harness.engines.swarm_nodes.deployment import SwarmNodesDeployment

ENGINE = SwarmNodesDeployment

__all__ = ["ENGINE", "SwarmNodesDeployment"]
