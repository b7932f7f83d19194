"""The stack manifest: a TOML file that says what a stack is made of.

Patroni groups and their member services, the router, pooler, DCS members,
Toxiproxy links, monitoring, the application database and where its
credentials come from (environment variable names, never the secrets). The
harness names no service of its own: everything it touches comes from here,
and the live roles (leader, sync standby, replicas) from Patroni's REST API.

A swarm someone else deployed is described by the optional `[swarm]` table,
read in attach mode (`--engine swarm-nodes --attach [STACK]`):

    [swarm]
    stack = "postgres-mesh"                      # the deployed stack (`--attach STACK` wins)
    managers = ["tcp://host-a:2376", "ssh://ops@host-b"]   # tried in order; default: $DOCKER_HOST
    [swarm.nodes]                                # each node's own engine, by hostname
    host-a = "tcp://host-a:2376"
    host-c = "ssh://ops@host-c"
    [swarm.ports]                                # "SERVICE:PORT" -> its 127.0.0.1 port
    "coordinator-1:5432" = 15432
    "coordinator-1:8008" = 18008

Endpoints are what `DOCKER_HOST` accepts: `unix://`, `tcp://` (TLS from
`DOCKER_TLS_VERIFY`/`DOCKER_CERT_PATH`), `ssh://`. A manager's API cannot
kill, stop or exec into a task's container on another node; the node's own
engine can, so a node that runs a task of the stack needs its endpoint (a
manager without one under `[swarm.nodes]` is found by its engine's
hostname). pgchaos reaches the stack only on 127.0.0.1: every member's
PostgreSQL port (and REST API port for a Patroni member) must be in
`[swarm.ports]`; the router, pooler, Toxiproxy and monitoring ports may be
too, else their `PGCHAOS_<NAME>_PORT` (or default) is used.

A manifest that does not validate raises ManifestError with one line naming
the key and the fix.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.errors import PgchaosError

ROLES = ("coordinator", "worker", "standalone")
DCS_KINDS = ("etcd",)
LOAD_SCHEMA = "pgchaos"
_CAPABILITY = re.compile(r"^([a-z][a-z0-9-]*)(?:>=(\d+))?$")
_ENDPOINT = re.compile(r"^(unix://.+|tcp://[^/\s]+|ssh://[^/\s]+)$")
_STACK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
ENDPOINT_FIX = 'a Docker endpoint: "unix:///path/docker.sock", "tcp://host:2376" or "ssh://user@host"'


class ManifestError(PgchaosError):
    """The manifest does not describe a usable stack."""


@dataclass(frozen=True)
class Group:
    """One Patroni cluster (or a plain PostgreSQL node when ``patroni`` is false)."""

    name: str
    role: str
    members: tuple[str, ...]
    scope: str | None = None
    citus_group: int | None = None
    patroni: bool = True
    patroni_config: str = "/etc/patroni/patroni.yml"
    rest_port: int = 8008
    pg_port: int = 5432
    spare: bool = False  # not part of the running formation: a replacement started on demand
    compose_profile: str | None = None  # the compose profile that starts a spare group's services


@dataclass(frozen=True)
class Router:
    service: str
    primary_port: int = 5000
    replica_port: int | None = 5001
    stats_port: int | None = None
    health_port: int | None = None


@dataclass(frozen=True)
class Pooler:
    service: str
    port: int = 6432
    admin_db: str = "pgbouncer"


@dataclass(frozen=True)
class Dcs:
    kind: str
    members: tuple[str, ...]
    client_port: int = 2379


@dataclass(frozen=True)
class Toxiproxy:
    """The Toxiproxy API and which proxy is which link."""

    service: str
    api_port: int = 8474
    client: str | None = None  # pooler -> router
    replication: str | None = None  # pattern with {member}: the link that member's replicas use
    workers: dict[str, str] = field(default_factory=dict)  # worker group -> its link ({member}: its primary)


@dataclass(frozen=True)
class Monitoring:
    prometheus: str | None = None
    prometheus_port: int = 9090
    alertmanager: str | None = None  # its API lists active alerts
    alertmanager_port: int = 9093
    alert_receiver: str | None = None  # the webhook receiver whose notifications pgchaos reads
    alert_receiver_port: int = 9095


@dataclass(frozen=True)
class SwarmTarget:
    """A swarm someone else deployed (`[swarm]`, attach mode): where its managers and
    nodes' engines answer, and the 127.0.0.1 port of each service port pgchaos reaches."""

    managers: tuple[str, ...]
    stack: str | None = None
    nodes: dict[str, str] = field(default_factory=dict)  # hostname -> endpoint of its engine
    ports: dict[tuple[str, int], int] = field(default_factory=dict)  # (service, port) -> 127.0.0.1 port


