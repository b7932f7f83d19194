"""The Docker Swarm engine (`--engine swarm`): the guide's `docker stack deploy`."""

from harness.engines.swarm.deployment import DEFAULT_STACK, STACK_FILE, SwarmDeployment

ENGINE = SwarmDeployment

__all__ = ["DEFAULT_STACK", "ENGINE", "STACK_FILE", "SwarmDeployment"]
