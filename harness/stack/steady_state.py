"""The steady-state hypothesis: the operations guide's daily health check,
made executable. Each check has a name, ok and a detail; the stack is healthy
when every check is ok."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import requests

from harness.engines.base import HealthCheck as Check  # one check type: the guide's and an engine's
from harness.errors import PgchaosError
from harness.stack.refusals import REFUSED_FOR_S, RefusalWatch
from harness.stack.topology import Topology, discover

if TYPE_CHECKING:
    from harness.stack.stack import Stack

LAG_WARNING_BYTES = 10 * 1024 * 1024  # the guide's "HIGH LAG" threshold
LAG_ACTION_BYTES = 100 * 1024 * 1024  # the guide's "if lag > 100MB" action threshold
DISK_FULL_PCT = 90.0
SLOW_QUERY_S = 1.0
IDLE_IN_TX_S = 600.0


@dataclass
class SteadyState:
    checks: list[Check]
    topology: Topology

    @property
    def healthy(self) -> bool:
        return all(c.ok for c in self.checks)

    def failing(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def summary(self) -> str:
        bad = self.failing()
        return "healthy" if not bad else "; ".join(f"{c.name}: {c.detail}" for c in bad)

    def as_dict(self) -> dict[str, Any]:
        return {**self.topology.as_dict(), "healthy": self.healthy,
                "checks": [asdict(c) for c in self.checks]}


def _guard(name: str, fn: Callable[[], Check]) -> Check:
    try:
        return fn()
    except Exception as exc:  # a check that cannot run is a failing check
        return Check(name, False, f"could not run: {type(exc).__name__}: {str(exc).strip()[:200]}")


def _engine_checks(stack: Stack) -> list[Check]:
    """The engine's own health checks, as checks of the steady state."""
    try:
        return stack.deployment.health_checks()
    except Exception as exc:  # noqa: BLE001 - a check that cannot run is a failing check
        return [Check(f"{stack.deployment.name}_engine", False,
                      f"could not run: {type(exc).__name__}: {str(exc).strip()[:200]}")]


def check_services(stack: Stack) -> Check:
    bad = {}
    containers = stack.containers()
    for name, c in containers.items():
        health = (c.attrs.get("State", {}).get("Health") or {}).get("Status")
        if c.status != "running" or health not in (None, "healthy"):
            bad[name] = health or c.status
    expected = set(stack.manifest.services()) if stack.attached else set(stack.services())
    missing = sorted(expected - set(containers))
    ok = not bad and not missing
    detail = "all services running" if ok else f"not running/healthy: {bad} missing: {missing}"
    if bad:
        detail += "".join(f" — {n}: {why}" for n in sorted(bad) if (why := last_error(stack, n)))
    return Check("services", ok, detail, {"services": sorted(containers)})


# Log lines that say why a member is not doing its job, most telling first; the
# newest line of the first kind found wins. REST API noise (a health check's
# connection reset) says nothing about the member and is skipped.
WHY = (
    re.compile(r"FATAL|PANIC|no pg_hba\.conf entry|pg_hba\.conf rejects|password authentication failed"),
    re.compile(r"\bERROR\b|could not|No space left on device", re.I),
)
NOISE = re.compile(r"ConnectionResetError|BrokenPipeError|Exception happened during processing of request")


def last_error(stack: Stack, service: str, tail: int = 400) -> str | None:
    """The newest log line of a service that says what went wrong, if any."""
    try:
        lines = [line for line in stack.logs(service, tail=tail).splitlines() if not NOISE.search(line)]
    except Exception:
        return None
    for pattern in WHY:
        for line in reversed(lines):
            if pattern.search(line):
                return line.strip()[:240]
    return None


def _suffix(stack: Stack, group: str) -> str:
    return "" if group == stack.manifest.coordinator.name else f"[{group}]"


def check_leader(topo: Topology, group: str | None = None, suffix: str = "") -> Check:
    leaders = topo.leaders if group is None else topo.group_leaders(group)
    return Check(f"patroni_leader{suffix}", len(leaders) == 1,
                 f"leaders: {leaders or 'none'}", {"leaders": leaders})


