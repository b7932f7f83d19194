"""RPO: acknowledged writes missing from the final read, and the loss window."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness.checkers.compose import UNKNOWN
from harness.history import HEAL, NEMESIS, Op


def rpo(
    ops: Sequence[Op], *, write_f: str = "write", read_all_f: str = "read-all"
) -> dict[str, Any]:
    """Lost, unknown and unexpected keys against the last ok ``read-all``.

    - ``lost``: keys whose write was acknowledged (``ok``) before the final
      read was invoked and that the read does not contain.
    - ``late``: acknowledged keys absent from the read but acknowledged after
      the read was invoked (concurrent with it, so not judged lost).
    - ``unknown``: ``info`` writes plus writes invoked and never completed;
      never counted lost, present or not.
    - ``unexpected``: keys read that were never written or whose write failed.
    - ``window_s``: first fault time - earliest lost ack time, floored at 0
      (0 when nothing is lost; the lost writes' ack span when there was no fault).

    Validity is "unknown" when there is no ok ``read-all``.
    """
    acked: dict[Any, float] = {}
    failed: set[Any] = set()
    info: set[Any] = set()
    invoked: set[Any] = set()
    open_writes: dict[int | str, Any] = {}
    read_invoke: dict[int | str, float] = {}
    final: Op | None = None
    final_start = 0.0
    first_fault: float | None = None

    for op in ops:
        f, typ = op.f, op.type
        if f == write_f:
            if typ == "invoke":
                open_writes[op.process] = op.value
                invoked.add(op.value)
                continue
            invoked_key = open_writes.pop(op.process, None)
            key = invoked_key if op.value is None else op.value
            if typ == "ok":
                acked.setdefault(key, op.time)
            elif typ == "fail":
                failed.add(key)
            else:
                info.add(key)
        elif f == read_all_f:
            if typ == "invoke":
                read_invoke[op.process] = op.time
            elif typ == "ok":
                final = op
                final_start = read_invoke.pop(op.process, op.time)
            else:
                read_invoke.pop(op.process, None)
        elif first_fault is None and op.process == NEMESIS and typ == "info" and f != HEAL:
            first_fault = op.time

    unknown = (info | invoked) - acked.keys() - failed
    base: dict[str, Any] = {
        "unknown": len(unknown),
        "acknowledged": len(acked),
        "failed": len(failed),
    }
    if final is None:
        return {
            "valid": UNKNOWN,
            "error": f"no ok {read_all_f!r} in the history: RPO cannot be judged",
            "lost": None,
            "lost_keys": [],
            "window_s": None,
            "unexpected": None,
            **base,
        }
    if not isinstance(final.value, list):
        got = type(final.value).__name__
        raise TypeError(f"{read_all_f!r} value must be a list of keys, got {got}")

    present = set(final.value)
    missing = [k for k in acked if k not in present]
    lost = sorted(k for k in missing if acked[k] <= final_start)
    late = sorted(k for k in missing if acked[k] > final_start)
    written = invoked | acked.keys() | info | failed
    failed_only = failed - acked.keys() - info
    unexpected = sorted(k for k in present if k not in written or k in failed_only)

    window = 0.0
    if lost:
        ack_times = [acked[k] for k in lost]
        earliest = min(ack_times)
        end = max(ack_times) if first_fault is None else max(earliest, first_fault)
        window = end - earliest
    return {
        "valid": not lost and not unexpected,
        "lost": len(lost),
        "lost_keys": lost,
        "window_s": window,
        "unexpected": len(unexpected),
        "unexpected_keys": unexpected,
        "late": len(late),
        "late_keys": late,
        "duplicates": len(final.value) - len(present),
        "read_all_index": final.index,
        **base,
    }
