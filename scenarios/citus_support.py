"""Shared pieces of the Citus scenarios (`from citus_support import ...`):
one writer per worker group (keys whose shard of pgchaos.events lives on that
group, found with get_shard_id_for_distribution_column + pg_dist_placement),
and per-group RTO / RPO over the merged history."""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

import psycopg

from harness.checkers.rpo import rpo
from harness.checkers.rto import rto
from harness.history import NEMESIS, Op
from harness.load.client import PROCESS_SPAN, Client
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


def wait_for(what: str, predicate: Any, timeout_s: float, interval_s: float = 1.0) -> tuple[bool, Any]:
    """Poll (bounded) until predicate() is truthy; (held, last value)."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            last = predicate()
            if last:
                return True, last
        time.sleep(interval_s)
    return False, last


def worker_rows(meta: dict[str, Any]) -> dict[str, Any]:
    """The metadata without the coordinator group's own pg_dist_node rows (Patroni rewrites them)."""
    return {"pg_dist_node": [n for n in meta["pg_dist_node"] if n["groupid"] != 0],
            "pg_dist_placement": meta["pg_dist_placement"]}


# -- the spare worker group (compose profile "spare": worker-3a, worker-3b, Citus group 3) --------
SPARE_PROFILE = "spare"
SPARE_GROUP = 3
SPARE_MEMBERS = {"worker-3a": 15231, "worker-3b": 15232}  # member -> its Toxiproxy listen port
OWNER_PREFIX = "io.pgchaos."


class SpareGroup:
    """Starts the compose file's spare worker group on the running stack and removes
    every trace of it afterwards (containers, data, its Toxiproxy links when we
    added them, its keys in etcd), so the stack is left as it was found."""

    def __init__(self, run: Any) -> None:
        self.run = run
        self.stack = run.stack
        self.added_links: list[str] = []
        self.started = False

    # Toxiproxy: a stack started before the spare links existed lacks them
    def _toxiproxy(self) -> str:
        toxi = self.stack.manifest.toxiproxy
        return f"http://{self.stack.endpoint(toxi.service, toxi.api_port)}"

    def ensure_links(self) -> None:
        import requests

        api = self._toxiproxy()
        have = requests.get(f"{api}/proxies", timeout=5).json()
        for member, port in SPARE_MEMBERS.items():
            name = f"pg-{member}"
            if name not in have:
                requests.post(f"{api}/proxies", timeout=5, json={
                    "name": name, "listen": f"0.0.0.0:{port}", "upstream": f"{member}:5432",
                    "enabled": True}).raise_for_status()
                self.added_links.append(name)

    def _compose(self, *args: str, timeout: float = 180.0) -> None:
        import subprocess

        dep = self.stack.deployment
        proc = subprocess.run([*dep.command, "--profile", SPARE_PROFILE, *args], cwd=dep.workdir,
                              capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"docker compose {args[0]}: {proc.stderr.strip()[-400:]}")

    def start(self) -> None:
        """Ownership labels for the spare services too (copied from a running container), then up."""
        dep = self.stack.deployment
        some = next(iter(self.stack.containers().values()))
        labels = {k: v for k, v in some.labels.items() if k.startswith(OWNER_PREFIX)}
        dep.write_owner_override(self.stack.override_file, labels)
        self.ensure_links()
        self.started = True
        self._compose("up", "-d", "--no-deps", *SPARE_MEMBERS)

    def address(self, member: str) -> tuple[str, int]:
        """The member's PostgreSQL address as Citus knows it (its Toxiproxy link)."""
        return "toxiproxy", SPARE_MEMBERS[member]

    def stop(self) -> None:
        """Hard stop, then wait (bounded) until the group's leader key has expired in etcd.
        Not `docker stop`: a worker primary's graceful shutdown makes the coordinator's
        Patroni rename the node to '<host>-demoted' in a transaction it keeps open (holding
        pg_dist_node's ExclusiveLock) until the group has a new primary, which blocks
        citus_remove_node for good."""
        retire_members(self.run, list(SPARE_MEMBERS), SPARE_GROUP)

    def remove(self) -> None:
        """Containers, data, etcd keys and the links we added: nothing of the spare group remains."""
        import shutil

        import requests

        if not self.started:
            return
        for member in SPARE_MEMBERS:
            with contextlib.suppress(Exception):
                self.stack.container(member).remove(force=True, v=True)
        with contextlib.suppress(Exception):
            self.stack.exec(self.stack.manifest.dcs.members[0],
                            ["etcdctl", "--endpoints=http://localhost:2379", "del", "--prefix",
                             f"/service/{self.stack.manifest.coordinator.scope}/{SPARE_GROUP}/"], timeout=20)
        for member in SPARE_MEMBERS:
            shutil.rmtree(self.stack.state_dir / "data" / member, ignore_errors=True)
        with contextlib.suppress(Exception):
            api = self._toxiproxy()
            for name in self.added_links:
                requests.delete(f"{api}/proxies/{name}", timeout=5)
        self.started = False