def check_replicas(stack: Stack, topo: Topology, group_name: str) -> Check:
    group = stack.manifest.group(group_name)
    members = topo.groups.get(group_name, [])
    leaders = topo.group_leaders(group_name)
    replicas = [m for m in members if m.name not in leaders]
    streaming = [m.name for m in replicas if m.state == "streaming"]
    want = len(group.members) - 1
    ok = len(streaming) == want
    detail = f"{len(streaming)}/{want} streaming: {[(m.name, m.role, m.state) for m in replicas]}"
    if not ok:
        absent = [m for m in group.members if m not in leaders and m not in streaming]
        whys = [f"{m} not streaming — {why}" for m in absent if (why := last_error(stack, m))]
        cloning = [m.name for m in replicas if m.state == CREATING_REPLICA]
        if cloning and len(leaders) == 1 and (why := basebackup_why(basebackups(stack, leaders[0]))):
            whys.append(f"{', '.join(cloning)} {CREATING_REPLICA} — {why}")
        if whys:
            detail += "; " + "; ".join(whys)
    return Check(f"replicas_streaming{_suffix(stack, group_name)}", ok, detail, {"streaming": streaming})


CREATING_REPLICA = "creating replica"  # Patroni's state while a member clones its data (pg_basebackup)
WAITING_FOR_CHECKPOINT = "pg_basebackup waiting for checkpoint"
BASEBACKUP_SQL = ("SELECT p.phase, extract(epoch FROM now() - a.backend_start)::float8 "
                  "FROM pg_stat_progress_basebackup p JOIN pg_stat_activity a USING (pid)")


def basebackups(stack: Stack, leader: str) -> list[tuple[str, float]]:
    """The base backups the leader is serving (pg_stat_progress_basebackup): phase, age in s."""
    import psycopg

    try:
        with psycopg.connect(stack.dsn(leader, connect_timeout=2), autocommit=True) as conn:
            return [(str(r[0]), float(r[1] or 0.0)) for r in conn.execute(BASEBACKUP_SQL).fetchall()]
    except (psycopg.Error, PgchaosError):
        return []


def basebackup_why(rows: list[tuple[str, float]]) -> str | None:
    """Why a replica is still being created, from the leader's base backups: a named reason
    when pg_basebackup waits for the leader's checkpoint (a spread checkpoint can take up to
    checkpoint_timeout; Patroni's `postgresql.basebackup: [checkpoint: fast]` asks for a fast one)."""
    waiting = [age for phase, age in rows if phase.startswith("waiting for checkpoint")]
    if waiting:
        return (f"{WAITING_FOR_CHECKPOINT} on the leader for {max(waiting):.0f} s (a spread checkpoint; "
                "set Patroni's postgresql.basebackup `checkpoint: fast` or wait for checkpoint_timeout)")
    if rows:
        return "pg_basebackup in progress on the leader: " + ", ".join(f"{p} for {a:.0f} s" for p, a in rows)
    return None


SYNC_ROLES = ("sync_standby", "quorum_standby")


def _patroni_config(stack: Stack, group_name: str) -> dict[str, Any]:
    """The group's dynamic configuration (Patroni REST ``/config`` of the first member that answers)."""
    for member in stack.manifest.group(group_name).members:
        try:
            resp = requests.get(f"{stack.patroni_url(member)}/config", timeout=2)
            resp.raise_for_status()
            doc = resp.json()
        except (requests.RequestException, ValueError, PgchaosError):
            continue
        if isinstance(doc, dict):
            return doc
    raise PgchaosError(f"no member of {group_name} answered Patroni's /config")


