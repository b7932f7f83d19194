"""Atomicity of multi-row transactions: transfers and paired inserts whole or absent,
no prepared transaction left behind, and read skew observed.

Inputs (``harness.load.bank``, ``harness.load.prepared_xacts``): ``transfer``
and ``paired-insert`` ops (invoke value ``{"key", ...}``), ``read-total`` ops,
the final ``bank-final`` read, and ``prepared-xacts`` samples. Each transfer
writes one entry per side beside its account's row, so the final state says
exactly which sides of which transfer were applied:

- an ``ok`` transfer must be applied once (both entries); an ``info`` one
  (unknown) may be applied once or not at all; a ``fail`` one not at all;
- one side only is a half-applied transfer; every entry twice, a double apply;
- every account's balance must equal its initial balance plus its entries,
  and the total must equal the initial total;
- an order and its line both present or both absent, with the same rules for
  ``ok`` / ``info`` / ``fail``;
- a ``read-total`` that differs from the initial total is a read skew (a note,
  or a failure when the stack promises one snapshot for multi-shard reads);
- a prepared transaction seen on a primary older than ``prepared_bound_s`` is
  an orphan (member, gid, age); without a bound it is reported, not judged;
- per fault, how long until transfers and paired inserts committed again
  (``checkers.rto`` over these kinds): a figure, never judged.

Findings are ``{"code", "severity", "text"}`` (``harness.verdict.Finding``).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any, Final

from harness.checkers.compose import UNKNOWN
from harness.checkers.rto import rto
from harness.history import OBSERVER, Op

TRANSFER: Final = "transfer"
PAIRED_INSERT: Final = "paired-insert"
READ_TOTAL: Final = "read-total"
BANK_FINAL: Final = "bank-final"
PREPARED_XACTS: Final = "prepared-xacts"
ATOMICITY_FS: Final = frozenset({TRANSFER, PAIRED_INSERT, READ_TOTAL, BANK_FINAL, PREPARED_XACTS})
_SHOWN: Final = 10


def _outcomes(ops: Sequence[Op], f: str) -> tuple[dict[int, dict[str, Any]], dict[int, str]]:
    """Per key of ``f``: its invoke value, and its outcome (``ok``/``fail``/``info``;
    ``info`` too for an invoke that never completed)."""
    values: dict[int, dict[str, Any]] = {}
    outcome: dict[int, str] = {}
    open_: dict[int | str, int] = {}
    for op in ops:
        if op.f != f or op.process == OBSERVER:
            continue
        if op.type == "invoke":
            if isinstance(op.value, dict) and isinstance(op.value.get("key"), int):
                key = op.value["key"]
                values[key] = op.value
                outcome[key] = "info"
                open_[op.process] = key
            continue
        key = open_.pop(op.process, None)
        if key is None and isinstance(op.value, dict):
            key = op.value.get("key")
        if key in outcome:
            outcome[key] = op.type
    return values, outcome


def _shown(items: Sequence[Any]) -> str:
    text = "; ".join(map(str, items[:_SHOWN]))
    return text + (f"; ... ({len(items)} in all)" if len(items) > _SHOWN else "")


def _shard_of(shards: dict[str, Any], table: str, key: int) -> str:
    s = (shards.get(table) or {}).get(str(key))
    return f" (shard {s[0]}, group {s[1]})" if isinstance(s, list) and len(s) == 2 else ""


class _Findings(list[dict[str, str]]):
    def add(self, severity: str, code: str, text: str) -> None:
        self.append({"code": code, "severity": severity, "text": text})


def _transfers(values: dict[int, dict[str, Any]], outcome: dict[int, str], final: dict[str, Any],
               loss_allowed: bool, out: _Findings) -> dict[str, Any]:
    shards = final.get("shards") or {}
    entries: dict[int, Counter[tuple[int, int]]] = defaultdict(Counter)
    for key, account, amount in final.get("entries", []):
        entries[key][(account, amount)] += 1
    half, doubled, lost, failed_applied, unexpected, wrong = [], [], [], [], [], []
    applied = 0
    for key, seen in sorted(entries.items()):
        v = values.get(key)
        if v is None:
            unexpected.append(key)
            continue
        debit, credit = (v["from"], -v["amount"]), (v["to"], v["amount"])
        if set(seen) - {debit, credit}:
            wrong.append(f"transfer {key}: entries {sorted(seen.items())} do not match {v}")
            continue
        d, c = seen[debit], seen[credit]
        if d != c:
            side = (f"debited {v['from']}{_shard_of(shards, 'bank_accounts', v['from'])} ×{d}, "
                    f"credited {v['to']}{_shard_of(shards, 'bank_accounts', v['to'])} ×{c}")
            half.append(f"transfer {key} ({outcome.get(key)}, {v['amount']} from {v['from']} "
                        f"to {v['to']}): {side}")
        elif d > 1:
            doubled.append(f"transfer {key} ({outcome.get(key)}): applied {d} times")
        if outcome.get(key) == "fail":
            failed_applied.append(key)
        applied += 1
    for key, typ in outcome.items():
        if typ == "ok" and key not in entries:
            lost.append(key)
    if half:
        out.add("fail", "atomicity-half-applied",
                f"{len(half)} transfer(s) applied on one side only: {_shown(half)}")
    if doubled:
        out.add("fail", "atomicity-doubled",
                f"{len(doubled)} transfer(s) applied more than once: {_shown(doubled)}")
    if wrong:
        out.add("fail", "atomicity-corrupt", f"{len(wrong)} transfer(s) with entries they never wrote: "
                f"{_shown(wrong)}")
    if lost:
        out.add("note" if loss_allowed else "fail", "atomicity-lost",
                f"{len(lost)} acknowledged transfer(s) not applied: keys {_shown(sorted(lost))}")
    if failed_applied:
        out.add("fail", "atomicity-failed-applied", f"{len(failed_applied)} transfer(s) reported rolled back "
                f"but applied: keys {_shown(sorted(failed_applied))}")
    if unexpected:
        out.add("fail", "atomicity-unexpected", f"{len(unexpected)} transfer entr(ies) no client wrote: "
                f"keys {_shown(unexpected)}")
    # every balance explained by its own entries (a shard's local view), and the invariant
    initial = {a: b for a, b in final.get("initial", [])}
    balances = {a: b for a, b in final.get("accounts", [])}
    moved: Counter[int] = Counter()
    for _key, account, amount in final.get("entries", []):
        moved[account] += amount
    off = [f"account {a}{_shard_of(shards, 'bank_accounts', a)}: balance {balances.get(a)}, "
           f"initial {b} + entries {moved[a]} = {b + moved[a]}"
           for a, b in sorted(initial.items()) if balances.get(a) != b + moved[a]]
    if off:
        out.add("fail", "atomicity-balance", f"{len(off)} balance(s) disagree with their transfers: {_shown(off)}")
    counts = Counter(outcome.values())
    return {"acknowledged": counts["ok"], "unknown": counts["info"], "failed": counts["fail"],
            "applied": applied, "unknown_applied": sum(1 for k in entries if outcome.get(k) == "info"),
            "half_applied": len(half), "doubled": len(doubled), "lost": len(lost),
            "failed_applied": len(failed_applied), "unexpected": len(unexpected),
            "total_initial": sum(initial.values()), "total_final": sum(balances.values()),
            "accounts": len(balances)}


def _paired(values: dict[int, dict[str, Any]], outcome: dict[int, str], final: dict[str, Any],
            loss_allowed: bool, out: _Findings) -> dict[str, Any]:
    shards = final.get("shards") or {}
    orders, lines = set(final.get("orders", [])), set(final.get("lines", []))
    def which(k: int) -> str:
        order, line = _shard_of(shards, "bank_orders", k), _shard_of(shards, "bank_order_lines", k)
        return f"order{order} without its line{line}" if k in orders else f"line{line} without its order{order}"

    half = [f"key {k} ({outcome.get(k)}): {which(k)}" for k in sorted(orders ^ lines)]
    present = orders | lines
    lost = sorted(k for k, t in outcome.items() if t == "ok" and k not in present)
    failed_applied = sorted(k for k in present if outcome.get(k) == "fail")
    unexpected = sorted(k for k in present if k not in values)
    if half:
        out.add("fail", "atomicity-half-applied", f"{len(half)} paired insert(s) half present: {_shown(half)}")
    if lost:
        out.add("note" if loss_allowed else "fail", "atomicity-lost",
                f"{len(lost)} acknowledged paired insert(s) absent: keys {_shown(lost)}")
    if failed_applied:
        out.add("fail", "atomicity-failed-applied", f"{len(failed_applied)} paired insert(s) reported rolled "
                f"back but present: keys {_shown(failed_applied)}")
    if unexpected:
        out.add("fail", "atomicity-unexpected", f"{len(unexpected)} paired row(s) no client wrote: "
                f"keys {_shown(unexpected)}")
    counts = Counter(outcome.values())
    return {"acknowledged": counts["ok"], "unknown": counts["info"], "failed": counts["fail"],
            "whole": len(orders & lines), "half_applied": len(half), "lost": len(lost),
            "failed_applied": len(failed_applied), "unexpected": len(unexpected)}


def _read_skew(ops: Sequence[Op], invariant: int | None, snapshot_reads: bool,
               out: _Findings) -> list[dict[str, Any]]:
    if invariant is None:
        return []
    skew = [{"time": round(op.time, 3), "total": op.value.get("total"), "expected": invariant}
            for op in ops if op.f == READ_TOTAL and op.type == "ok" and isinstance(op.value, dict)
            and op.value.get("total") != invariant]
    if skew:
        shown = [f"{s['total']} at {s['time']:.3f} s" for s in skew]
        what = (f"{len(skew)} read(s) of the total differ from the invariant {invariant}: {_shown(shown)}")
        if snapshot_reads:
            out.add("fail", "read-skew", what + " (the target row promises one snapshot for multi-shard reads)")
        else:
            out.add("note", "read-skew", what + " (multi-shard reads have no single distributed snapshot)")
    return skew


def _prepared(ops: Sequence[Op], bound_s: float | None, out: _Findings) -> dict[str, Any]:
    samples = [op for op in ops if op.f == PREPARED_XACTS and op.process == OBSERVER and op.type == "ok"
               and isinstance(op.value, dict)]
    oldest: dict[tuple[str, str], dict[str, Any]] = {}
    for op in samples:
        if not op.value.get("primary"):
            continue
        for x in op.value.get("xacts") or []:
            k = (op.value.get("member", "?"), x.get("gid", "?"))
            if k not in oldest or x.get("age_s", 0) > oldest[k]["age_s"]:
                oldest[k] = {"member": k[0], "gid": k[1], "age_s": x.get("age_s", 0), "time": round(op.time, 3)}
    longest = max(oldest.values(), key=lambda x: x["age_s"], default=None)
    res: dict[str, Any] = {"samples": len(samples), "longest": longest, "bound_s": bound_s}
    if not samples:
        return res
    if bound_s is None:
        if longest is not None:
            out.add("note", "prepared-unjudged", f"prepared transactions seen on primaries (no bound in the "
                    f"target row): longest {longest['gid']} on {longest['member']}, {longest['age_s']:.1f} s")
        return res
    orphans = sorted((x for x in oldest.values() if x["age_s"] > bound_s), key=lambda x: -x["age_s"])
    res["orphans"] = orphans
    if orphans:
        shown = [f"{x['member']} gid {x['gid']} age {x['age_s']:.1f} s (at {x['time']:.1f} s)" for x in orphans]
        out.add("fail", "prepared-orphan", f"{len(orphans)} prepared transaction(s) older than "
                f"{bound_s:g} s on a primary: {_shown(shown)}")
    return res


_SHARD_SUFFIX = re.compile(r"_(\d+)$")
HELD_MIN_S: Final = 1.0  # a prepared transaction seen older than this is said to have held its shards


def _transfer_spans(ops: Sequence[Op]) -> list[tuple[float, float, str, dict[str, Any]]]:
    """Every completed transfer: (invoked, completed, outcome, value)."""
    invoked: dict[Any, float] = {}
    spans: list[tuple[float, float, str, dict[str, Any]]] = []
    for op in ops:
        if op.f != TRANSFER or not isinstance(op.value, dict):
            continue
        if op.type == "invoke":
            invoked[op.process] = op.time
        elif op.process in invoked:
            spans.append((invoked.pop(op.process), op.time, op.type, op.value))
    return spans


def _held_shards(ops: Sequence[Op], samples: Sequence[Op], final: dict[str, Any] | None,
                 out: _Findings) -> list[dict[str, Any]]:
    """What a prepared transaction's locks did to the load: per transaction seen on a primary
    older than HELD_MIN_S, the shards it held (its locked relations) from its PREPARE to the
    last sample showing it, and the transfers touching an account on those shards in that
    window — how many failed or stayed unknown, and for how long the shards were unavailable
    to them (first such transfer's invocation to the last one's completion). Noted, never judged
    (the row's prepared_xacts_s judges the age)."""
    held: dict[tuple[str, str], dict[str, Any]] = {}
    for op in samples:
        if not op.value.get("primary"):
            continue
        for x in op.value.get("xacts") or []:
            rels = [r for r in x.get("relations") or [] if isinstance(r, str)]
            if not rels:
                continue
            k = (op.value.get("member", "?"), x.get("gid", "?"))
            h = held.setdefault(k, {"member": k[0], "gid": k[1], "prepared_at": op.time - x.get("age_s", 0.0),
                                    "last_seen": op.time, "age_s": 0.0, "relations": set()})
            h["prepared_at"] = min(h["prepared_at"], op.time - x.get("age_s", 0.0))
            h["last_seen"] = max(h["last_seen"], op.time)
            h["age_s"] = max(h["age_s"], x.get("age_s", 0.0))
            h["relations"].update(rels)
    account_shard = {int(k): v[0] for k, v in ((final or {}).get("shards") or {}).get("bank_accounts", {}).items()
                     if isinstance(v, list) and v}
    spans = _transfer_spans(ops)
    res = []
    for h in sorted(held.values(), key=lambda h: -h["age_s"]):
        if h["age_s"] < HELD_MIN_S:
            continue
        shards = sorted({int(m.group(1)) for r in h["relations"] if (m := _SHARD_SUFFIX.search(r))})
        start, end = h["prepared_at"], h["last_seen"]
        touching = [sp for sp in spans if sp[0] <= end and sp[1] >= start
                    and {account_shard.get(sp[3].get("from", -1)), account_shard.get(sp[3].get("to", -1))}
                    & set(shards)]
        bad = [sp for sp in touching if sp[2] in ("fail", "info")]
        unavailable = round(max(sp[1] for sp in bad) - min(sp[0] for sp in bad), 3) if bad else 0.0
        entry = {"member": h["member"], "gid": h["gid"], "age_s": round(h["age_s"], 3),
                 "from_s": round(start, 3), "to_s": round(end, 3), "relations": sorted(h["relations"]),
                 "shards": shards, "transfers_touching": len(touching), "transfers_failed": len(bad),
                 "unavailable_s": unavailable}
        res.append(entry)
        out.add("note", "prepared-locks",
                f"prepared {h['gid']} on {h['member']} held {', '.join(sorted(h['relations'])) or 'no table'} "
                f"for {h['age_s']:.1f} s ({start:.1f}-{end:.1f} s): {len(bad)} of {len(touching)} transfers "
                f"touching those shards failed or stayed unknown"
                + (f", unavailable for {unavailable:.1f} s" if bad else ""))
    return res


def atomicity(ops: Sequence[Op], *, prepared_bound_s: float | None = None, snapshot_reads: bool = False,
              loss_allowed: bool = False) -> dict[str, Any]:
    """Judge the bank, paired-insert and prepared-transaction evidence of ``ops`` (module doc).

    ``valid``: False when a finding fails, "unknown" when there is no ok ``bank-final``
    (while transfers or paired inserts were made), else True.
    """
    out = _Findings()
    t_values, t_outcome = _outcomes(ops, TRANSFER)
    p_values, p_outcome = _outcomes(ops, PAIRED_INSERT)
    final_op = None
    for op in ops:
        if op.f == BANK_FINAL and op.type == "ok" and isinstance(op.value, dict):
            final_op = op
    res: dict[str, Any] = {}
    invariant = None
    if final_op is None:
        if t_values or p_values:
            out.add("unknown", "atomicity-unknown", "no final read of the bank's state (bank-final): "
                    "transfers and paired inserts cannot be judged")
    else:
        final = final_op.value
        res["transfers"] = _transfers(t_values, t_outcome, final, loss_allowed, out)
        res["paired"] = _paired(p_values, p_outcome, final, loss_allowed, out)
        invariant = res["transfers"]["total_initial"]
        if res["transfers"]["total_final"] != invariant:
            out.add("fail", "atomicity-total", f"total of the balances {res['transfers']['total_final']} "
                    f"!= invariant {invariant}")
    if t_values or p_values:  # the same RTO definition as single-row writes, over these kinds
        recovery = rto(ops, fs=[f for f, v in ((TRANSFER, t_values), (PAIRED_INSERT, p_values)) if v])
        res["rto_s"] = {str(f["index"]): {k: None if x is None else round(x, 3) for k, x in f["rto_s"].items()}
                        for f in recovery.get("faults", [])}
    res["read_skew"] = _read_skew(ops, invariant, snapshot_reads, out)
    res["prepared"] = _prepared(ops, prepared_bound_s, out)
    samples = [op for op in ops if op.f == PREPARED_XACTS and op.process == OBSERVER and op.type == "ok"
               and isinstance(op.value, dict)]
    res["prepared"]["held"] = _held_shards(ops, samples, final_op.value if final_op else None, out)
    severities = {f["severity"] for f in out}
    valid: bool | str = False if "fail" in severities else (UNKNOWN if "unknown" in severities else True)
    reason = "; ".join(f["text"] for f in out if f["severity"] in ("fail", "unknown"))
    return {"valid": valid, "reason": reason, "findings": list(out), **res}
