"""The compose engine (`--engine compose`, the default)."""

from harness.engines.base import remove_project_resources
from harness.engines.compose.deployment import ComposeDeployment, attachable_projects

ENGINE = ComposeDeployment

__all__ = ["ENGINE", "ComposeDeployment", "attachable_projects", "remove_project_resources"]
