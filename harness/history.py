"""The history: an append-only JSONL log of ops (invoke -> ok / fail / info).

One op per line with the fields of :class:`Op`. Clients use an integer
``process``; the nemesis uses ``"nemesis"``. Several processes may write
separate files on one timeline (same ``run_start``) and be merged afterwards
with :func:`merge_histories`.
"""

from __future__ import annotations

import gc
import heapq
import json
import math
import threading
import time as _time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, cast

from harness.errors import PgchaosError


def _stdlib_loads(line: bytes) -> Any:
    return json.loads(line.decode("utf-8"))


_loads: Callable[[Any], Any]
try:
    from orjson import loads as _loads
except ImportError:  # orjson is an optional speed-up
    _loads = _stdlib_loads

OpType = Literal["invoke", "ok", "fail", "info"]
OP_TYPES: Final = frozenset({"invoke", "ok", "fail", "info"})
NEMESIS: Final = "nemesis"
OBSERVER: Final = "observer"  # what was seen of a fault's effect (f "fault-effect")
MONITOR: Final = "monitor"  # alerting: expected alerts, firing/resolved notifications, the watch window
NAMED_PROCESSES: Final = frozenset({NEMESIS, OBSERVER, MONITOR})
# observer op (type "info", value None) where the run stopped its load: an invoke still
# open there was unavailable from its invocation to this point
LOAD_STOP: Final = "load-stop"
HEAL: Final = "heal"
# ops whose value["fault"] names a fault op
FAULT_REFS: Final = frozenset({HEAL, "fault-effect", "expect-alerts"})
REQUIRED_FIELDS: Final = ("index", "time", "process", "type", "f", "value")


class HistoryFormatError(PgchaosError, ValueError):
    """A history line that breaks the format; ``line`` is 1-based."""

    def __init__(self, line: int, problem: str, path: str | Path | None = None) -> None:
        self.line = line
        self.problem = problem
        self.path = None if path is None else str(path)
        where = f"{self.path}: line {line}" if self.path else f"line {line}"
        super().__init__(f"{where}: {problem}")


@dataclass(slots=True)
class Op:
    """One operation (or fault) in the history."""

    index: int
    time: float
    process: int | str
    type: OpType
    f: str
    value: Any
    node: str | None = None
    error: Any = None

    @property
    def is_nemesis(self) -> bool:
        return self.process == NEMESIS

    def to_dict(self) -> dict[str, Any]:
        """The JSON object for this op; optional fields only when set."""
        d: dict[str, Any] = {
            "index": self.index,
            "time": self.time,
            "process": self.process,
            "type": self.type,
            "f": self.f,
            "value": self.value,
        }
        if self.node is not None:
            d["node"] = self.node
        if self.error is not None:
            d["error"] = self.error
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False)


def _type_name(x: object) -> str:
    return "null" if x is None else type(x).__name__


def op_from_dict(d: Any, line: int = 0, prev_index: int | None = None) -> Op:
    """Validate one decoded line and build its :class:`Op`.

    Raises :class:`HistoryFormatError` naming ``line`` and the problem.
    Unknown extra fields are ignored.
    """
    if type(d) is not dict:
        raise HistoryFormatError(line, f"expected a JSON object, got {_type_name(d)}")
    try:
        index = d["index"]
        t = d["time"]
        process = d["process"]
        typ = d["type"]
        f = d["f"]
        value = d["value"]
    except KeyError:
        missing = [k for k in REQUIRED_FIELDS if k not in d]
        raise HistoryFormatError(
            line, f"missing field(s) {', '.join(map(repr, missing))}"
        ) from None
    if type(index) is not int:
        raise HistoryFormatError(line, f"'index' must be an integer, got {_type_name(index)}")
    if prev_index is not None and index <= prev_index:
        raise HistoryFormatError(line, f"'index' must increase: {index} after {prev_index}")
    tt = type(t)
    if tt is not float and tt is not int:
        raise HistoryFormatError(line, f"'time' must be a number, got {_type_name(t)}")
    if not math.isfinite(t) if tt is float else abs(t) > 2**53:
        raise HistoryFormatError(line, f"'time' must be a finite number of seconds, got {t}")
    if type(process) is not int and process not in NAMED_PROCESSES:
        raise HistoryFormatError(
            line, f"'process' must be an integer or \"nemesis\" (or \"observer\", \"monitor\"), got {process!r}"
        )
    if type(typ) is not str or typ not in OP_TYPES:
        raise HistoryFormatError(line, f"'type' must be one of invoke, ok, fail, info; got {typ!r}")
    if type(f) is not str:
        raise HistoryFormatError(line, f"'f' must be a string, got {_type_name(f)}")
    node = d.get("node")
    if node is not None and type(node) is not str:
        raise HistoryFormatError(line, f"'node' must be a string, got {_type_name(node)}")
    return Op(index, float(t), process, cast(OpType, typ), f, value, node, d.get("error"))


