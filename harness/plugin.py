"""pytest plugin: options, markers and fixtures, thin over the harness library."""
