"""Split brain: at no sampled moment may two nodes acknowledge writes.

Samples come from direct probes (f "writable"): each lists the nodes that
are primaries (not in recovery) and those that acknowledged a test write.
Two acknowledging nodes in one sample is a split brain (invalid). Two
primaries of which at most one acknowledges (an isolated old leader whose
commits wait forever for its synchronous standby) is reported as
`role_overlap` with its duration, not judged: no client can get a write
acknowledged there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness.history import Op


def split_brain(ops: Sequence[Op], *, f: str = "writable") -> dict[str, Any]:
    samples = [op for op in ops if op.f == f and op.type == "ok" and isinstance(op.value, (dict, list))]
    if not samples:
        return {"valid": "unknown", "samples": 0, "error": "no writable samples in the history"}

    def nodes(op: Op, key: str) -> list[str]:
        return op.value if isinstance(op.value, list) else op.value.get(key, [])

    split = [{"time": op.time, "acknowledging": nodes(op, "acknowledging")}
             for op in samples if len(nodes(op, "acknowledging")) > 1]
    overlap = [op.time for op in samples if len(nodes(op, "primaries")) > 1]
    return {
        "valid": not split,
        "samples": len(samples),
        "split_brain": split[:20],
        "role_overlap": {"samples": len(overlap),
                         "first_s": overlap[0] if overlap else None,
                         "last_s": overlap[-1] if overlap else None},
        "reason": f"two nodes acknowledged writes at once: {split[:3]}" if split else "",
    }
