"""The installable product: the wheel built from this tree, installed into a fresh
virtualenv and used from an empty folder, is a working `pgchaos` — reference
stack, scenarios, targets table and locustfile included as package data — and its
pytest plugin leaves nothing behind in a session that does not use it.

No Docker. The virtualenv sees the system's site-packages (pytest, psycopg,
locust, ... are not downloaded again) but pgchaos itself comes from the wheel:
every check asserts that `harness` is imported from the virtualenv. About 20–40 s.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness import assets
from harness.stack import images

pytestmark = pytest.mark.wheel

REPO = Path(__file__).resolve().parents[1]
# what a working tree may hold that is no source: run state, build output, caches
NOT_SOURCE = {".git", "reports", "build", "dist", ".venv", "__pycache__", ".pytest_cache", ".ruff_cache",
              ".hypothesis", ".data", ".backups"}
USER_TEST = '''\
import pytest

from harness import assert_verdict


@pytest.mark.scenario
@pytest.mark.target("coordinator-failure")
def test_my_own_fault(scenario_run):
    with scenario_run("my_own_fault") as run:
        fault = run.nemesis.inject("stop", "primary")
        run.wait_for_recovery()
        run.nemesis.heal(fault)
    assert_verdict(run.verdict)


def test_my_options(pgchaos_options, pgchaos_stack):
    assert pgchaos_options.load_users >= 0
'''
TRIVIAL_TEST = "def test_trivial():\n    assert 1 == 1\n"


def _ignore(folder: str, names: list[str]) -> set[str]:
    ignored = {n for n in names if n in NOT_SOURCE or n.endswith(".egg-info")}
    if Path(folder).name == "toxiproxy":
        ignored.add("bin")  # built binaries, never shipped
    return ignored


@dataclass
class Installed:
    venv: Path
    wheel: Path
    workdir: Path  # an empty folder the commands run in
    timings: dict[str, float]

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def run(self, *cmd: str | Path, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTEST_ADDOPTS")}
        env.update(PYTHONDONTWRITEBYTECODE="1", PATH=f"{self.venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
                   VIRTUAL_ENV=str(self.venv))
        proc = subprocess.run([str(c) for c in cmd], cwd=self.workdir, env=env, capture_output=True, text=True,
                              timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"{cmd} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        return proc

    def files(self) -> set[str]:
        return {str(p.relative_to(self.workdir)) for p in self.workdir.rglob("*")}


def _build_wheel(src: Path, out: Path) -> Path:
    """The wheel, as a user builds it (build isolation, so the declared setuptools);
    without network, the local setuptools and wheel when they are installed."""
    base = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(src)]
    proc = subprocess.run(base, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        proc = subprocess.run([*base, "--no-build-isolation"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"pip wheel failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    [wheel] = out.glob("pgchaos-*.whl")
    return wheel


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    import time

    root = tmp_path_factory.mktemp("wheel")
    timings: dict[str, float] = {}
    t = time.monotonic()
    src = root / "src"  # a copy: building in the tree would leave build/ and egg-info in it
    shutil.copytree(REPO, src, ignore=_ignore, symlinks=True)
    wheel = _build_wheel(src, root / "dist")
    timings["build"] = time.monotonic() - t
    t = time.monotonic()
    env_dir = root / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)
    install = subprocess.run([str(env_dir / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-deps",
                              "--no-index", "--ignore-installed", str(wheel)],
                             capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr[-2000:]
    timings["install"] = time.monotonic() - t
    workdir = root / "empty"
    workdir.mkdir()
    yield Installed(env_dir, wheel, workdir, timings)
    print(f"\nwheel: built in {timings['build']:.1f} s, installed in {timings['install']:.1f} s")


def test_harness_comes_from_the_wheel(installed: Installed) -> None:
    out = installed.run(installed.python, "-c", "import harness, harness.assets as a; "
                        "print(harness.__file__); print(a.compose_dir()); print(a.checkout_root())")
    harness_file, compose, checkout = out.stdout.split()
    venv_dir = str(installed.venv.resolve())
    assert harness_file.startswith(venv_dir) and compose.startswith(venv_dir), out.stdout
    assert checkout == "None"


def test_version(installed: Installed) -> None:
    out = installed.run("pgchaos", "--version")
    assert out.stdout.strip() == f"pgchaos {assets.version()}"


def test_list_shows_the_shipped_catalogue(installed: Installed) -> None:
    doc = json.loads(installed.run("pgchaos", "list", "--json").stdout)
    shipped = sorted(p.stem.removeprefix("test_") for p in (REPO / "scenarios").glob("test_*.py"))
    assert sorted(doc["scenarios"]) == shipped
    assert "coordinator-failure" in json.dumps(doc["targets"])
    assert installed.files() == set()


def test_package_data_is_complete_and_hashes_like_the_checkout(installed: Installed) -> None:
    probe = ("import json, os; from harness import assets; from harness.stack import images; "
             "c = assets.compose_dir(); "
             "print(json.dumps({'hash': images.inputs_hash(c), 'images': images.image_names(c), "
             "'files': sorted(str(p.relative_to(assets.assets_root())) for p in assets.assets_root().rglob('*') "
             "if p.is_file() and '__pycache__' not in p.parts), "
             "'exec': sorted(str(p.relative_to(c)) for p in c.rglob('*.sh') if os.access(p, os.X_OK)), "
             "'locustfile': assets.locustfile().is_file(), 'targets': assets.targets_file().is_file()}))")
    doc = json.loads(installed.run(installed.python, "-c", probe).stdout)
    tracked = subprocess.run(["git", "ls-files", "compose", "scenarios", "loadtests"], cwd=REPO,
                             capture_output=True, text=True)
    if tracked.returncode == 0:  # every tracked asset ships (untracked new ones are in the wheel too)
        assert set(tracked.stdout.split()) <= set(doc["files"]), set(tracked.stdout.split()) - set(doc["files"])
    assert not any("toxiproxy/bin/" in f for f in doc["files"])
    assert doc["locustfile"] and doc["targets"]
    assert doc["images"] == images.image_names(assets.compose_dir())
    assert doc["hash"] == images.inputs_hash(assets.compose_dir())  # images built from a checkout are reused
    executable = {str(p.relative_to(REPO / "compose")) for p in (REPO / "compose").rglob("*.sh")
                  if os.access(p, os.X_OK)}
    assert executable and executable <= set(doc["exec"])


def test_every_harness_package_is_in_the_wheel(installed: Installed) -> None:
    """pyproject.toml lists the packages (the asset folders are mapped into harness/_assets)."""
    import zipfile

    shipped = {str(Path(n).parent) for n in zipfile.ZipFile(installed.wheel).namelist() if n.endswith(".py")}
    here = {str(p.parent.relative_to(REPO)) for p in (REPO / "harness").rglob("__init__.py")}
    assert here <= shipped, f"add to [tool.setuptools] packages: {sorted(here - shipped)}"


def test_a_users_own_scenario_is_collected(installed: Installed) -> None:
    (installed.workdir / "test_mine.py").write_text(USER_TEST)
    try:
        out = installed.run(installed.python, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider")
        assert "test_mine.py::test_my_own_fault" in out.stdout and "test_mine.py::test_my_options" in out.stdout
        assert installed.files() == {"test_mine.py"}
    finally:
        (installed.workdir / "test_mine.py").unlink()


def test_the_shipped_scenarios_are_collected(installed: Installed) -> None:
    out = installed.run(installed.python, "-c", "from harness import assets; print(assets.scenarios_dir())")
    scenarios = out.stdout.strip()
    out = installed.run(installed.python, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                        "--rootdir", scenarios, "-c", os.devnull, scenarios)
    assert "test_coordinator_hard_loss.py::test_coordinator_hard_loss" in out.stdout
    assert installed.files() == set()


def test_run_hands_the_shipped_scenarios_to_pytest(installed: Installed) -> None:
    out = installed.run("pgchaos", "run", "coordinator_hard_loss", "--", "--collect-only", "-q")
    assert "test_coordinator_hard_loss.py::test_coordinator_hard_loss" in out.stdout
    assert installed.files() == set()
    soak = installed.run("pgchaos", "soak", "--minutes", "1", check=False)
    assert soak.returncode == 2 and "checkout" in soak.stderr


def test_a_plain_session_leaves_nothing_behind(installed: Installed) -> None:
    (installed.workdir / "test_trivial.py").write_text(TRIVIAL_TEST)
    try:
        out = installed.run(installed.python, "-m", "pytest", "-p", "no:cacheprovider")
        assert "1 passed" in out.stdout
        [plugins] = [line for line in out.stdout.splitlines() if line.startswith("plugins:")]
        assert "pgchaos-" in plugins  # the plugin is loaded, and inert
        assert installed.files() == {"test_trivial.py"}  # no reports/, no allure results
    finally:
        (installed.workdir / "test_trivial.py").unlink()


def _optional(tree: object) -> set[int]:
    """ids of the import nodes under `try: … except ImportError` (optional speed-ups)."""
    import ast

    out: set[int] = set()
    for node in ast.walk(tree):  # type: ignore[arg-type]
        if isinstance(node, ast.Try) and any(
                isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError")
                for h in node.handlers):
            out |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return out


def _third_party_imports(wheel: Path) -> dict[str, str]:
    """Top-level module -> the first file of the wheel's harness package that imports it
    (the standard library, harness itself and optional imports left out)."""
    import ast
    import zipfile

    found: dict[str, str] = {}
    with zipfile.ZipFile(wheel) as zf:
        for name in zf.namelist():
            if not name.startswith("harness/") or not name.endswith(".py") or name.startswith("harness/_assets/"):
                continue
            tree = ast.parse(zf.read(name))
            optional = _optional(tree)
            for node in ast.walk(tree):
                if id(node) in optional:
                    continue
                if isinstance(node, ast.Import):
                    mods = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    mods = [node.module]
                else:
                    continue
                for mod in mods:
                    top = mod.split(".")[0]
                    if top not in sys.stdlib_module_names and top != "harness":
                        found.setdefault(top, name)
    return found


def _declared_closure(wheel: Path) -> set[str]:
    """The wheel's declared dependencies and, as installed here, theirs (normalised names)."""
    import contextlib
    import importlib.metadata as md
    import re
    import zipfile

    def norm(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    def names(requires: list[str] | None) -> list[str]:
        return [re.split(r"[ ;<>=!~\[(]", r, maxsplit=1)[0] for r in requires or [] if "extra ==" not in r]

    with zipfile.ZipFile(wheel) as zf:
        [meta] = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
        text = zf.read(meta).decode()
    todo = [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Requires-Dist:")]
    todo = names(todo)
    seen: set[str] = set()
    while todo:
        dist = norm(todo.pop())
        if dist in seen:
            continue
        seen.add(dist)
        with contextlib.suppress(md.PackageNotFoundError):  # not installed here: its own are unknown
            todo += names(md.requires(dist))
    return seen


def test_every_import_is_a_declared_dependency(installed: Installed) -> None:
    """A clean environment from the wheel has every module the package imports: each
    third-party import is a declared dependency (or one of theirs), and every module
    of the package imports in the virtualenv."""
    import importlib.metadata as md
    import re

    declared = _declared_closure(installed.wheel)
    dists = md.packages_distributions()
    undeclared = {}
    for top, where in _third_party_imports(installed.wheel).items():
        providers = {re.sub(r"[-_.]+", "-", d).lower() for d in dists.get(top, [])}
        if not providers & declared:
            undeclared[top] = f"{where} (distribution {', '.join(sorted(providers)) or 'unknown'})"
    assert not undeclared, f"imported but not in [project] dependencies: {undeclared}"
    probe = ("import importlib, pkgutil, harness\n"
             "for m in pkgutil.walk_packages(harness.__path__, 'harness.'):\n"
             "    if not m.name.startswith('harness._assets'):\n"
             "        importlib.import_module(m.name)\n"
             "print('ok')")
    assert installed.run(installed.python, "-c", probe).stdout.strip() == "ok"
    assert installed.files() == set()
