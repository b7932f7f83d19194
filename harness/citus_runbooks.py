"""The guide's Citus runbooks, executed on a Citus stack (their steps recorded by
harness.runbook's `Runbook`: the guide's step as written, or the working
procedure that replaces it, with Citus's error when it refuses).

`SpareGroup` starts the manifest's spare worker group (``[[groups]]`` with
``spare = true``) and removes every trace of it afterwards.
`WorkerReplacement` is the guide's DR scenario 2 (a worker lost for good):
detection, `citus_remove_node`, `citus_add_node` of the spare group,
`rebalance_table_shards` per table, `citus_rebalance_status()`, then the
working procedure (drain, retire the group, remove its rows). One step per
method, so `pgchaos drill worker-failure` and the scenario
`test_citus_worker_replacement` run the same code.
"""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

import psycopg

from harness.runbook import GUIDE, OBSERVED, WORKING, Runbook, describe, wait_for
from harness.stack import citus
from harness.stack.manifest import Group

__all__ = ["GUIDE", "OBSERVED", "WORKING", "Runbook", "SpareGroup", "WorkerReplacement", "describe", "wait_for"]

OWNER_PREFIX = "io.pgchaos."
GUIDE_TABLES = ("users", "events", "vectors")


def distributed_tables(dsn: str) -> tuple[str, ...]:
    """The distributed (hash) tables of the formation, one per co-location group first."""

    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute("SELECT table_name::text FROM citus_tables WHERE citus_table_type = 'distributed' "
                            "ORDER BY colocation_id, table_name::text").fetchall()
    return tuple(r[0] for r in rows)


def group_rows(dsn: str, group: int) -> list[dict[str, Any]]:
    """pg_dist_node rows of one Citus group."""
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
                 timeout_s: int = 280) -> dict[str, Any]:
    """A working-procedure step retried (bounded) while Citus or Patroni settle."""
    step: dict[str, Any] = {}
    for i in range(attempts):
        step = book.sql(label if i == 0 else f"{label} (retry {i})", sql, params, guide=False,
                        timeout_s=timeout_s)
        if step["ok"]:
            break
        time.sleep(3)
    return step


def etcd_leader(stack: Any, group: int) -> str | None:
    """The leader key of a Citus group in etcd (Patroni's), None when there is none."""
    dcs = stack.manifest.dcs.members[0]
    rc, out = stack.exec(dcs, ["etcdctl", "--endpoints=http://localhost:2379", "get", "--print-value-only",
                               f"/service/{stack.manifest.coordinator.scope}/{group}/leader"], timeout=20)
    return (out.strip() or None) if rc == 0 else "unknown"


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


def _toxiproxy_api(stack: Any) -> str:
    toxi = stack.manifest.toxiproxy
    return f"http://{stack.endpoint(toxi.service, toxi.api_port)}"


def member_link(stack: Any, member: str) -> str | None:
    """The name of the Toxiproxy link that carries a member's PostgreSQL address (manifest pattern)."""
    toxi = stack.manifest.toxiproxy
    return toxi.replication.format(member=member) if toxi and toxi.replication else None


def link_port(stack: Any, member: str) -> int | None:
    """The port of the member's Toxiproxy link: the address Patroni gives Citus is toxiproxy:PORT."""
    import requests

    name = member_link(stack, member)
    if name is None:
        return None
    proxy = requests.get(f"{_toxiproxy_api(stack)}/proxies/{name}", timeout=5)
    return int(proxy.json()["listen"].rsplit(":", 1)[1]) if proxy.ok else None