def _json_problem(e: ValueError) -> str:
    if isinstance(e, UnicodeDecodeError):
        return f"invalid UTF-8 at byte {e.start}"
    if isinstance(e, json.JSONDecodeError):
        return f"invalid JSON at column {e.colno}: {e.msg}"
    return f"invalid JSON: {e}"


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while building many acyclic objects (a large speed-up)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def read_history(path: str | Path) -> list[Op]:
    """Read a whole history file, validating every line; blank lines are skipped.

    Raises :class:`HistoryFormatError` naming the 1-based line and the problem.
    """
    with gc_paused():
        return _read_history(path)


def _read_history(path: str | Path) -> list[Op]:
    loads, types = _loads, OP_TYPES
    ops: list[Op] = []
    append = ops.append
    prev = -1
    with open(path, "rb") as fh:
        for n, raw in enumerate(fh, 1):
            try:
                d = loads(raw)
            except ValueError as e:
                if not raw.strip():
                    continue
                raise HistoryFormatError(n, _json_problem(e), path) from None
            # Fast path for well-formed lines; anything unusual gets the full check.
            if type(d) is dict:
                g = d.get
                index, t, process, typ, f = g("index"), g("time"), g("process"), g("type"), g("f")
                node = g("node")
                if (
                    type(index) is int
                    and index > prev
                    and type(t) is float
                    and t - t == 0.0
                    and (type(process) is int or process in NAMED_PROCESSES)
                    and type(typ) is str
                    and typ in types
                    and type(f) is str
                    and "value" in d
                    and (node is None or type(node) is str)
                ):
                    append(Op(index, t, process, cast(OpType, typ), f, d["value"], node, g("error")))
                    prev = index
                    continue
            try:
                op = op_from_dict(d, n, None if not ops else prev)
            except HistoryFormatError as e:
                raise HistoryFormatError(n, e.problem, path) from None
            append(op)
            prev = op.index
    return ops


def write_history(path: str | Path, ops: Iterable[Op]) -> None:
    """Write ops to ``path`` as JSONL (overwriting it)."""
    with open(path, "w", encoding="utf-8") as fh:
        for op in ops:
            fh.write(op.to_json())
            fh.write("\n")


_encode_value = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
_encode_str = json.encoder.encode_basestring_ascii  # what json.dumps uses for str (ensure_ascii)
_float_repr = float.__repr__  # what json.dumps uses for a finite float
# the encoded `,"process":…,"type":…,"f":…,"value":` part, per (process, type, f): few distinct values
_FIXED: dict[tuple[bool, int | str, str, str], str] = {}


def _encode_line(op: Op) -> str:
    """``op.to_json() + "\\n"``, byte for byte, built without a dict per op.

    Each field is encoded by the function json.dumps itself uses for it; the
    combinations of process, type and f repeat, so their text is cached.
    """
    t, process, f = op.time, op.process, op.f
    tp = type(process)
    if (type(t) is not float or t - t != 0.0  # inf or nan: json raises its usual error
            or (tp is not int and tp is not str) or type(f) is not str or type(op.type) is not str):
        return op.to_json() + "\n"
    fixed_key = (tp is int, process, op.type, f)
    head = _FIXED.get(fixed_key)
    if head is None:
        head = (f',"process":{_encode_value(process)},"type":{_encode_str(op.type)},'
                f'"f":{_encode_str(f)},"value":')
        if len(_FIXED) < 10_000:
            _FIXED[fixed_key] = head
    value = op.value
    tv = type(value)
    if value is None:
        v = "null"
    elif tv is int:
        v = int.__repr__(value)
    elif tv is str:
        v = _encode_str(value)
    else:
        v = _encode_value(value)
    line = f'{{"index":{int.__repr__(op.index)},"time":{_float_repr(t)}{head}{v}'
    if op.node is not None:
        line += f',"node":{_encode_value(op.node)}'
    if op.error is not None:
        line += f',"error":{_encode_value(op.error)}'
    return line + "}\n"


