"""Every RTO explained by phase: a recovery timeline per fault, from the
components' own evidence (the ``phase-*`` ops of harness.load.phase_recorder).

For each fault (a nemesis op), in causal order, the first moment after it that:

- ``gone``: the old leader's postmaster stopped being a primary (down, or a replica);
- ``dcs``: Patroni's ``/cluster`` stopped naming the old leader (key released/expired);
- ``promoted``: a member's postmaster answered as a primary again (``pg_is_in_recovery()`` false);
- ``router``: a write through the router's port succeeded;
- ``pooler``: a write through the pooler's port succeeded;
- ``clients``: a client write (the load's) succeeded.

``at_s`` is seconds after the fault; ``duration_s`` runs from the latest earlier
phase (0 when observed out of order, e.g. a DCS sample behind a promotion).
A phase the stack does not have, or that no sample showed, is absent (never 0).
Each Patroni group has its own lane (Citus worker groups included): a fault on a
member of a worker group is timed against that group's DCS view and postmasters;
the router, pooler and clients phases are the cluster's, through the coordinator.
The "old leader" is the leader the DCS named just before the fault. A fault
after which the leader never went gets no phases. The checker explains; it
never fails a verdict: valid is True, or "unknown" without any phase samples.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from harness.checkers.compose import UNKNOWN
from harness.checkers.faults import Fault
from harness.checkers.faults import faults as find_faults
from harness.history import OBSERVER, Op

PHASE_CLUSTER: Final = "phase-cluster"  # the same names as harness.load.phase_recorder (no import:
PHASE_PG: Final = "phase-pg"  # checkers stay free of the load's dependencies)
PHASE_WRITE: Final = "phase-write"
PHASE_FS: Final = frozenset({PHASE_CLUSTER, PHASE_PG, PHASE_WRITE})
PHASES: Final = ("gone", "dcs", "promoted", "router", "pooler", "clients")
GOVERNED_BY: Final[dict[str, list[str]]] = {
    "gone": ["the fault itself (docker stop timeout, PostgreSQL shutdown mode)"],
    "dcs": ["Patroni ttl", "Patroni loop_wait", "Patroni retry_timeout"],
    "promoted": ["Patroni loop_wait"],
    "router": ["HAProxy inter", "HAProxy fall", "HAProxy rise"],
    "pooler": ["PgBouncer server_connect_timeout", "PgBouncer query_wait_timeout",
               "PgBouncer server_check_delay"],
    "clients": ["client retry", "client connect_timeout"],
}
SHORT: Final = {
    "gone": "the fault itself",
    "dcs": "Patroni ttl/loop_wait/retry_timeout",
    "promoted": "Patroni loop_wait",
    "router": "HAProxy inter/fall/rise",
    "pooler": "PgBouncer server_connect_timeout/query_wait_timeout/server_check_delay",
    "clients": "client retry/connect_timeout",
}
LEADER_ROLES: Final = ("leader", "master", "primary")


@dataclass
class Samples:
    """The recorder's state changes, each list sorted by time.

    ``cluster`` is the coordinator group's lane (samples without a group, or of the
    group recorded with role ``coordinator``); ``lanes`` holds every named group's
    (Citus worker groups get their own), ``members`` which members each lane listed.
    """

    cluster: list[tuple[float, str | None, bool]] = field(default_factory=list)  # (t, leader, answered)
    pg: dict[str, list[tuple[float, str]]] = field(default_factory=dict)  # member -> (t, state)
    writes: dict[str, list[tuple[float, bool]]] = field(default_factory=dict)  # via -> (t, ok)
    lanes: dict[str, list[tuple[float, str | None, bool]]] = field(default_factory=dict)  # group -> samples
    members: dict[str, set[str]] = field(default_factory=dict)  # group -> members it listed
    coordinator: str | None = None  # the coordinator group's name, when recorded

    @property
    def empty(self) -> bool:
        return not (self.cluster or self.pg or self.writes or self.lanes)

    def lane_of(self, target: str | None) -> tuple[str | None, list[tuple[float, str | None, bool]]]:
        """(group, its samples) of the group ``target`` belongs to; else the coordinator's lane."""
        for group, names in self.members.items():
            if target is not None and target in names and group != self.coordinator:
                return group, self.lanes[group]
        return self.coordinator, self.cluster