def check_sync_standbys(stack: Stack, topo: Topology, group_name: str) -> Check:
    """A group in synchronous (or quorum) mode is ready only once its synchronous standbys
    are in place (Patroni's /cluster roles sync_standby / quorum_standby), as many as
    synchronous_node_count asks and its replicas allow: before that a failover may find no
    promotable member."""
    name = f"sync_standbys{_suffix(stack, group_name)}"
    cfg = _patroni_config(stack, group_name)
    mode = cfg.get("synchronous_mode", False)
    if mode in (False, None, "off", "false"):
        return Check(name, True, f"{group_name}: synchronous_mode off", {"mode": mode})
    members = topo.groups.get(group_name, [])
    leaders = topo.group_leaders(group_name)
    replicas = [m for m in members if m.name not in leaders]
    want = min(int(cfg.get("synchronous_node_count") or 1), len(replicas))
    have = [m.name for m in replicas if m.role in SYNC_ROLES and m.state in ("streaming", "running")]
    ok = len(have) >= want
    detail = (f"{group_name}: synchronous_mode {mode}, {len(have)}/{want} synchronous standby(s) "
              f"in place: {have or 'none'}")
    if not ok:
        detail += (f" — not ready: replicas {[(m.name, m.role, m.state) for m in replicas]} "
                   "(a failover now may find no promotable member)")
    return Check(name, ok, detail, {"mode": mode, "sync_standbys": have, "want": want})


def check_router_write(stack: Stack, topo: Topology) -> Check:
    """A write through the router's primary port lands on the coordinator leader."""
    import psycopg

    port = stack.manifest.router.primary_port
    with psycopg.connect(stack.dsn(via="router", connect_timeout=3), autocommit=True) as conn:
        in_recovery, addr, tls, server_ssl = conn.execute(
            "SELECT pg_is_in_recovery(), host(inet_server_addr()), "
            "(SELECT version FROM pg_stat_ssl WHERE pid = pg_backend_pid() AND ssl), "
            "current_setting('ssl')").fetchone()
    member = member_at(stack, addr) or addr
    ssl = ssl_used(tls, server_ssl)
    leader = topo.leader
    if in_recovery:
        return Check("router_write", False, f"a write through :{port} reached a read-only member ({member})",
                     {"member": member, "read_only": True, "leader": leader, "ssl": ssl})
    ok = leader is None or member in (leader, addr)  # an unmapped address: writable is what counts
    return Check("router_write", ok, f"writes through :{port} reach {member} ({ssl})"
                 + ("" if ok else f", not the leader {leader}"), {"member": member, "ssl": ssl})


SSL_VARIABLES = ("PGSSLMODE", "PGSSLROOTCERT", "PGSSLCERT", "PGSSLKEY", "PGSSLCRL")


def ssl_used(tls_version: str | None, server_ssl: str | None) -> str:
    """How the harness's connections went, in words: libpq's own choice (sslmode prefer
    unless PGSSLMODE says otherwise, certificates from the PGSSL* variables), so the harness
    connects whatever the server's SSL setting; this says which it used."""
    import os

    given = [v for v in SSL_VARIABLES if os.environ.get(v)]
    mode = os.environ.get("PGSSLMODE") or "prefer"
    how = f"sslmode {mode}" + (f", {', '.join(given)} set" if given else "")
    if tls_version:
        return f"over SSL ({tls_version}; {how})"
    return f"without SSL (server ssl={server_ssl or 'unknown'}; {how})"


def member_at(stack: Stack, address: str | None) -> str | None:
    """The service whose container has this address on a stack network."""
    if not address:
        return None
    for service, container in stack.containers().items():
        nets = (container.attrs.get("NetworkSettings") or {}).get("Networks") or {}
        if any(n.get("IPAddress") == address for n in nets.values()):
            return service
    return None


def check_replication_lag(stack: Stack, topo: Topology) -> Check:
    import psycopg

    if topo.leader is None:
        return Check("replication_lag", False, "no single leader to ask")
    try:
        dsn = stack.dsn(topo.leader)
    except PgchaosError:  # the member's port is not published: Patroni's own figures
        lags = {m.name: m.lag_bytes or 0 for m in topo.replicas}
    else:
        with psycopg.connect(dsn, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT application_name, state, "
                "coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn), 0)::bigint "
                "FROM pg_stat_replication").fetchall()
        lags = {r[0]: int(r[2]) for r in rows}
    worst = max(lags.values(), default=0)
    level = ("action" if worst > LAG_ACTION_BYTES else
             "warning" if worst > LAG_WARNING_BYTES else "normal")
    return Check("replication_lag", worst <= LAG_WARNING_BYTES,
                 f"worst {worst} bytes ({level}); per replica {lags}",
                 {"lag_bytes": lags, "level": level})


