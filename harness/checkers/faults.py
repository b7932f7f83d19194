"""Faults in a history: each nemesis injection and the heal that ended it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from harness.history import HEAL, NEMESIS, Op

HEAL_ALL_TARGETS: Final = frozenset({"all", "*"})


@dataclass(slots=True)
class Fault:
    """One injected fault; ``healed_at`` is None while it stays open. ``heal_began`` is
    when its repair started (the heal op's ``began``; else ``healed_at``)."""

    index: int
    time: float
    f: str
    target: str | None
    healed_at: float | None = None
    heal_index: int | None = None
    heal_began: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "time": self.time,
            "f": self.f,
            "target": self.target,
            "healed_at": self.healed_at,
        }


def _target(op: Op) -> str | None:
    v = op.value
    t = v.get("target") if isinstance(v, dict) else None
    return t if isinstance(t, str) else op.node


def faults(ops: Sequence[Op]) -> list[Fault]:
    """Faults in history order, with heals matched to them.

    A fault is a nemesis ``info`` op whose ``f`` is not ``heal``. A heal
    closes the fault named by ``value["fault"]`` when that fault is open;
    otherwise the earliest open fault on the same target; a heal without a
    target (or targeting ``all``/``*``) closes every open fault.
    """
    found: list[Fault] = []
    by_index: dict[int, Fault] = {}
    for op in ops:
        if op.process != NEMESIS or op.type != "info":
            continue
        if op.f != HEAL:
            fault = Fault(op.index, op.time, op.f, _target(op))
            found.append(fault)
            by_index[op.index] = fault
            continue
        ref = op.value.get("fault") if isinstance(op.value, dict) else None
        chosen = by_index.get(ref) if type(ref) is int else None
        if chosen is not None and chosen.healed_at is None:
            closing = [chosen]
        else:
            target = _target(op)
            open_ = [x for x in found if x.healed_at is None]
            if target is None or target in HEAL_ALL_TARGETS:
                closing = open_
            else:
                closing = [x for x in open_ if x.target == target][:1]
        began = op.value.get("began") if isinstance(op.value, dict) else None
        began = float(began) if isinstance(began, int | float) and began <= op.time else op.time
        for x in closing:
            x.healed_at, x.heal_index = op.time, op.index
            x.heal_began = max(began, x.time)
    return found
