"""Composing checkers: merged validity, and crash-safe checking (Jepsen's compose / check-safe)."""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final, Literal

from harness.history import Op

UNKNOWN: Final = "unknown"
Validity = bool | Literal["unknown"]
Checker = Callable[[Sequence[Op]], dict[str, Any]]


def merge_valid(validities: Iterable[Validity]) -> Validity:
    """Any False -> False; else any "unknown" -> "unknown"; else True (also when empty)."""
    result: Validity = True
    for v in validities:
        if v is False:
            return False
        if v is not True:
            result = UNKNOWN
    return result


def check_safe(checker: Checker, ops: Sequence[Op], **opts: Any) -> dict[str, Any]:
    """Run ``checker``; a crash or a malformed result yields "unknown", never a pass."""
    try:
        result = checker(ops, **opts)
    except Exception as e:  # any crash must turn into "unknown"
        return {
            "valid": UNKNOWN,
            "error": f"{type(e).__name__}: {e}",
            "traceback": traceback.format_exc(limit=5),
        }
    if not isinstance(result, dict) or result.get("valid") not in (True, False, UNKNOWN):
        return {"valid": UNKNOWN, "error": f"checker returned no validity: {result!r:.200}"}
    return result


def compose(checkers: Mapping[str, Checker], ops: Sequence[Op]) -> dict[str, Any]:
    """Run every checker safely; ``{"valid": merged, name: result, ...}``."""
    if "valid" in checkers:
        raise ValueError("a checker cannot be named 'valid': the merged validity uses that key")
    results = {name: check_safe(c, ops) for name, c in checkers.items()}
    return {"valid": merge_valid(r["valid"] for r in results.values()), **results}