def check_pools(stack: Stack) -> Check:
    import psycopg

    assert stack.manifest.pooler is not None
    with psycopg.connect(stack.dsn(dbname=stack.manifest.pooler.admin_db), autocommit=True) as conn:
        cur = conn.execute("SHOW POOLS")
        cols = [d.name for d in cur.description]
        pools = [dict(zip(cols, row, strict=False)) for row in cur.fetchall()]
    app = [p for p in pools if p.get("database") == stack.database]
    waiting = sum(int(p.get("cl_waiting", 0)) for p in app)
    if not app:  # the application's pool appears once a client used it: use it now
        with psycopg.connect(stack.dsn(connect_timeout=3), autocommit=True) as conn:
            conn.execute("SELECT 1")
    ok = waiting == 0
    return Check("pgbouncer_pools", ok,
                 f"{len(pools)} pools, {waiting} clients waiting for the application database"
                 + ("" if app else " (its pool was idle; a connection through the pooler succeeded)"),
                 {"cl_waiting": waiting, "pools": len(pools)})


def check_disk(stack: Stack) -> Check:
    usage = {}
    for node in stack.loop_members:
        st = os.statvfs(stack.data_mount(node))
        usage[node] = round(100.0 * (1 - st.f_bavail / st.f_blocks), 1) if st.f_blocks else 100.0
    worst = max(usage.values())
    return Check("disk_space", worst < DISK_FULL_PCT, f"data volumes use% {usage}", {"use_pct": usage})


def check_activity(stack: Stack, topo: Topology) -> list[Check]:
    import psycopg

    if topo.leader is None:
        return [Check("slow_queries", False, "no single leader to ask"),
                Check("idle_in_transaction", False, "no single leader to ask")]
    with psycopg.connect(stack.dsn(topo.leader), autocommit=True) as conn:
        slow = conn.execute(
            "SELECT pid, (extract(epoch FROM now() - query_start))::float, left(query, 80) "
            "FROM pg_stat_activity WHERE state = 'active' AND backend_type = 'client backend' "
            "AND pid <> pg_backend_pid() AND now() - query_start > make_interval(secs => %s)",
            (SLOW_QUERY_S,)).fetchall()
        idle = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'idle in transaction' "
            "AND now() - state_change > make_interval(secs => %s)", (IDLE_IN_TX_S,)).fetchone()[0]
    return [
        Check("slow_queries", not slow, f"{len(slow)} active queries > {SLOW_QUERY_S:.0f} s",
              {"queries": [list(r) for r in slow]}),
        Check("idle_in_transaction", idle == 0, f"{idle} idle in transaction > 10 min"),
    ]


def check_workers(topo: Topology) -> Check:
    down = [w for w, up in topo.workers.items() if not up]
    return Check("workers", not down, f"down: {down}" if down else "all workers accept connections")


def check_citus(stack: Stack, topo: Topology) -> list[Check]:
    """The guide's Citus health checks on the coordinator: every node reaches every
    other (citus_check_cluster_node_health) and the active workers are exactly
    the worker groups' primaries (citus_get_active_worker_nodes)."""
    from harness.stack import citus

    dsn = stack.dsn(via="router", connect_timeout=3)

    def health() -> Check:
        rows = citus.node_health(dsn)
        bad = [f"{r['from']}->{r['to']}" for r in rows if not r["ok"]]
        return Check("citus_node_health", bool(rows) and not bad,
                     f"{len(rows) - len(bad)}/{len(rows)} node pairs ok" + (f"; failing: {bad}" if bad else ""),
                     {"failing": bad, "pairs": len(rows)})

    def active() -> Check:
        workers = citus.active_workers(dsn)
        prim = citus.primaries(dsn)
        want = {g.citus_group for g in stack.manifest.worker_groups if g.citus_group is not None}
        missing = sorted(want - set(prim))
        ok = not missing and sorted(workers) == sorted(prim.values())
        leaders = {g.name: topo.group_leaders(g.name) for g in stack.manifest.worker_groups}
        return Check("citus_active_workers", ok,
                     f"active workers {workers}; primaries in pg_dist_node by group {prim}"
                     + (f"; worker groups without a primary: {missing}" if missing else "")
                     + f"; Patroni leaders {leaders}", {"active": workers, "primaries": prim})

    return [_guard("citus_node_health", health), _guard("citus_active_workers", active)]


