"""Shared pieces of the Citus scenarios (`from citus_support import ...`):
one writer per worker group (keys whose shard of pgchaos.events lives on that
group, found with get_shard_id_for_distribution_column + pg_dist_placement),
per-group RTO / RPO over the merged history, and the bank's transfers across
worker groups (with the prepared-transaction watch) for any scenario to run. The runbook steps (SQL
steps recorded as findings or working procedure, the spare group) live in
`harness.citus_runbooks`, shared with `pgchaos drill`."""

from __future__ import annotations

import threading
from typing import Any

from harness.checkers.rpo import rpo
from harness.checkers.rto import rto
from harness.history import NEMESIS, Op
from harness.load.bank import BankLoad
from harness.load.client import PROCESS_SPAN, Client
from harness.load.prepared_xacts import PreparedXactsWatch
from harness.scenario import ScenarioError
from harness.stack import citus

TABLE = "pgchaos.events"
WRITER_BASE = 60  # process id of group g's writer: 60 + g
PERIOD_S = 0.1
MAX_KEYS = 6000  # bounds every writer (10 minutes at one write per 0.1 s)


def writer_process(group: int) -> int:
    return WRITER_BASE + group


class GroupWriters:
    """One thread per Citus worker group, writing that group's keys every 0.1 s
    through the pooler until stopped (bounded by MAX_KEYS each)."""

    def __init__(self, run: Any, groups: list[int], period_s: float = PERIOD_S) -> None:
        self.run = run
        self.groups = groups
        self.period_s = period_s
        self.stop_event = threading.Event()
        self.threads: list[threading.Thread] = []
        dsn = run.stack.dsn(via="router")
        self.keys = {g: citus.keys_in_group(dsn, TABLE, g, run.key_base + writer_process(g) * PROCESS_SPAN,
                                            MAX_KEYS) for g in groups}
        for g, keys in self.keys.items():
            if not keys:
                raise RuntimeError(f"no key of {TABLE} lands on worker group {g}")

    def _write(self, group: int) -> None:
        client = Client(self.run.stack.dsn(), self.run.history, writer_process(group))
        try:
            for key in self.keys[group]:
                if self.stop_event.wait(self.period_s):
                    break
                client.write(key, "events")
        finally:
            client.close()

    def start(self) -> GroupWriters:
        for g in self.groups:
            t = threading.Thread(target=self._write, args=(g,), daemon=True, name=f"citus-writer-{g}")
            t.start()
            self.threads.append(t)
        return self

    def stop(self) -> None:
        self.stop_event.set()
        for t in self.threads:
            t.join(timeout=15)

    def __enter__(self) -> GroupWriters:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def group_ops(ops: list[Op], group: int) -> list[Op]:
    """The nemesis' ops, the group writer's writes and the final read: a history of one group."""
    process = writer_process(group)
    return [op for op in ops if op.process in (NEMESIS, process) or op.f == "read-all"]


def per_group(ops: list[Op], groups: list[int], start: float, end: float) -> dict[int, dict[str, Any]]:
    """Per worker group: write outcomes in [start, end], RTO per fault, acknowledged writes lost."""
    out: dict[int, dict[str, Any]] = {}
    for g in groups:
        mine = group_ops(ops, g)
        counts = {"ok": 0, "fail": 0, "info": 0}
        for op in mine:
            if op.f == "write" and op.type != "invoke" and start <= op.time <= end:
                counts[op.type] += 1
        r = rto(mine, fs=("write",))
        loss = rpo(mine)
        out[g] = {
            "writes_in_window": counts,
            "rto_write_s": {f"{f['f']}@{f['target']}": _round(f["rto_s"].get("write")) for f in r["faults"]},
            "acknowledged": loss.get("acknowledged"),
            "lost": loss.get("lost"),
            "lost_keys": (loss.get("lost_keys") or [])[:20],
        }
    return out


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 2)


def worker_rows(meta: dict[str, Any]) -> dict[str, Any]:
    """The metadata without the coordinator group's own pg_dist_node rows (Patroni rewrites them)."""
    return {"pg_dist_node": [n for n in meta["pg_dist_node"] if n["groupid"] != 0],
            "pg_dist_placement": meta["pg_dist_placement"]}


def start_bank(run) -> BankLoad:
    """The bank and the prepared-transaction watch, with accounts on every worker group."""
    bank = run.add_workload(BankLoad(run.stack, run.history, run.key_base))
    run.add_workload(PreparedXactsWatch(run.stack, run.history))
    dsn = run.stack.dsn(via="router")
    placed = {a: citus.group_of_key(dsn, "pgchaos.bank_accounts", a) for a in bank.accounts}
    groups = sorted(set(placed.values()))
    run.figures["accounts_per_group"] = {g: sum(1 for v in placed.values() if v == g) for g in groups}
    if len(groups) < 2:
        raise ScenarioError(f"the bank's accounts do not span two worker groups: {placed}")
    run.wait_until("transfers committing", lambda: bank.stable_for(1.0), timeout_s=60, interval_s=0.25)
    return bank