# -- runbook steps on the coordinator --------------------------------------------------
class Runbook:
    """Runs SQL steps on the coordinator (through the router) and records each one."""

    def __init__(self, run) -> None:
        self.run = run
        self.dsn = run.stack.dsn(via="router", connect_timeout=5)
        self.steps: list[dict] = []

    def sql(self, label: str, sql: str, params=None, guide: bool = True, timeout_s: int = 240) -> dict:
        self.run.phase("runbook", step=label, guide=guide)
        step = {"step": label, "source": "guide, as written" if guide else "working procedure",
                "sql": sql if params is None else f"{sql} -- {params}", "at_s": round(self.run.now(), 2)}
        started = time.monotonic()
        try:
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                conn.execute(f"SET statement_timeout = {timeout_s * 1000}")
                cur = conn.execute(sql, params)
                rows = cur.fetchall() if cur.description else []
            step.update(ok=True, result=[list(map(str, r)) for r in rows][:20])
        except psycopg.Error as exc:
            step.update(ok=False, error=citus.error_text(exc))
        step["seconds"] = round(time.monotonic() - started, 2)
        self.steps.append(step)
        return step

    def note(self, label: str, guide: bool = False, **detail) -> None:
        self.run.phase("runbook", step=label, guide=guide)
        self.steps.append({"step": label, "source": "guide, as written" if guide else "working procedure",
                           "at_s": round(self.run.now(), 2), "ok": True, **detail})


def group_rows(dsn: str, group: int) -> list[dict]:
    return [n for n in citus.nodes(dsn) if n["groupid"] == group]


def remove_group(book: Runbook, group: int, guide: bool = False) -> bool:
    """Take a dead group out of pg_dist_node: citus_disable_node of its primary (Citus 14 must
    otherwise reach the node it removes), citus_remove_node of the primary, then of its
    secondaries (removing a secondary first makes Citus connect to the group's primary)."""
    rows = sorted(group_rows(book.dsn, group), key=lambda n: n["noderole"] != "primary")
    for n in rows:
        addr = (n["nodename"], n["nodeport"])
        if n["noderole"] == "primary":
            book.sql(f"disable group {group} primary {addr[0]}:{addr[1]}",
                     "SELECT citus_disable_node(%s, %s, synchronous => true)", addr, guide=guide)
        book.sql(f"remove group {group} {n['noderole']} {addr[0]}:{addr[1]}",
                 "SELECT citus_remove_node(%s, %s)", addr, guide=guide)
    return not group_rows(book.dsn, group)


def sql_until_ok(book: Runbook, label: str, sql: str, params: Any = None, attempts: int = 3,
                 timeout_s: int = 280) -> dict:
    """A working-procedure step retried (bounded) while Citus or Patroni settle."""
    step: dict = {}
    for i in range(attempts):
        step = book.sql(label if i == 0 else f"{label} (retry {i})", sql, params, guide=False, timeout_s=timeout_s)
        if step["ok"]:
            break
        time.sleep(3)
    return step


def retire_spare(book: Runbook, spare: SpareGroup, label: str = "R") -> None:
    """Drain the spare group (its shards go back to the other groups), kill it, take it out of
    pg_dist_node, then remove every trace of it. Refuses to destroy a group that holds data."""
    if not spare.started:
        return
    primary = citus.primaries(book.dsn).get(SPARE_GROUP)
    if primary:
        host, port = primary.split(":")
        sql_until_ok(book, f"{label}. citus_drain_node of group {SPARE_GROUP}", "SELECT citus_drain_node(%s, %s)",
                     (host, int(port)))
        book.sql(f"{label}. CALL citus_cleanup_orphaned_resources()", "CALL citus_cleanup_orphaned_resources()",
                 guide=False)
    left = citus.placements_per_group(book.dsn).get(SPARE_GROUP, 0)
    if left:  # never destroy a group that still holds data: leave it running for a person to look at
        raise RuntimeError(f"group {SPARE_GROUP} still holds {left} shard placements after the drain: "
                           "the spare group is left running (drain it, then remove it by hand)")
    spare.stop()
    if not remove_group(book, SPARE_GROUP):
        raise RuntimeError(f"group {SPARE_GROUP} is still in pg_dist_node: {group_rows(book.dsn, SPARE_GROUP)}")
    spare.remove()


def etcd_leader(stack: Any, group: int) -> str | None:
    """The leader key of a Citus group in etcd (Patroni's), None when there is none."""
    dcs = stack.manifest.dcs.members[0]
    rc, out = stack.exec(dcs, ["etcdctl", "--endpoints=http://localhost:2379", "get", "--print-value-only",
                               f"/service/{stack.manifest.coordinator.scope}/{group}/leader"], timeout=20)
    return out.strip() or None if rc == 0 else "unknown"


def retire_members(run: Any, members: list[str], group: int, timeout_s: float = 60.0) -> float | None:
    """SIGKILL a group's members (a decommissioned worker is not shut down gracefully: see
    SpareGroup.stop) and wait until Patroni's leader key of the group has expired."""
    for member in members:
        with contextlib.suppress(Exception):
            container = run.stack.container(member)
            if container.status == "running":
                container.kill()
    started = time.monotonic()
    gone, _ = wait_for(f"no leader key of group {group}", lambda: etcd_leader(run.stack, group) is None,
                       timeout_s=timeout_s, interval_s=1)
    run.phase("observed", what=f"group {group}'s leader key expired", held=gone)
    return round(time.monotonic() - started, 1) if gone else None
