"""pgchaos: chaos and verification harness for a distributed PostgreSQL cluster."""

__version__ = "0.1.0"