def check_router(stack: Stack) -> Check:
    router = stack.manifest.router
    url = f"http://{stack.endpoint(router.service, router.health_port)}/health"
    resp = requests.get(url, timeout=2)
    return Check("router_health", resp.status_code == 200, f"GET /health -> {resp.status_code}")


def steady_state(stack: Stack) -> SteadyState:
    """Run every check of the daily health check once (those the stack has parts for)."""
    topo = discover(stack)
    manifest = stack.manifest
    checks = [_guard("services", lambda: check_services(stack))]
    checks += _engine_checks(stack)  # e.g. Swarm's `docker stack services NAME`
    for group in manifest.patroni_groups:
        checks.append(check_leader(topo, group.name, _suffix(stack, group.name)))
        checks.append(_guard(f"replicas_streaming{_suffix(stack, group.name)}",
                             lambda g=group.name: check_replicas(stack, topo, g)))
        checks.append(_guard(f"sync_standbys{_suffix(stack, group.name)}",
                             lambda g=group.name: check_sync_standbys(stack, topo, g)))
    checks.append(_guard("replication_lag", lambda: check_replication_lag(stack, topo)))
    checks.append(observe_router_write(stack, topo))
    if manifest.router.health_port is not None:
        checks.append(_guard("router_health", lambda: check_router(stack)))
    if manifest.pooler is not None:
        checks.append(_guard("pgbouncer_pools", lambda: check_pools(stack)))
    if manifest.worker_groups:
        checks.append(check_workers(topo))
    if stack.capabilities().get("citus"):
        checks += check_citus(stack, topo)
    if stack.loop_members:
        checks.append(_guard("disk_space", lambda: check_disk(stack)))
    try:
        checks += check_activity(stack, topo)
    except Exception as exc:
        checks.append(Check("activity", False, f"could not run: {type(exc).__name__}: {exc}"))
    return SteadyState(checks, topo)


def _failing_details(state: SteadyState) -> set[str]:
    return {c.detail for c in state.failing()}


MISROUTE_FOLLOWS = 3  # writes kept on a read-only member this many follow times: the router will not follow
MISROUTE_MIN_S = 10.0


UNDELIVERED = ""  # misrouted()'s member when the router delivered the write to no member at all


def misrouted(state: SteadyState) -> tuple[str, str] | None:
    """(member, leader) when a write through the router reached a read-only member while
    Patroni names one leader, another member; (:data:`UNDELIVERED`, leader) when the router
    delivered it to no member while that leader answered, itself, as the running primary;
    None otherwise."""
    check = next((c for c in state.checks if c.name == "router_write"), None)
    if check is None or check.ok:
        return None
    member, leader = check.data.get("member"), check.data.get("leader")
    if check.data.get("undeliverable") and leader:
        return UNDELIVERED, str(leader)
    if not check.data.get("read_only") or not leader or not member or member == leader:
        return None
    return str(member), str(leader)


def answers_as_primary(stack: Stack, member: str) -> bool:
    """Patroni on ``member`` itself says it runs the primary (GET /primary -> 200)."""
    try:
        return requests.get(f"{stack.patroni_url(member)}/primary", timeout=2).status_code == 200
    except (requests.RequestException, PgchaosError):
        return False