def collect(ops: Sequence[Op]) -> tuple[Samples, list[float]]:
    """The recorder's samples and the times of the clients' ok writes, from ``ops``."""
    s = Samples()
    client_oks: list[float] = []
    for op in ops:
        p = op.process
        if type(p) is int:
            if op.f == "write" and op.type == "ok":
                client_oks.append(op.time)
            continue
        if p != OBSERVER or op.type == "invoke":
            continue
        v = op.value if isinstance(op.value, dict) else {}
        if op.f == PHASE_CLUSTER:
            leader = v.get("leader") if op.type == "ok" else None
            sample = (op.time, leader if isinstance(leader, str) else None, op.type == "ok")
            group = v.get("group")
            if not isinstance(group, str) or v.get("role") == "coordinator":
                s.cluster.append(sample)
                if isinstance(group, str):
                    s.coordinator = group
            if isinstance(group, str):
                s.lanes.setdefault(group, []).append(sample)
                s.members.setdefault(group, set()).update(
                    str(m) for m in (v.get("members") or {}) if isinstance(m, str))
        elif op.f == PHASE_PG:
            member = v.get("member") or op.node
            if isinstance(member, str):
                state = v.get("state") if op.type == "ok" else "down"
                s.pg.setdefault(member, []).append((op.time, str(state)))
        elif op.f == PHASE_WRITE:
            via = v.get("via") or op.node
            if isinstance(via, str):
                s.writes.setdefault(via, []).append((op.time, op.type == "ok"))
    for lane in (s.cluster, *s.lanes.values()):
        lane.sort(key=lambda x: x[0])
    for states in s.pg.values():
        states.sort(key=lambda x: x[0])
    for writes in s.writes.values():
        writes.sort(key=lambda x: x[0])
    client_oks.sort()
    return s, client_oks


def _old_leader(s: Samples, t0: float, target: str | None,
                lane: list[tuple[float, str | None, bool]] | None = None,
                members: set[str] | None = None) -> str | None:
    """The leader the DCS named last before ``t0`` (in ``lane``, default the coordinator's);
    else the one primary postmaster (of ``members``, when given); else the target."""
    before = [c for c in (s.cluster if lane is None else lane) if c[0] <= t0 and c[2]]
    if before and before[-1][1] is not None:
        return before[-1][1]
    primaries = [m for m, lst in s.pg.items() if (members is None or m in members)
                 and (last := [st for t, st in lst if t <= t0]) and last[-1] == "primary"]
    if len(primaries) == 1:
        return primaries[0]
    return target


def _first_change(records: Sequence[tuple[Any, ...]], after: float, until: float, pred: Any) -> float | None:
    for t, *rest in records:
        if after < t <= until and pred(*rest):
            return float(t)
    return None


def _ok_since(records: list[tuple[float, bool]], since: float, floor: float, until: float) -> float | None:
    """When writes were ok at ``since`` (having become so after ``floor``), or first became ok after it."""
    times = [t for t, _ in records]
    i = bisect_right(times, since) - 1
    if i >= 0 and records[i][1] and records[i][0] > floor:
        return records[i][0]
    for t, ok in records[i + 1:]:
        if t > until:
            break
        if ok:
            return t
    return None