class SpareGroup:
    """The manifest's spare worker group, started on the running stack (its compose profile),
    and every trace of it removed afterwards (containers, data, its Toxiproxy links when we
    added them, its keys in etcd), so the stack is left as it was found."""

    def __init__(self, run: Any, group: Group | None = None) -> None:
        self.run = run
        self.stack = run.stack
        self.group = group or self.stack.manifest.spare_group()
        if self.group.citus_group is None:
            raise ValueError(f"spare group {self.group.name} has no citus_group")
        self.citus_group: int = self.group.citus_group
        self.members = list(self.group.members)
        self.added_links: list[str] = []
        self.started = False

    def ensure_links(self) -> None:
        """A stack started before the spare links existed lacks them: add them from the run's
        Toxiproxy config (the file names every link, the spare group's too)."""
        import requests

        api = _toxiproxy_api(self.stack)
        have = requests.get(f"{api}/proxies", timeout=5).json()
        wanted = [name for m in self.members if (name := member_link(self.stack, m)) and name not in have]
        if not wanted:
            return
        config = self.stack.config_dir / "toxiproxy.json"
        declared = {p["name"]: p for p in json.loads(config.read_text())} if config.is_file() else {}
        for name in wanted:
            if name not in declared:
                raise RuntimeError(f"no Toxiproxy link {name!r} running or declared in {config}")
            requests.post(f"{api}/proxies", timeout=5, json=declared[name]).raise_for_status()
            self.added_links.append(name)

    def start(self) -> None:
        """Ownership labels for the spare services too (copied from a running container), then up."""
        dep = self.stack.deployment
        some = next(iter(self.stack.containers().values()))
        labels = {k: v for k, v in some.labels.items() if k.startswith(OWNER_PREFIX)}
        dep.write_owner_override(self.stack.override_file, labels)
        self.ensure_links()
        self.started = True
        dep.start_services(self.members, profile=self.group.compose_profile)

    def stop(self) -> None:
        """Hard stop, then wait (bounded) until the group's leader key has expired in etcd.
        Not `docker stop`: a worker primary's graceful shutdown makes the coordinator's
        Patroni rename the node to '<host>-demoted' in a transaction it keeps open (holding
        pg_dist_node's ExclusiveLock) until the group has a new primary, which blocks
        citus_remove_node for good."""
        retire_members(self.run, self.members, self.citus_group)

    def remove(self) -> None:
        """Containers, data, etcd keys and the links we added: nothing of the spare group remains."""
        import shutil

        import requests

        if not self.started:
            return
        for member in self.members:
            with contextlib.suppress(Exception):
                self.stack.deployment.remove_service(member)
        with contextlib.suppress(Exception):
            self.stack.exec(self.stack.manifest.dcs.members[0],
                            ["etcdctl", "--endpoints=http://localhost:2379", "del", "--prefix",
                             f"/service/{self.stack.manifest.coordinator.scope}/{self.citus_group}/"],
                            timeout=20)
        for member in self.members:
            shutil.rmtree(self.stack.state_dir / "data" / member, ignore_errors=True)
        with contextlib.suppress(Exception):
            api = _toxiproxy_api(self.stack)
            for name in self.added_links:
                requests.delete(f"{api}/proxies/{name}", timeout=5)
        self.started = False


def retire_spare(book: Runbook, spare: SpareGroup, label: str = "R") -> None:
    """Drain the spare group (its shards go back to the other groups), kill it, take it out of
    pg_dist_node, then remove every trace of it. Refuses to destroy a group that holds data."""
    if not spare.started:
        return
    group = spare.citus_group
    primary = citus.primaries(book.dsn).get(group)
    if primary:
        host, port = primary.split(":")
        sql_until_ok(book, f"{label}. citus_drain_node of group {group}", "SELECT citus_drain_node(%s, %s)",
                     (host, int(port)))
        book.sql(f"{label}. CALL citus_cleanup_orphaned_resources()", "CALL citus_cleanup_orphaned_resources()",
                 guide=False)
    left = citus.placements_per_group(book.dsn).get(group, 0)
    if left:  # never destroy a group that still holds data: leave it running for a person to look at
        raise RuntimeError(f"group {group} still holds {left} shard placements after the drain: "
                           "the spare group is left running (drain it, then remove it by hand)")
    spare.stop()
    if not remove_group(book, group):
        raise RuntimeError(f"group {group} is still in pg_dist_node: {group_rows(book.dsn, group)}")
    spare.remove()