def observe_router_write(stack: Stack, topo: Topology) -> Check:
    """The router_write check; when the write reached no member, whether Patroni's leader
    answered as the running primary meanwhile (then the router, not the cluster, is at fault:
    ``data["undeliverable"]``)."""
    check = _guard("router_write", lambda: check_router_write(stack, topo))
    reached = check.data.get("member") is not None  # the write got to a member (wrong or not)
    if check.ok or reached or topo.leader is None or not answers_as_primary(stack, topo.leader):
        return check
    return Check("router_write", False, f"{check.detail}; Patroni's leader {topo.leader} answers as the "
                 "running primary", {"undeliverable": True, "leader": topo.leader})


class MisrouteWatch:
    """Names a router that does not follow the leader: writes through it keep reaching the
    same read-only member while Patroni's leader stays the same other member, for
    :data:`MISROUTE_FOLLOWS` times the time the stack itself takes to follow a leader
    (``follow()``: Patroni's loop_wait + HAProxy's checks, :func:`harness.bounds.router_follow_s`).
    A correct router follows within one such time; this one will not by itself."""

    def __init__(self, follow: Callable[[], tuple[float, str]], follows: int = MISROUTE_FOLLOWS) -> None:
        self.follow, self.follows = follow, follows
        self.key: tuple[str, str] | None = None
        self.since: float | None = None
        self.hold: tuple[float, str] | None = None

    def see(self, state: SteadyState, now: float | None = None) -> str | None:
        """The reason to give up on (the router does not follow), or None to keep waiting."""
        now = time.monotonic() if now is None else now
        key = misrouted(state)
        if key != self.key or key is None:
            self.key, self.since = key, (now if key is not None else None)
            return None
        assert self.since is not None
        if self.hold is None:
            follow_s, how = self.follow()
            self.hold = (max(MISROUTE_MIN_S, self.follows * follow_s), how)
        held = now - self.since
        if held < self.hold[0]:
            return None
        member, leader = key
        how = (f"reached no member (refused or closed) for {held:.0f} s while Patroni's leader {leader} "
               "answered as the running primary" if member == UNDELIVERED else
               f"reached the read-only member {member} for {held:.0f} s while Patroni's leader was {leader}")
        return (f"the router does not follow the leader: writes through it {how} (the stack follows a leader "
                f"within {self.hold[1]}; waited {self.follows} times that, at least {MISROUTE_MIN_S:g} s)")


def router_follow(stack: Stack) -> tuple[float, str]:
    """The time the stack itself takes to follow a new leader, and how it was derived."""
    from harness.bounds import Timings, read_timings, router_follow_s

    try:
        timings = read_timings(stack)
    except Exception:  # unreadable: HAProxy's and Patroni's defaults, never shorter than the stack's
        timings = Timings()
    return router_follow_s(timings)


def router_observation(stack: Stack) -> SteadyState:
    """Only the router's part of the steady state (where a write through it lands, and
    Patroni's leader): what :class:`MisrouteWatch` needs, cheap enough to look at while a
    scenario waits for recovery."""
    topo = discover(stack)
    return SteadyState([observe_router_write(stack, topo)], topo)


def wait_for_steady_state(stack: Stack, timeout: float = 120.0, interval: float = 0.5) -> SteadyState:
    """Poll until healthy or timeout; returns the last observation. Returns early, the
    reason in the failing check, on what does not mend by itself: a refusal by
    configuration that keeps being logged for :data:`REFUSED_FOR_S`, or a router that
    keeps sending writes to a read-only member past the stack's own time to follow
    the leader (:class:`MisrouteWatch`)."""
    deadline = time.monotonic() + timeout
    watch = RefusalWatch(REFUSED_FOR_S)
    misroute = MisrouteWatch(lambda: router_follow(stack))
    while True:
        try:
            state = steady_state(stack)
        except PgchaosError:
            state = None
        if state is not None and (state.healthy or time.monotonic() >= deadline):
            return state
        if time.monotonic() >= deadline:
            raise PgchaosError("steady state could not be observed")
        if state is not None and watch.see(_failing_details(state)) is not None:
            return state  # refused by configuration, again and again: it will not come by itself
        if state is not None and (reason := misroute.see(state)) is not None:
            for check in state.checks:
                if check.name == "router_write":
                    check.detail += f" — {reason}"
            return state
        time.sleep(interval)
