"""Split brain: at no sampled moment may two nodes be writable."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness.history import Op


def split_brain(ops: Sequence[Op], *, f: str = "writable") -> dict[str, Any]:
    """Invalid when any `writable` sample lists more than one node; unknown without samples."""
    samples = [op for op in ops if op.f == f and op.type == "ok" and isinstance(op.value, list)]
    if not samples:
        return {"valid": "unknown", "samples": 0, "error": "no writable samples in the history"}
    overlaps = [{"time": op.time, "writable": op.value} for op in samples if len(op.value) > 1]
    never = sum(1 for op in samples if not op.value)
    return {"valid": not overlaps, "samples": len(samples), "overlaps": overlaps[:20],
            "samples_without_writable_node": never}