@dataclass(frozen=True)
class Database:
    name: str
    user_env: str
    password_env: str
    defaults: dict[str, str] = field(default_factory=dict)

    def credentials(self) -> tuple[str, str]:
        """(user, password) from the environment, else the manifest's throwaway defaults."""
        user = os.environ.get(self.user_env) or self.defaults.get("user")
        password = os.environ.get(self.password_env) or self.defaults.get("password")
        if not user or password is None:
            missing = " and ".join([self.user_env] * (not user) + [self.password_env] * (password is None))
            raise ManifestError(f"set {missing}: the manifest's [database] takes the credentials from the "
                                "environment (user_env, password_env), or give `defaults` for a throwaway stack")
        return user, password


@dataclass(frozen=True)
class Manifest:
    """A stack described as data (see compose/pgchaos.toml for the reference)."""

    path: Path
    name: str
    compose_files: tuple[str, ...]
    database: Database
    groups: tuple[Group, ...]
    router: Router
    dcs: Dcs
    pooler: Pooler | None = None
    toxiproxy: Toxiproxy | None = None
    monitoring: Monitoring | None = None
    images: str | None = None  # "reference": pgchaos's own images; "citus": those plus the Citus image
    schema_sql: str | None = None  # the stack's own schema, run once the stack is healthy (idempotent)
    config_dir: str | None = None  # copied per run; variants overlay it
    variants_dir: str | None = "variants"
    loop_volumes: bool = False
    volume_size_mb: int = 1024
    features: tuple[str, ...] = ()
    load_setup_sql: str | None = None
    load_clients: int = 200  # the declared client profile: connections at once through the pooler
    tools_service: str | None = None
    env_files: tuple[str, ...] = ()  # the stack's own env files besides its .env, beside the manifest
    spare_groups: tuple[Group, ...] = ()  # [[groups]] with spare = true: not in `groups`
    # [bounds]: waiver bounds set by hand instead of derived from the stack's timings,
    # name -> (seconds, reason); e.g. hard_kill_s = 30 with its reason
    bounds: dict[str, tuple[float, str]] = field(default_factory=dict)
    swarm: SwarmTarget | None = None  # [swarm]: a swarm someone else deployed (attach mode)

    @property
    def dir(self) -> Path:
        return self.path.parent

    def user_env_files(self) -> list[Path]:
        """The stack's own variables, as compose would read them: the `.env` of the
        project folder (the first compose file's), then the manifest's `env_file`s
        (a later file wins)."""
        dotenv = (self.dir / self.compose_files[0]).parent / ".env"
        named = [self.dir / f for f in self.env_files]
        own = dotenv.is_file() and dotenv.resolve() not in {p.resolve() for p in named}
        return ([dotenv] if own else []) + named

    # -- topology as declared ----------------------------------------------------
    @property
    def patroni_groups(self) -> list[Group]:
        return [g for g in self.groups if g.patroni]

    @property
    def coordinator(self) -> Group:
        """The group clients write to: the coordinator, else the first Patroni group."""
        for g in self.groups:
            if g.role == "coordinator":
                return g
        return self.patroni_groups[0]

    @property
    def worker_groups(self) -> list[Group]:
        return [g for g in self.groups if g.role == "worker"]

    @property
    def data_members(self) -> list[str]:
        return [m for g in self.groups for m in g.members]

    def group_of(self, member: str) -> Group | None:
        return next((g for g in self.groups if member in g.members), None)

    def group(self, name: str) -> Group:
        for g in self.groups:
            if g.name == name:
                return g
        raise PgchaosError(f"no group {name!r}; have: {', '.join(g.name for g in self.groups)}")

    def spare_group(self, name: str | None = None) -> Group:
        """A declared spare group (the first one when no name is given)."""
        for g in self.spare_groups:
            if name is None or g.name == name:
                return g
        if not self.spare_groups:
            raise PgchaosError(f"{self.path}: no spare group declared; add a [[groups]] table with spare = true")
        raise PgchaosError(f"no spare group {name!r}; have: {', '.join(g.name for g in self.spare_groups)}")

    def services(self) -> list[str]:
        """Every service the manifest names."""
        names = [*self.data_members, self.router.service, *self.dcs.members]
        if self.pooler:
            names.append(self.pooler.service)
        if self.toxiproxy:
            names.append(self.toxiproxy.service)
        if self.monitoring:
            names += [s for s in (self.monitoring.prometheus, self.monitoring.alertmanager,
                                  self.monitoring.alert_receiver) if s]
        return list(dict.fromkeys(names))

    # -- capabilities ------------------------------------------------------------
    def capabilities(self) -> dict[str, int]:
        """What this stack offers, with a count where one makes sense."""
        caps: dict[str, int] = {
            "router": 1,
            "patroni": len(self.patroni_groups),
            "dcs-members": len(self.dcs.members),
            "coordinator-members": len(self.coordinator.members),
        }
        if self.pooler:
            caps["pooler"] = 1
        if self.toxiproxy:
            caps["toxiproxy"] = 1
            if self.toxiproxy.client:
                caps["client-link"] = 1
            if self.toxiproxy.replication:
                caps["replication-links"] = 1
            if self.toxiproxy.workers:
                caps["worker-links"] = len(self.toxiproxy.workers)
        if self.worker_groups:
            caps["worker-groups"] = len(self.worker_groups)
            standbys = min(len(g.members) for g in self.worker_groups) - 1  # a worker group can fail over
            if standbys > 0:
                caps["worker-standbys"] = standbys
        if any(g.citus_group is not None for g in self.groups):
            caps["citus"] = 1
        if self.monitoring and self.monitoring.prometheus:
            caps["monitoring"] = 1
        if self.monitoring and self.monitoring.alertmanager:
            caps["alerting"] = 1
        if self.loop_volumes:
            caps["loop-volumes"] = 1
        if self.tools_service:
            caps["tools"] = 1
        if self.spare_groups:
            caps["spare-groups"] = len(self.spare_groups)
        for feature in self.features:
            caps.setdefault(feature, 1)
        return caps

    def missing(self, requirements: list[str] | tuple[str, ...]) -> list[str]:
        """The requirements (``pooler``, ``dcs-members>=3``, …) this stack does not meet."""
        return unmet(requirements, self.capabilities())