class WorkerReplacement:
    """The guide's DR scenario 2 on a Citus stack: a worker group's primary lost for good,
    replaced by the manifest's spare group. Each step method runs one step against the live
    stack, records it in `book.steps` (and `run.figures["runbook"]`) and returns what it did,
    as text; a guide step Citus refuses is a finding there, and the working procedure runs
    as separate steps labelled so. `restore()` puts the stack back as it was found."""

    def __init__(self, run: Any, lost: str | None = None, spare: Group | None = None) -> None:
        manifest = run.stack.manifest
        self.run = run
        self.book = Runbook(run)
        self.dsn = self.book.dsn
        self.lost = manifest.group(lost) if lost else manifest.worker_groups[0]
        if self.lost.citus_group is None:
            raise ValueError(f"group {self.lost.name} has no citus_group")
        self.lost_id: int = self.lost.citus_group
        self.spare = SpareGroup(run, spare)
        self.fault: Any = None
        self.dead_addr: str | None = None
        self.survivor: str | None = None
        self.runbook_s: float | None = None
        run.figures["runbook"] = self.book.steps  # the same list: kept even when a step raises

    def _since(self, mark: int) -> str:
        return describe(self.book.steps[mark:])

    def _leader(self) -> str | None:
        from harness.stack.topology import discover

        leaders = discover(self.run.stack).group_leaders(self.lost.name)
        return leaders[0] if len(leaders) == 1 else None

    # -- the disaster ----------------------------------------------------------------
    def inject(self) -> Any:
        """Kill the lost group's primary (it stays dead); remember its address as Citus knows it."""
        self.dead_addr = citus.primaries(self.dsn)[self.lost_id]
        self.fault = self.run.nemesis.inject("kill", f"primary@{self.lost.name}")
        self.run.figures["lost_member"] = {"service": self.fault.target, "citus_address": self.dead_addr}
        return self.fault

    # -- the guide's runbook, as written ----------------------------------------------
    def detect(self) -> str:
        mark = len(self.book.steps)
        self.book.sql("1. detection: citus_get_active_worker_nodes()",
                      "SELECT * FROM citus_get_active_worker_nodes()")
        return self._since(mark)

    def remove_failed(self) -> str:
        mark = len(self.book.steps)
        assert self.dead_addr is not None, "inject() first"
        host, port = self.dead_addr.split(":")
        self.book.sql("2. remove failed worker: citus_remove_node", "SELECT citus_remove_node(%s, %s)",
                      (host, int(port)))
        return self._since(mark)

    def await_failover(self) -> str:
        """Not a guide step: Patroni fails the group over on its own and rewrites its pg_dist_node row."""
        mark = len(self.book.steps)
        assert self.fault is not None, "inject() first"
        self.run.wait_until(f"Patroni promoted {self.lost.name}'s standby",
                            lambda: self._leader() not in (None, self.fault.target), timeout_s=90)
        self.survivor = self._leader()
        moved, _ = wait_for("pg_dist_node follows",
                            lambda: citus.primaries(self.dsn).get(self.lost_id) != self.dead_addr,
                            timeout_s=60, interval_s=0.5)
        self.run.figures["patroni_failover"] = {"survivor": self.survivor, "pg_dist_node_followed": moved,
                                                "group_rows": group_rows(self.dsn, self.lost_id)}
        self.book.note(f"1a. Patroni promoted {self.survivor} in {self.lost.name} and rewrote its "
                       "pg_dist_node row", observed=True, pg_dist_node_followed=moved)
        self.book.sql("1b. detection after Patroni's failover: citus_get_active_worker_nodes()",
                      "SELECT * FROM citus_get_active_worker_nodes()")
        return self._since(mark)

    def add_replacement(self) -> str:
        """Start the spare group (Patroni registers its primary itself), then the guide's citus_add_node."""
        mark = len(self.book.steps)
        group = self.spare.citus_group
        with self.book.step(f"3. start the replacement worker (spare group {self.spare.group.name})"):
            self.spare.start()
            registered, _ = wait_for(f"Patroni registers group {group} in pg_dist_node",
                                     lambda: group in citus.primaries(self.dsn), timeout_s=150, interval_s=1)
        if not registered:
            raise RuntimeError(f"the spare group's primary never appeared in pg_dist_node (group {group})")
        new_host, new_port = citus.primaries(self.dsn)[group].split(":")
        self.book.note(f"3a. {self.spare.group.name} started; Patroni registered it (group {group}) in "
                       "pg_dist_node itself", observed=True, rows=group_rows(self.dsn, group))
        self.book.sql("3. add replacement worker: citus_add_node", "SELECT citus_add_node(%s, %s)",
                      (new_host, int(new_port)))
        return self._since(mark)

    def tables(self) -> tuple[str, ...]:
        """The tables the guide's per-table rebalance runs over: the guide's own where the stack
        has them (capability guide-schema), else every distributed table Citus lists."""
        if self.run.stack.capabilities().get("guide-schema"):
            return GUIDE_TABLES
        return distributed_tables(self.dsn)

    def rebalance(self) -> str:
        mark = len(self.book.steps)
        for table in self.tables():
            self.book.sql(f"4. rebalance_table_shards('{table}')", "SELECT rebalance_table_shards(%s)", (table,))
        self.run.figures["placements_after_guide_steps"] = citus.placements_per_group(self.dsn)
        return self._since(mark) + f"\nplacements per group: {self.run.figures['placements_after_guide_steps']}"

    def monitor(self) -> str:
        mark = len(self.book.steps)
        self.book.sql("5. monitor: citus_rebalance_status()", "SELECT * FROM citus_rebalance_status()")
        return self._since(mark)

    # -- the working procedure -----------------------------------------------------------
    def drain_failed(self) -> str:
        """citus_drain_node of the failed group (its survivor is its primary now)."""
        mark = len(self.book.steps)
        addr = citus.primaries(self.dsn)[self.lost_id]
        host, port = addr.split(":")
        self.book.sql(f"W1. citus_drain_node of worker group {self.lost_id}", "SELECT citus_drain_node(%s, %s)",
                      (host, int(port)), guide=False, timeout_s=280)
        self.book.sql("W2. CALL citus_cleanup_orphaned_resources()", "CALL citus_cleanup_orphaned_resources()",
                      guide=False)
        return self._since(mark) + f"\nplacements per group: {citus.placements_per_group(self.dsn)}"

    def retire_failed(self) -> str:
        """Kill the failed group's survivor, wait for its leader key to expire, remove its rows."""
        mark = len(self.book.steps)
        expired = retire_members(self.run, list(self.lost.members), self.lost_id)
        self.book.note(f"W3. {self.lost.name}'s survivor killed (the group is retired; a graceful stop would "
                       "leave Patroni's '-demoted' transaction holding pg_dist_node), its leader key expired",
                       service=self.survivor, leader_key_expired_after_s=expired)
        if not remove_group(self.book, self.lost_id):
            raise RuntimeError(f"group {self.lost_id} could not be removed from pg_dist_node")
        self.book.sql("W5. citus_get_active_worker_nodes()", "SELECT * FROM citus_get_active_worker_nodes()",
                      guide=False)
        return self._since(mark)

    def verify(self) -> str:
        """Every key writable again (the probe stable); the runbook's time from the fault."""
        self.run.wait_for_recovery(timeout_s=120)
        assert self.fault is not None
        self.runbook_s = round(self.run.now() - self.fault.time, 1)
        self.run.figures["runbook_s"] = self.runbook_s
        self.run.figures["placements_after_runbook"] = citus.placements_per_group(self.dsn)
        self.run.figures["pg_dist_node_after_runbook"] = citus.nodes(self.dsn)
        return (f"writes and reads succeed again; runbook done {self.runbook_s} s after the kill; "
                f"placements per group: {self.run.figures['placements_after_runbook']}")

    # -- judgement and clean-up --------------------------------------------------------------
    def problems(self, rto_s: float, row: str) -> list[str]:
        """What makes the runbook fail its target row (RPO is judged over the history)."""
        bad = []
        if self.runbook_s is None:
            bad.append("the working procedure did not complete")
        elif self.runbook_s > rto_s:
            bad.append(f"runbook took {self.runbook_s} s > {rto_s:.0f} s ({row})")
        after = self.run.figures.get("placements_after_runbook") or {}
        if self.lost_id in after:
            bad.append(f"group {self.lost_id} still holds placements after the runbook: {after}")
        return bad

    def restore(self) -> None:
        """Put the stack back as found (not timed): the lost group back (Patroni re-registers it,
        or citus_add_node of its leader), the spare group drained and gone, shards balanced."""
        from harness.stack.topology import discover

        run, book, dsn = self.run, self.book, self.dsn
        run.phase("restore-topology")
        for active in sorted(run.nemesis.active.values(), key=lambda a: -a.id):
            run.nemesis.heal(active)  # the killed member starts again
        for member in self.lost.members:
            container = run.nemesis.owned(member)
            if container.status != "running":
                container.start()
        run.wait_until(f"{self.lost.name} has a leader again", lambda: self._leader() is not None, timeout_s=90)
        back, _ = wait_for(f"group {self.lost_id} back in pg_dist_node",
                           lambda: self.lost_id in citus.primaries(dsn), timeout_s=30, interval_s=1)
        if not back:  # Patroni does not re-register a group removed by hand (measured): add it from its leader
            leader = self._leader()
            port = link_port(run.stack, leader) if leader else None
            if port and run.stack.manifest.toxiproxy:
                book.sql(f"R0. citus_add_node of group {self.lost_id}'s leader",
                         "SELECT citus_add_node(%s, %s, %s)",
                         (run.stack.manifest.toxiproxy.service, port, self.lost_id), guide=False)
        book.note(f"R1. group {self.lost_id} back in pg_dist_node", registered_by_patroni=back,
                  rows=group_rows(dsn, self.lost_id))
        for n in group_rows(dsn, self.lost_id):  # a group drained and never removed: let it hold shards again
            if n["noderole"] == "primary" and not n["shouldhaveshards"]:
                sql_until_ok(book, f"R1b. citus_set_node_property(shouldhaveshards) of group {self.lost_id}",
                             "SELECT citus_set_node_property(%s, %s, 'shouldhaveshards', true)",
                             (n["nodename"], n["nodeport"]))
        retire_spare(book, self.spare, "R2")
        placed = citus.placements_per_group(dsn)
        counts = [placed.get(g.citus_group, 0) for g in run.stack.manifest.worker_groups]
        if counts and max(counts) - min(counts) > 2:
            sql_until_ok(book, "R4. rebalance_table_shards()", "SELECT rebalance_table_shards()")
        run.wait_until("every worker group has one leader again",
                       lambda: all(len(discover(run.stack).group_leaders(g.name)) == 1
                                   for g in run.stack.manifest.worker_groups), timeout_s=120)


def database_section(dump: str, dbname: str) -> str:
    """The part of a pg_dumpall script that builds one database, without its `\\connect`:
    loaded into another database (the monthly DR test's dr_test) it stays there, where the
    whole script would reconnect to `dbname` and replay into it. Empty when the dump has none."""
    lines = dump.splitlines(keepends=True)
    start = next((i + 1 for i, line in enumerate(lines) if line.rstrip("\n") == f"\\connect {dbname}"), None)
    if start is None:
        return ""
    out = []
    for line in lines[start:]:
        if line.startswith("\\connect "):
            break
        out.append(line)
        if line.startswith("\\unrestrict "):  # pg_dump 17.6+: the end of this database's part
            break
    return "".join(out)
