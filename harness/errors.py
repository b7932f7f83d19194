"""Errors the harness reports to a person: one clear line, exit code 2."""


class PgchaosError(Exception):
    """A user-facing error; its message is the whole explanation."""

    exit_code = 2