def unmet(requirements: list[str] | tuple[str, ...], caps: dict[str, int]) -> list[str]:
    """The requirements that `caps` does not meet, each as written (with what there is)."""
    out = []
    for req in requirements:
        m = _CAPABILITY.match(req)
        if m is None:
            raise PgchaosError(f"malformed capability {req!r}: write NAME or NAME>=N")
        name, least = m.group(1), int(m.group(2) or 1)
        have = caps.get(name, 0)
        if have < least:
            out.append(req if have == 0 else f"{req} (has {have})")
    return out


# -- loading and validation ------------------------------------------------------

class _Reader:
    """Typed access to one table of the TOML document, naming the key on error."""

    def __init__(self, path: Path, table: dict[str, Any], where: str, allowed: set[str]) -> None:
        self.path, self.table, self.where = path, table, where
        unknown = sorted(set(table) - allowed)
        if unknown:
            key = f"{where}.{unknown[0]}" if where else unknown[0]
            raise ManifestError(f"{path}: unknown key {key!r}; valid here: {', '.join(sorted(allowed))}")

    def _key(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def fail(self, key: str, fix: str) -> ManifestError:
        return ManifestError(f"{self.path}: {self._key(key)}: {fix}")

    def get(self, key: str, kind: type, default: Any = ..., *, required: bool = False) -> Any:
        if key not in self.table:
            if required or default is ...:
                raise self.fail(key, f"missing; add {key} = <{kind.__name__}>")
            return default
        value = self.table[key]
        if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise self.fail(key, f"must be an integer, not {value!r}")
        if kind is not int and not isinstance(value, kind):
            raise self.fail(key, f"must be a {kind.__name__}, not {value!r}")
        return value

    def names(self, key: str, default: Any = ..., *, allow_empty: bool = False) -> tuple[str, ...]:
        value = self.get(key, list, default)
        if value is None:
            return ()
        if not all(isinstance(v, str) and v for v in value) or (not value and not allow_empty):
            raise self.fail(key, 'must be a non-empty list of service names, e.g. ["patroni1", "patroni2"]')
        return tuple(value)

    def port(self, key: str, default: Any = ...) -> Any:
        value = self.get(key, int, default)
        if value is not None and not 0 < value < 65536:
            raise self.fail(key, f"{value} is not a port number")
        return value

    def sub(self, key: str, allowed: set[str], required: bool = False) -> _Reader | None:
        if key not in self.table:
            if required:
                raise self.fail(key, f"missing table; add [{self._key(key)}]")
            return None
        value = self.table[key]
        if not isinstance(value, dict):
            raise self.fail(key, "must be a table")
        return _Reader(self.path, value, self._key(key), allowed)


def load_manifest(path: str | Path) -> Manifest:
    """Read and validate a manifest; one-line ManifestError on any problem."""
    path = Path(path).resolve()
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"manifest not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"manifest {path}: cannot read it ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(f"manifest {path}: not valid TOML ({exc})") from None
    top = _Reader(path, doc, "", {"stack", "database", "groups", "router", "pooler", "dcs",
                                  "toxiproxy", "monitoring", "load", "bounds", "swarm"})
    stack = top.sub("stack", {"name", "compose_files", "images", "config_dir", "variants_dir",
                              "loop_volumes", "volume_size_mb", "features", "tools_service", "schema_sql",
                              "env_file"},
                    required=True)
    assert stack is not None
    compose_files = stack.names("compose_files", ["docker-compose.yml"])
    images = stack.get("images", str, None)
    if images not in (None, "reference", "citus"):
        raise stack.fail("images", 'must be "reference" (build pgchaos\'s images), "citus" (and the '
                         "Citus image) or left out")
    schema_sql = stack.get("schema_sql", str, None)
    raw_env = stack.get("env_file", object, None)
    env_files = (raw_env,) if isinstance(raw_env, str) else tuple(raw_env or ())
    if not isinstance(raw_env, str | list | None) or not all(isinstance(f, str) and f for f in env_files):
        raise stack.fail("env_file", 'must be a file name or a list of them, e.g. ".env.shop"')
    for name in env_files:
        if not (path.parent / name).is_file():
            raise stack.fail("env_file", f"file not found: {path.parent / name}")
    if schema_sql is not None and not (path.parent / schema_sql).is_file():
        raise stack.fail("schema_sql", f"file not found: {path.parent / schema_sql}")

    db = top.sub("database", {"name", "user_env", "password_env", "defaults"}, required=True)
    assert db is not None
    defaults = db.get("defaults", dict, {})
    if not all(k in ("user", "password") and isinstance(v, str) for k, v in defaults.items()):
        raise db.fail("defaults", 'may only hold user = "..." and password = "..."')
    database = Database(db.get("name", str, required=True), db.get("user_env", str, required=True),
                        db.get("password_env", str, required=True), dict(defaults))

    raw_groups = top.get("groups", list, required=True)
    if not raw_groups:
        raise top.fail("groups", "needs at least one [[groups]] table")
    groups = []
    for i, raw in enumerate(raw_groups):
        if not isinstance(raw, dict):
            raise top.fail(f"groups[{i}]", "must be a table ([[groups]])")
        g = _Reader(path, raw, f"groups[{i}]", {"name", "role", "members", "scope", "citus_group",
                                                "patroni", "patroni_config", "rest_port", "pg_port",
                                                "spare", "compose_profile"})
        role = g.get("role", str, required=True)
        if role not in ROLES:
            raise g.fail("role", f"must be one of {', '.join(ROLES)}, not {role!r}")
        patroni = g.get("patroni", bool, True)
        members = g.names("members")
        spare = g.get("spare", bool, False)
        compose_profile = g.get("compose_profile", str, None)
        if spare and role != "worker":
            raise g.fail("spare", f'only a worker group can be a spare (role = "worker"), not {role!r}')
        if compose_profile is not None and not spare:
            raise g.fail("compose_profile", "only for a spare group: add spare = true, or drop it")
        if compose_profile is not None and not re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*", compose_profile):
            raise g.fail("compose_profile", f"{compose_profile!r} is not a compose profile name")
        groups.append(Group(
            name=g.get("name", str, required=True), role=role, members=members,
            scope=g.get("scope", str, None) if patroni else None,
            citus_group=g.get("citus_group", int, None), patroni=patroni,
            patroni_config=g.get("patroni_config", str, "/etc/patroni/patroni.yml"),
            rest_port=g.port("rest_port", 8008), pg_port=g.port("pg_port", 5432),
            spare=spare, compose_profile=compose_profile))
        if patroni and groups[-1].scope is None:
            raise g.fail("scope", "missing; add the Patroni scope of this group")
    spares = [g for g in groups if g.spare]
    if any(g.citus_group is not None for g in groups):
        for i, g in enumerate(groups):
            if g.spare and g.citus_group is None:
                raise top.fail(f"groups[{i}].citus_group", "missing; a spare group of a Citus stack needs "
                                                           "its Citus group id")
    groups = [g for g in groups if not g.spare]
    if not groups:
        raise top.fail("groups", "needs at least one group that is not a spare (spare = false)")
    if not any(g.patroni for g in groups):
        raise top.fail("groups", "needs at least one Patroni group (patroni = true)")
    if sum(g.role == "coordinator" for g in groups) > 1:
        raise top.fail("groups", "only one group can have role = \"coordinator\"")
    seen: set[str] = set()
    for g in [*groups, *spares]:
        for m in g.members:
            if m in seen:
                raise ManifestError(f"{path}: groups: member {m!r} is in two groups")
            seen.add(m)
    if len({g.name for g in [*groups, *spares]}) != len(groups) + len(spares):
        raise top.fail("groups", "group names must be unique")
    citus_ids = [g.citus_group for g in [*groups, *spares] if g.citus_group is not None]
    if len(set(citus_ids)) != len(citus_ids):
        twice = sorted({c for c in citus_ids if citus_ids.count(c) > 1})
        if any(g.citus_group in twice for g in spares):
            raise top.fail("groups", "a spare group's citus_group must differ from every other group's")
        raise top.fail("groups", f"citus_group {twice[0]} is given to two groups; each Citus group "
                                 "(0 = coordinator, 1… = workers) is one Patroni group")

    r = top.sub("router", {"service", "primary_port", "replica_port", "stats_port", "health_port"},
                required=True)
    assert r is not None
    router = Router(r.get("service", str, required=True), r.port("primary_port", 5000),
                    r.port("replica_port", None), r.port("stats_port", None), r.port("health_port", None))

    d = top.sub("dcs", {"kind", "members", "client_port"}, required=True)
    assert d is not None
    kind = d.get("kind", str, "etcd")
    if kind not in DCS_KINDS:
        raise d.fail("kind", f"must be one of {', '.join(DCS_KINDS)}, not {kind!r}")
    dcs = Dcs(kind, d.names("members"), d.port("client_port", 2379))

    pooler = None
    if (p := top.sub("pooler", {"service", "port", "admin_db"})) is not None:
        pooler = Pooler(p.get("service", str, required=True), p.port("port", 6432),
                        p.get("admin_db", str, "pgbouncer"))

    toxi = None
    if (t := top.sub("toxiproxy", {"service", "api_port", "client", "replication", "workers"})) is not None:
        workers = t.get("workers", dict, {})
        names = {g.name for g in groups if g.role == "worker"}
        for k, v in workers.items():
            if k not in names or not isinstance(v, str):
                raise t.fail(f"workers.{k}", f'must map a worker group ({", ".join(sorted(names)) or "none"}) '
                                             'to a proxy name')
        replication = t.get("replication", str, None)
        if replication is not None and "{member}" not in replication:
            raise t.fail("replication", 'must be a pattern with {member}, e.g. "replication-{member}"')
        toxi = Toxiproxy(t.get("service", str, required=True), t.port("api_port", 8474),
                         t.get("client", str, None), replication, dict(workers))

    monitoring = None
    if (mo := top.sub("monitoring", {"prometheus", "prometheus_port", "alertmanager", "alertmanager_port",
                                     "alert_receiver", "alert_receiver_port"})) is not None:
        monitoring = Monitoring(mo.get("prometheus", str, None), mo.port("prometheus_port", 9090),
                                mo.get("alertmanager", str, None), mo.port("alertmanager_port", 9093),
                                mo.get("alert_receiver", str, None), mo.port("alert_receiver_port", 9095))
        if monitoring.alert_receiver and not monitoring.alertmanager:
            raise mo.fail("alert_receiver", "needs alertmanager (the service that sends to it)")

    load_sql = None
    clients = 200
    if (lo := top.sub("load", {"setup_sql", "clients"})) is not None:
        clients = lo.get("clients", int, 200)
        if clients < 1:
            raise lo.fail("clients", "must be at least 1")
        load_sql = lo.get("setup_sql", str, None)
        if load_sql is not None and not (path.parent / load_sql).is_file():
            raise lo.fail("setup_sql", f"file not found: {path.parent / load_sql}")

    bounds: dict[str, tuple[float, str]] = {}
    b = top.sub("bounds", {"hard_kill_s", "reason"})
    if b is not None:
        reason = b.get("reason", str, required=True)
        value = b.table.get("hard_kill_s")
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 3600:
                raise b.fail("hard_kill_s", "must be a number of seconds in (0, 3600)")
            bounds["hard-kill"] = (float(value), reason)

    features = stack.names("features", (), allow_empty=True)
    size = stack.get("volume_size_mb", int, 1024)
    if size < 64:
        raise stack.fail("volume_size_mb", "must be at least 64")
    manifest = Manifest(
        path=path, name=stack.get("name", str, path.parent.name), compose_files=compose_files,
        database=database, groups=tuple(groups), router=router, dcs=dcs, pooler=pooler,
        toxiproxy=toxi, monitoring=monitoring, images=images, config_dir=stack.get("config_dir", str, None),
        variants_dir=stack.get("variants_dir", str, "variants"),
        loop_volumes=stack.get("loop_volumes", bool, False), volume_size_mb=size, features=features,
        schema_sql=schema_sql, load_setup_sql=load_sql, load_clients=clients,
        tools_service=stack.get("tools_service", str, None), env_files=env_files, spare_groups=tuple(spares),
        bounds=bounds)
    if (sw := top.sub("swarm", {"stack", "managers", "nodes", "ports"})) is not None:
        manifest = replace(manifest, swarm=_swarm_target(sw, manifest))
    for name in compose_files:
        if not (manifest.dir / name).is_file():
            raise stack.fail("compose_files", f"file not found: {manifest.dir / name}")
    if manifest.config_dir is not None and not (manifest.dir / manifest.config_dir).is_dir():
        raise stack.fail("config_dir", f"folder not found: {manifest.dir / manifest.config_dir}")
    return manifest


def _swarm_target(sw: _Reader, manifest: Manifest) -> SwarmTarget:
    """`[swarm]`: endpoints checked for their scheme, every member's ports given."""
    stack = sw.get("stack", str, None)
    if stack is not None and not _STACK_NAME.match(stack):
        raise sw.fail("stack", f"{stack!r} is not a stack name (letters, digits, - and _)")
    managers = sw.get("managers", list, None)
    if managers is None and os.environ.get("DOCKER_HOST"):  # the manager the docker CLI already uses
        managers = [os.environ["DOCKER_HOST"]]
        if not _ENDPOINT.match(managers[0]):
            raise sw.fail("managers", f"not given, and DOCKER_HOST={managers[0]!r} is not {ENDPOINT_FIX}")
    if not managers:
        raise sw.fail("managers", f'needs at least one manager, e.g. ["tcp://host-a:2376"] (or DOCKER_HOST set '
                                  f"to one); each {ENDPOINT_FIX}")
    for i, url in enumerate(managers):
        if not isinstance(url, str) or not _ENDPOINT.match(url):
            raise sw.fail(f"managers[{i}]", f"{url!r} is not {ENDPOINT_FIX}")
    nodes = sw.get("nodes", dict, {})
    for name, url in nodes.items():
        if not isinstance(url, str) or not _ENDPOINT.match(url):
            raise sw.fail(f"nodes.{name}", f"{url!r} is not {ENDPOINT_FIX} (the engine of the node with that "
                                           "hostname)")
    raw_ports = sw.get("ports", dict, {})
    services = set(manifest.services())
    ports: dict[tuple[str, int], int] = {}
    for key, host in raw_ports.items():
        service, _, port = key.rpartition(":")
        if service not in services or not port.isdigit() or not 0 < int(port) < 65536:
            raise sw.fail(f"ports.{key!r}", 'keys are "SERVICE:PORT", a service the manifest names and its '
                                            'container port, e.g. "coordinator-1:5432"')
        if isinstance(host, bool) or not isinstance(host, int) or not 0 < host < 65536:
            raise sw.fail(f"ports.{key!r}", f"{host!r} is not a port number (the 127.0.0.1 port that reaches it)")
        ports[(service, int(port))] = host
    for group in manifest.groups:
        for member in group.members:
            for port in (group.pg_port, *([group.rest_port] if group.patroni else [])):
                if (member, port) not in ports:
                    raise sw.fail("ports", f'missing "{member}:{port}"; add "{member}:{port}" = <the 127.0.0.1 '
                                           "port that reaches it> (pgchaos reaches a swarm only on 127.0.0.1)")
    return SwarmTarget(tuple(managers), stack, dict(nodes), ports)


def check_against_services(manifest: Manifest, services: list[str]) -> None:
    """Every service the manifest names must exist in the compose files."""
    missing = [s for s in manifest.services() if s not in services]
    if manifest.tools_service and manifest.tools_service not in services:
        missing.append(manifest.tools_service)
    if missing:
        raise ManifestError(
            f"{manifest.path}: service {missing[0]!r} is not in the compose files "
            f"({', '.join(manifest.compose_files)}); services there: {', '.join(sorted(services))}")
