"""The engine seam, without Docker: every registered engine (and the in-memory
double) implements the whole `Deployment` protocol with its signatures, is
created from an `EngineContext`, declares what it serves; nothing outside
`harness/engines/` branches on an engine's name; and the package has no import
loop, counting imports inside functions."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest
from fake_deployment import NETWORK, FakeDeployment

from harness import engines
from harness.engines.base import Deployment, EngineContext
from harness.errors import PgchaosError
from harness.stack.manifest import load_manifest
from harness.stack.spec import COMPOSE_DIR, Ports

HARNESS = Path(__file__).resolve().parents[1] / "harness"
ENGINE_CLASSES = [engines.engine(name) for name in engines.names()] + [FakeDeployment]


def protocol_members() -> list[str]:
    own = {n for n in vars(Deployment) if not n.startswith("_")}
    return sorted(own | set(Deployment.__annotations__))


@pytest.mark.parametrize("cls", ENGINE_CLASSES, ids=lambda c: c.name)
def test_every_engine_has_the_whole_protocol_with_its_signatures(cls: type) -> None:
    for member in protocol_members():
        if member in Deployment.__annotations__:
            continue  # instance or class data, checked on a created deployment below
        assert callable(getattr(cls, member, None)), f"{cls.__name__} lacks {member}"
        want = list(inspect.signature(getattr(Deployment, member)).parameters)
        have = list(inspect.signature(getattr(cls, member)).parameters)
        assert have[:len(want)] == want, f"{cls.__name__}.{member}{have} != protocol {want}"


def context(tmp_path: Path, attach: str | None = None) -> EngineContext:
    return EngineContext(run_id="20261204-000000-abcd", manifest=load_manifest(COMPOSE_DIR / "pgchaos.toml"),
                         ports=Ports(), state_dir=tmp_path, env_file=tmp_path / "compose.env",
                         override_file=tmp_path / "override.yml", attach=attach, progress=lambda msg: None)


@pytest.mark.parametrize("cls", ENGINE_CLASSES, ids=lambda c: c.name)
def test_an_engine_is_created_from_a_context_in_each_mode_it_has(cls: type, tmp_path: Path) -> None:
    dep = cls.create(context(tmp_path))
    assert dep.provisioned and dep.project and dep.name == cls.name
    assert isinstance(cls.capabilities({"tools": 1, "patroni": 1}), dict)
    if cls.can_attach:
        attached = cls.create(context(tmp_path, attach="someone-elses"))
        assert attached.project == "someone-elses"


def test_the_registry_names_each_engine_by_its_own_name_and_refuses_others() -> None:
    assert engines.names()[0] == engines.DEFAULT_ENGINE
    for name in engines.names():
        assert engines.engine(name).name == name and engines.descriptions()[name]
    with pytest.raises(PgchaosError, match="unknown engine 'nomad'; valid: compose, swarm"):
        engines.engine("nomad")


def test_engines_declare_what_they_serve() -> None:
    caps = {"tools": 1, "patroni": 1}
    assert engines.engine("compose").capabilities(dict(caps)) == {**caps, "partition": 1}
    assert engines.engine("swarm").capabilities(dict(caps)) == {"patroni": 1, "swarm": 1}
    assert "partition" not in engines.engine("swarm-nodes").capabilities(dict(caps))  # a task keeps its overlay


class Box:
    """A container of docker-py's shape."""

    def __init__(self) -> None:
        self.status = "running"

    def reload(self) -> None:
        pass

    def kill(self, signal: str = "SIGKILL") -> None:
        self.status = "exited"

    def stop(self, timeout: int = 10) -> None:
        self.status = "exited"

    def pause(self) -> None:
        self.status = "paused"

    def unpause(self) -> None:
        self.status = "running"

    def start(self) -> None:
        self.status = "running"


def test_the_verbs_take_effect_and_heal_all_undoes_every_one() -> None:
    boxes = {name: Box() for name in ("a", "b", "c", "d")}
    dep = FakeDeployment(dict(boxes))
    dep.kill("a")
    dep.stop("b")
    dep.pause("c")
    dep.disconnect("d")
    assert [boxes[n].status for n in "abc"] == ["exited", "exited", "paused"]
    assert dep.networks_of("d") == (NETWORK, [])
    dep.heal_all()
    assert all(b.status == "running" for b in boxes.values()) and dep.networks_of("d") == (NETWORK, [NETWORK])
    with pytest.raises(PgchaosError, match="no service 'zz'"):
        dep.kill("zz")


def test_nothing_outside_the_engines_branches_on_an_engine_name() -> None:
    """No comparison with an engine's name and no import of one engine's package outside
    harness/engines/ (they pick through the registry and the protocol)."""
    names = set(engines.names())
    offenders = []
    for path in HARNESS.rglob("*.py"):
        if "engines" in path.relative_to(HARNESS).parts:
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare):
                consts = [c.value for c in [node.left, *node.comparators] if isinstance(c, ast.Constant)]
                consts += [e.value for c in node.comparators if isinstance(c, ast.Tuple | ast.List | ast.Set)
                           for e in c.elts if isinstance(e, ast.Constant)]
                if names & {c for c in consts if isinstance(c, str)}:
                    offenders.append(f"{path.name}:{node.lineno} compares with an engine name")
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                    tuple(f"harness.engines.{n}" for n in names)):
                offenders.append(f"{path.name}:{node.lineno} imports {node.module}")
    assert offenders == []


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> harness modules it imports, at module level or inside functions
    (imports under `if TYPE_CHECKING:` excluded: they never run)."""
    mods = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root.parent).with_suffix("").parts
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path

    def resolve(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        tree = ast.parse(path.read_text())
        typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                       and getattr(node.test, "id", "") == "TYPE_CHECKING" for n in ast.walk(node)}
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            targets: list[str | None] = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [resolve(f"{node.module}.{a.name}") or resolve(node.module) for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [resolve(a.name) for a in node.names]
            graph[mod] |= {t for t in targets if t and t != mod}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected sets of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_harness_has_no_import_loop() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]  # the finder finds
    assert cycles(import_graph(HARNESS)) == []