class HistoryWriter:
    """Thread-safe appender of ops to one JSONL file, one flushed line per op.

    ``time`` defaults to ``time.monotonic() - run_start``; give every writer
    of one run the same ``run_start`` so their files share a timeline. Give
    writers of separate files distinct ``index_offset``s (or merge them with
    :func:`merge_histories`, which re-numbers).
    """

    def __init__(
        self, path: str | Path, run_start: float | None = None, index_offset: int = 0
    ) -> None:
        self.path = Path(path)
        self.run_start = _time.monotonic() if run_start is None else run_start
        self._next = index_offset
        self._lock = threading.Lock()
        self._fh = open(self.path, "w", encoding="utf-8")  # noqa: SIM115

    def append(
        self,
        process: int | str,
        type: OpType,
        f: str,
        value: Any = None,
        node: str | None = None,
        error: Any = None,
        time: float | None = None,
    ) -> Op:
        """Record one op; returns it with its ``index`` and ``time`` assigned."""
        if type not in OP_TYPES:
            raise ValueError(f"type must be one of {sorted(OP_TYPES)}, got {type!r}")
        with self._lock:
            t = _time.monotonic() - self.run_start if time is None else float(time)
            op = Op(self._next, t, process, type, f, value, node, error)
            self._fh.write(_encode_line(op))
            self._fh.flush()
            self._next += 1
        return op

    def now(self) -> float:
        """The current time on this writer's timeline."""
        return _time.monotonic() - self.run_start

    @property
    def closed(self) -> bool:
        return self._fh.closed

    def close(self) -> None:
        with self._lock:
            if not self._fh.closed:
                self._fh.close()

    def __enter__(self) -> HistoryWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def merge_histories(paths: Iterable[str | Path],
                    remap: dict[tuple[int, int], int] | None = None) -> list[Op]:
    """Merge several history files by ``time`` and re-number ``index`` from 0.

    Ties keep file order, then line order. A heal's or a fault-effect
    observation's ``value["fault"]`` that refers to an op of its own file is
    rewritten to that op's new index. ``remap``, when given, receives every
    (file position, old index) -> new index, for references kept outside the files.
    """
    def stream(src: int, path: str | Path) -> Iterator[tuple[float, int, int, Op]]:
        # a function, not a nested generator expression: `src` must bind per file
        return ((op.time, src, n, op) for n, op in enumerate(read_history(path)))

    streams = [stream(i, p) for i, p in enumerate(paths)]
    remap = {} if remap is None else remap
    merged: list[Op] = []
    for new, (_, src, _n, op) in enumerate(heapq.merge(*streams, key=lambda x: x[:3])):
        remap[(src, op.index)] = new
        if op.f in FAULT_REFS and isinstance(op.value, dict) and type(op.value.get("fault")) is int:
            ref = remap.get((src, op.value["fault"]))
            if ref is not None:
                op.value = {**op.value, "fault": ref}
        op.index = new
        merged.append(op)
    return merged


def pair_invocations(ops: list[Op]) -> list[int | None]:
    """For each op, the position of its invocation (completions only), else None.

    A completion pairs with the open invoke of the same process. Completions
    without a preceding invoke are tolerated and get None.
    """
    open_: dict[int | str, int] = {}
    out: list[int | None] = [None] * len(ops)
    for i, op in enumerate(ops):
        if op.type == "invoke":
            open_[op.process] = i
        else:
            out[i] = open_.pop(op.process, None)
    return out


def pending_invocations(ops: list[Op]) -> list[int]:
    """Positions of invokes that never completed (outcome unknown, like ``info``)."""
    open_: dict[int | str, int] = {}
    pending: list[int] = []
    for i, op in enumerate(ops):
        if op.type == "invoke":
            prev = open_.get(op.process)
            if prev is not None:
                pending.append(prev)
            open_[op.process] = i
        else:
            open_.pop(op.process, None)
    pending.extend(open_.values())
    pending.sort()
    return pending