def fault_phases(s: Samples, client_oks: list[float], t0: float, until: float,
                 target: str | None = None) -> tuple[dict[str, float], str | None]:
    """Absolute times of each observed phase of the fault at ``t0`` (before ``until``), and the
    old leader, in the lane of the group ``target`` belongs to (see :meth:`Samples.lane_of`)."""
    group, lane = s.lane_of(target)
    members = s.members.get(group) if group is not None else None  # None: histories without groups
    old = _old_leader(s, t0, target, lane, members)
    at: dict[str, float] = {}
    if old is None:
        return at, None
    gone = _first_change(s.pg.get(old, []), t0, until, lambda st: st != "primary")
    if gone is not None:
        at["gone"] = gone
    dcs = _first_change(lane, t0, until, lambda leader, answered: answered and leader != old)
    if dcs is not None:
        at["dcs"] = dcs
    if gone is None and dcs is None:
        return {}, old  # the leader never went: nothing to explain
    floor = gone if gone is not None else dcs
    assert floor is not None
    # the old leader back as primary after it went, or another member as primary after the fault
    promoted = min((t for m, lst in s.pg.items() if members is None or m in members for t, st in lst
                    if (floor if m == old else t0) < t <= until and st == "primary"), default=None)
    if promoted is not None:
        at["promoted"] = promoted
    since = promoted if promoted is not None else floor
    for via in ("router", "pooler"):
        if via in s.writes:
            t = _ok_since(s.writes[via], since, floor, until)
            if t is not None:
                at[via] = t
    i = bisect_left(client_oks, since)
    if i < len(client_oks) and client_oks[i] <= until:
        at["clients"] = client_oks[i]
    return at, old


def phases(ops: Sequence[Op]) -> dict[str, Any]:
    """Per fault: its phases (``at_s`` after the fault, ``duration_s``), the slowest and what governs it."""
    s, client_oks = collect(ops)
    return timelines(s, client_oks, find_faults(ops), ops[-1].time if ops else 0.0)


def timelines(s: Samples, client_oks: list[float], found: Sequence[Fault], end: float) -> dict[str, Any]:
    """:func:`phases` from samples already collected (the timeline picture's entry point)."""
    if s.empty:
        return {"valid": UNKNOWN, "faults": [], "error": "no phase samples in the history "
                "(the recovery-timeline recorder did not run)"}
    end = max([end] + [f.time for f in found])
    out = []
    for i, fault in enumerate(found):
        until = found[i + 1].time if i + 1 < len(found) else end
        at, old = fault_phases(s, client_oks, fault.time, until, fault.target)
        rows: list[dict[str, Any]] = []
        prev = 0.0
        for name in PHASES:
            if name not in at:
                continue
            at_s = at[name] - fault.time
            rows.append({"phase": name, "at_s": round(at_s, 3), "duration_s": round(max(0.0, at_s - prev), 3)})
            prev = max(prev, at_s)
        slowest = max(rows, key=lambda r: r["duration_s"])["phase"] if rows else None
        group, _ = s.lane_of(fault.target)
        entry: dict[str, Any] = {"fault": fault.index, "f": fault.f, "target": fault.target, "group": group,
                                 "old_leader": old, "phases": rows, "slowest": slowest,
                                 "governed_by": GOVERNED_BY[slowest] if slowest else []}
        if not rows:
            entry["note"] = "the leader was not seen to go: no recovery timeline"
        out.append(entry)
    return {"valid": True, "faults": out}


def explain(result: dict[str, Any]) -> str:
    """One line: the slowest phase of each fault and what governs it."""
    parts = []
    faults = [f for f in result.get("faults", []) if f.get("slowest")]
    for f in faults:
        row = next(r for r in f["phases"] if r["phase"] == f["slowest"])
        text = f"slowest phase: {f['slowest']} {row['duration_s']:.1f} s ({SHORT[f['slowest']]})"
        parts.append(text if len(faults) == 1 else f"fault #{f['fault']} {f.get('f')}: {text}")
    if parts:
        return "; ".join(parts)
    return f"no recovery timeline: {result.get('error') or 'the leader was not seen to go'}"
