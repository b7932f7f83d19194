"""Without Docker: each fault's look at its effect is recorded in the history
(process "observer", f "fault-effect", type ok/fail, value {fault, target,
evidence}) before the fault's heal, a fault that did nothing records "fail",
and the fixes around injection (etcd-outage's real target, disk fill exit
codes, parameter checks, `run -- ARGS`, one-line errors, --keep-stack after a
failed start, Ctrl-C's disposition in pytest children)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fake_deployment import FakeDeployment

from harness import cli, session
from harness.errors import PgchaosError
from harness.history import HistoryWriter, read_history
from harness.nemesis import faults as faults_module
from harness.nemesis import nemesis as nemesis_module
from harness.nemesis.faults import CATALOGUE, check_params, fill_to_enospc
from harness.nemesis.nemesis import Nemesis


class FakeContainer:
    """A container whose kill/stop/pause take effect only when `effective`."""

    def __init__(self, name: str, status: str = "running", effective: bool = True) -> None:
        self.name = self.id = name
        self.status = status
        self.effective = effective
        self.attrs: dict[str, Any] = {"State": {"StartedAt": "t0", "FinishedAt": "f0", "ExitCode": 0}}

    def reload(self) -> None:
        pass

    def kill(self, signal: str = "SIGKILL") -> None:
        if self.effective and self.status == "running":
            self.status = "exited"
            self.attrs["State"].update(FinishedAt="f1", ExitCode=137)

    def pause(self) -> None:
        if self.effective:
            self.status = "paused"

    def start(self) -> None:
        self.status = "running"

    def unpause(self) -> None:
        self.status = "running"

    def stop(self, timeout: int = 10) -> None:
        self.kill()


class FakeProxy:
    def __init__(self, links: FakeLinks, name: str) -> None:
        self.links, self.name = links, name
        self.enabled = links.enabled.get(name, True)

    def toxics(self) -> dict[str, Any]:
        return dict(self.links.toxics.get(self.name, {}))


class FakeLinks:
    """Toxiproxy links; with `keep=False` Toxiproxy forgets every toxic it is given."""

    def __init__(self, keep: bool = True) -> None:
        self.keep = keep
        self.toxics: dict[str, dict[str, Any]] = {}
        self.enabled: dict[str, bool] = {}

    def names(self) -> list[str]:
        return ["pooler-router"]

    def add_toxic(self, link: str, fault: str, stream: str = "downstream", **attrs: Any) -> str:
        name = f"pgchaos-{fault}-{stream}"
        if self.keep:
            self.toxics.setdefault(link, {})[name] = SimpleNamespace(type=fault, stream=stream,
                                                                     attributes=attrs)
        return name

    def remove_toxic(self, link: str, name: str) -> None:
        self.toxics.get(link, {}).pop(name, None)

    def set_enabled(self, link: str, enabled: bool) -> None:
        if self.keep:
            self.enabled[link] = enabled

    def _proxy(self, link: str) -> FakeProxy:
        return FakeProxy(self, link)

    def reset(self) -> None:
        self.toxics.clear()
        self.enabled.clear()


class FakeStack:
    def __init__(self, containers: dict[str, FakeContainer]) -> None:
        self.project = "pgchaos-fake"
        self._containers = containers
        self.deployment = FakeDeployment(containers)
        self.manifest = SimpleNamespace(dcs=SimpleNamespace(members=["etcd"]),
                                        services=lambda: list(containers))
        self.loop_members: list[str] = []
        self.attached = False

    def container(self, service: str) -> FakeContainer:
        if service not in self._containers:
            raise PgchaosError(f"no service {service!r}")
        return self._containers[service]

    def containers(self) -> dict[str, FakeContainer]:
        return dict(self._containers)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Any:
    """(stack, links, nemesis factory): roles resolve to themselves, no Docker, no Toxiproxy."""
    links = FakeLinks()
    monkeypatch.setattr(nemesis_module, "toxiproxy_links", lambda stack: links)
    monkeypatch.setattr(nemesis_module, "resolve_node", lambda stack, role: role)
    monkeypatch.setattr(nemesis_module, "resolve_link", lambda stack, role, names: role)

    def make(containers: dict[str, FakeContainer], history: HistoryWriter | None = None,
             keep_toxics: bool = True) -> Nemesis:
        links.keep = keep_toxics
        nem = Nemesis(FakeStack(containers), history, timeout_multiplier=0.03)  # ~0.3 s looks
        return nem

    return make


def observations(path: Path) -> list[Any]:
    return [op for op in read_history(path) if op.process == "observer"]


def test_a_kill_that_took_effect_is_observed_ok(fake: Any, tmp_path: Path) -> None:
    with HistoryWriter(tmp_path / "h.jsonl") as history:
        nem = fake({"worker-1": FakeContainer("worker-1")}, history)
        active = nem.inject("kill", "worker-1")
        nem.heal(active)
    ops = read_history(tmp_path / "h.jsonl")
    [seen] = observations(tmp_path / "h.jsonl")
    assert (seen.type, seen.f, seen.node) == ("ok", "fault-effect", "worker-1")
    assert seen.value == {"fault": active.id, "target": "worker-1",
                          "evidence": "container exited (exit code 137)"}
    heal = next(op for op in ops if op.f == "heal")
    assert ops[active.id].f == "kill" and seen.index < heal.index, "the look comes before the heal"


@pytest.mark.parametrize("case", ["kill on a container already stopped", "kill that does nothing",
                                  "pause that does nothing"])
def test_a_fault_that_did_nothing_records_fail(fake: Any, tmp_path: Path, case: str) -> None:
    container = {"kill on a container already stopped": FakeContainer("worker-1", status="exited"),
                 "kill that does nothing": FakeContainer("worker-1", effective=False),
                 "pause that does nothing": FakeContainer("worker-1", effective=False)}[case]
    fault = "pause" if case.startswith("pause") else "kill"
    with HistoryWriter(tmp_path / "h.jsonl") as history:
        nem = fake({"worker-1": container}, history)
        active = nem.inject(fault, "worker-1")
        nem.heal_all()
    [seen] = observations(tmp_path / "h.jsonl")
    assert seen.type == "fail" and seen.value["fault"] == active.id, seen
    assert seen.value["evidence"], "a fail says what was seen instead"
    assert active.effect is not None and active.effect["seen"] is False


def test_a_toxic_that_toxiproxy_did_not_keep_records_fail(fake: Any, tmp_path: Path) -> None:
    with HistoryWriter(tmp_path / "h.jsonl") as history:
        nem = fake({}, history, keep_toxics=False)
        active = nem.inject("latency", "pooler-router", latency=300)
        nem.heal_all()
    [seen] = observations(tmp_path / "h.jsonl")
    assert seen.type == "fail" and "pgchaos-latency-downstream" in seen.value["evidence"]
    assert seen.value["target"] == active.target == "pooler-router"


@pytest.mark.parametrize("fault,params", [("latency", {"latency": 300, "stream": "upstream"}),
                                          ("link-down", {})])
def test_a_link_fault_read_back_from_toxiproxy_is_observed_ok(fake: Any, tmp_path: Path, fault: str,
                                                               params: dict[str, Any]) -> None:
    with HistoryWriter(tmp_path / "h.jsonl") as history:
        nem = fake({}, history)
        nem.inject(fault, "pooler-router", **params)
        nem.heal_all()
    [seen] = observations(tmp_path / "h.jsonl")
    assert seen.type == "ok", seen.value
    assert ("latency upstream" if fault == "latency" else "enabled=false") in seen.value["evidence"]


def test_without_a_history_the_effect_is_returned(fake: Any) -> None:
    nem = fake({"worker-1": FakeContainer("worker-1")})
    active = nem.inject("pause", "worker-1")
    assert nem.observed(active) == {"seen": True, "evidence": "container status paused",
                                    "after_s": active.effect["after_s"]}
    nem.heal(active)


def test_every_fault_has_an_effect_to_look_for() -> None:
    assert [name for name, fault in CATALOGUE.items() if fault.effect is None] == []


def test_etcd_outage_records_and_stops_the_dcs_member(fake: Any, tmp_path: Path) -> None:
    etcd = FakeContainer("etcd")
    with HistoryWriter(tmp_path / "h.jsonl") as history:
        nem = fake({"etcd": etcd, "coordinator-1": FakeContainer("coordinator-1")}, history)
        with pytest.raises(PgchaosError, match="etcd-outage stops a DCS member, not 'coordinator-1'"):
            nem.inject("etcd-outage", "coordinator-1")
        active = nem.inject("etcd-outage", "etcd")
        assert etcd.status == "exited" and active.target == "etcd"
        nem.heal(active)
    fault_op = next(op for op in read_history(tmp_path / "h.jsonl") if op.f == "etcd-outage")
    assert fault_op.value["target"] == "etcd"
    assert etcd.status == "running"


# -- parameters -----------------------------------------------------------------------
@pytest.mark.parametrize("fault,params,needle", [
    ("latency", {"latency": "abc"}, "latency='abc' is not a number"),
    ("latency", {"latency": "-5"}, "latency='-5' must be a finite number >= 0"),
    ("latency", {"rate": "5"}, "latency takes no parameter 'rate'; valid: latency, jitter, stream"),
    ("bandwidth", {"stream": "sideways"}, "stream='sideways': valid: both, downstream, upstream"),
    ("kill", {"latency": "3"}, "kill takes no parameter 'latency'; valid: signal"),
    ("pause", {"x": "1"}, "pause takes no parameter 'x'; valid: none"),
])
def test_bad_parameters_fail_before_anything_is_recorded(fake: Any, tmp_path: Path, fault: str,
                                                         params: dict[str, Any], needle: str) -> None:
    with pytest.raises(PgchaosError) as err:
        check_params(CATALOGUE[fault], params)
    assert str(err.value) == needle
    with HistoryWriter(tmp_path / "h.jsonl") as history:
        nem = fake({"worker-1": FakeContainer("worker-1")}, history)
        with pytest.raises(PgchaosError, match="valid|number"):
            nem.inject(fault, "worker-1" if CATALOGUE[fault].kind == "node" else "pooler-router", **params)
    assert read_history(tmp_path / "h.jsonl") == []


# -- disk fill exit codes ----------------------------------------------------------------
def _runs(monkeypatch: pytest.MonkeyPatch, *results: tuple[int, str]) -> list[list[str]]:
    calls: list[list[str]] = []
    answers = iter(results)

    def run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        calls.append(cmd)
        rc, err = next(answers)
        return subprocess.CompletedProcess(cmd, rc, "", err)

    monkeypatch.setattr(faults_module.subprocess, "run", run)
    return calls


ENOSPC = "dd: error writing '/x': No space left on device\n3+0 records in\n"


@pytest.mark.parametrize("fallocate,dd,error", [
    ((0, ""), (1, ENOSPC), None),
    ((1, "fallocate: fallocate failed: No space left on device"), (1, ENOSPC), None),
    ((1, "fallocate: fallocate failed: Operation not supported"), (1, ENOSPC),
     "disk-full: fallocate on {fill} failed (exit 1): fallocate: fallocate failed: Operation not supported"),
    ((0, ""), (1, "dd: failed to open '/x': Permission denied"),
     "disk-full: dd on {fill} did not end with ENOSPC (exit 1): dd: failed to open '/x': Permission denied"),
    ((0, ""), (0, ""), "disk-full: dd on {fill} did not end with ENOSPC (exit 0): (no output)"),
])
def test_disk_fill_checks_exit_codes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                     fallocate: tuple[int, str], dd: tuple[int, str], error: str | None) -> None:
    fill = tmp_path / faults_module.FILL_FILE
    calls = _runs(monkeypatch, fallocate, dd)
    if error is None:
        fill_to_enospc(fill)
    else:
        with pytest.raises(PgchaosError) as err:
            fill_to_enospc(fill)
        assert str(err.value) == error.format(fill=fill) and "\n" not in str(err.value)
    assert [c[0] for c in calls] == (["fallocate"] if "fallocate on" in (error or "") else ["fallocate", "dd"])


def test_disk_full_removes_its_file_when_the_fill_fails(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    stack = SimpleNamespace(data_mount=lambda node: tmp_path,
                            manifest=SimpleNamespace(group_of=lambda service: "workers"))
    (tmp_path / faults_module.FILL_FILE).write_bytes(b"partial")
    _runs(monkeypatch, (0, ""), (1, "dd: Input/output error"))
    with pytest.raises(PgchaosError, match="did not end with ENOSPC"):
        faults_module._disk_full(SimpleNamespace(stack=stack), "worker-1", {})
    assert not (tmp_path / faults_module.FILL_FILE).exists()


# -- command line --------------------------------------------------------------------------
def test_run_hands_arguments_after_double_dash_to_pytest(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[list[str], list[str]]] = []
    monkeypatch.setattr(cli, "_pytest", lambda paths, extra: seen.append((paths, extra)) or 0)
    assert cli.main(["run", "coordinator_hard_loss", "--", "-x", "-k", "hard"]) == 0
    assert seen == [(["scenarios/test_coordinator_hard_loss.py"],
                     ["--pgchaos-min-executed", "1", "-x", "-k", "hard"])]


def test_certify_hands_arguments_after_double_dash_to_pytest(monkeypatch: pytest.MonkeyPatch,
                                                              tmp_path: Path) -> None:
    seen: list[list[str]] = []
    monkeypatch.chdir(tmp_path)  # the report goes under ./reports
    def pytest_(paths: list[str], extra: list[str]) -> int:
        seen.append(extra)
        Path(extra[extra.index("--reports-dir") + 1]).mkdir(parents=True)
        return 0

    monkeypatch.setattr(cli, "_pytest", pytest_)
    assert cli.main(["certify", "--", "-x"]) == 1  # the session wrote no row: nothing was certified
    assert seen[0][-1] == "-x" and "--" not in seen[0]
    assert "--pgchaos-min-executed" in seen[0]


def test_certify_exit_follows_the_worst_verdict_of_every_sample(monkeypatch: pytest.MonkeyPatch,
                                                                tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    import json

    monkeypatch.chdir(tmp_path)
    plans = {"all skipped": [["skipped"]], "pass": [["pass"]], "one marginal sample": [["pass"], ["marginal"]],
             "one failing sample": [["pass", "marginal"], ["fail", "pass"]], "unjudged": [["unjudged"]]}
    expected = {"all skipped": 1, "pass": 0, "one marginal sample": 3, "one failing sample": 1, "unjudged": 4}
    for name, reps in plans.items():
        it = iter(reps)

        def pytest_(paths: list[str], extra: list[str], it: Any = it) -> int:
            run = Path(extra[extra.index("--reports-dir") + 1]) / "run-1"
            run.mkdir(parents=True)
            rows = [{"scenario": f"s{i}", "verdict": v, "reason": "why"} for i, v in enumerate(next(it))]
            (run / "summary.json").write_text(json.dumps(rows))
            return 1 if "fail" in (r["verdict"] for r in rows) else 0

        monkeypatch.setattr(cli, "_pytest", pytest_)
        args = ["certify", "--repeat", str(len(reps)), "--reports-dir", str(tmp_path / name.replace(" ", "-"))]
        assert cli.main(args) == expected[name], name
        out = capsys.readouterr().out
        if name == "all skipped":
            assert "nothing was certified" in out and "skipped s0: why" in out


def test_an_uncaught_error_is_one_line_and_exit_2(monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    def boom(args: Any) -> int:
        raise ValueError("could not convert string to float: 'abc'\nsecond line")

    monkeypatch.setattr(cli, "cmd_list", boom)
    assert cli.main(["list"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("pgchaos: ValueError: could not convert"), err


def test_pytest_children_get_ctrl_c_even_when_we_ignore_it() -> None:
    """A background job of a non-interactive shell starts with SIGINT ignored;
    the children pgchaos starts get the default back (and so a KeyboardInterrupt)."""
    probe = "import signal; print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)"

    def inherited_ignore() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    def ignored_then_restored() -> None:
        inherited_ignore()
        cli._default_sigint()

    plain = subprocess.run([sys.executable, "-c", probe], preexec_fn=inherited_ignore,
                           capture_output=True, text=True)
    fixed = subprocess.run([sys.executable, "-c", probe], preexec_fn=ignored_then_restored,
                           capture_output=True, text=True)
    assert (plain.stdout.strip(), fixed.stdout.strip()) == ("False", "True")


# -- --keep-stack after a failed start -------------------------------------------------------
@pytest.mark.parametrize("keep", [False, True], ids=["default", "keep-stack"])
def test_a_stack_whose_start_failed_is_removed_even_with_keep_stack(monkeypatch: pytest.MonkeyPatch,
                                                                    keep: bool) -> None:
    removed: list[Any] = []

    class FailingStack:
        def __init__(self, spec: Any, detached: bool = False, progress: Any = None) -> None:
            self.detached = detached

        def start(self) -> None:
            raise PgchaosError("stack not healthy after 180 s")

    monkeypatch.setattr(session, "collect", lambda: SimpleNamespace(projects=[]))
    monkeypatch.setattr(session, "_detached_stack", lambda spec: None)
    monkeypatch.setattr(session, "Stack", FailingStack)
    monkeypatch.setattr(session, "stop_uninterrupted", removed.append)
    spec = SimpleNamespace(validate=lambda: None)
    with pytest.raises(PgchaosError, match="not healthy"):
        next(session.session_stack(spec, keep=keep))
    assert len(removed) == 1 and removed[0].detached is keep


def test_a_stack_that_came_up_is_kept_with_keep_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    removed: list[Any] = []

    class GoodStack:
        def __init__(self, spec: Any, detached: bool = False, progress: Any = None) -> None:
            pass

        def start(self) -> None:
            pass

    monkeypatch.setattr(session, "collect", lambda: SimpleNamespace(projects=[]))
    monkeypatch.setattr(session, "_detached_stack", lambda spec: None)
    monkeypatch.setattr(session, "Stack", GoodStack)
    monkeypatch.setattr(session, "stop_uninterrupted", removed.append)
    gen = session.session_stack(SimpleNamespace(validate=lambda: None), keep=True)
    next(gen)
    with pytest.raises(StopIteration):
        next(gen)
    assert removed == []


# -- heals rebuilt from the description; faults outside the catalogue -----------------------


def test_a_heal_is_rebuilt_from_the_description_alone(fake: Any, tmp_path: Path) -> None:
    """A second nemesis (another process: `pgchaos heal`) heals from (name, target, params)."""
    node = FakeContainer("coordinator-1")
    with HistoryWriter(tmp_path / "h.jsonl") as history:
        first = fake({"coordinator-1": node}, history)
        first.inject("pause", "coordinator-1")
        first.inject("latency", "pooler-router", latency=100)
        assert node.status == "paused"
        assert first.links.toxics["pooler-router"]
        second = fake({"coordinator-1": node})
        second.repair("pause", "coordinator-1")
        second.repair("latency", "pooler-router", {"latency": 100})
    assert node.status == "running"
    assert not first.links.toxics["pooler-router"]
    with pytest.raises(PgchaosError, match="unknown fault"):
        second.repair("no-such-fault", "x")


def test_a_custom_fault_is_recorded_observed_and_healed(fake: Any, tmp_path: Path) -> None:
    state = {"broken": False}

    def inject() -> Any:
        state["broken"] = True
        return lambda: state.update(broken=False)

    with HistoryWriter(tmp_path / "h.jsonl") as history:
        nem = fake({}, history)
        active = nem.custom("drop-caches", "coordinator-2", inject,
                            effect=lambda: (state["broken"], f"broken={state['broken']}"), level=3)
        blind = nem.custom("unchecked", "coordinator-3", lambda: (lambda: None))
        nem.heal_all()
    assert not state["broken"]
    ops = read_history(tmp_path / "h.jsonl")
    fault_op = next(op for op in ops if op.f == "drop-caches")
    assert fault_op.value == {"target": "coordinator-2", "role": "coordinator-2", "custom": True, "level": 3}
    seen = {op.value["fault"]: op.type for op in observations(tmp_path / "h.jsonl")}
    assert seen == {active.id: "ok", blind.id: "fail"}  # no effect check: never counted as bitten
    heals = [op.value["fault"] for op in ops if op.f == "heal"]
    assert sorted(heals) == sorted([active.id, blind.id])
    with pytest.raises(PgchaosError, match="clashes"):
        fake({}).custom("kill", "x", lambda: (lambda: None))


def test_every_catalogue_fault_carries_its_repair() -> None:
    assert all(callable(f.inject) and callable(f.repair) for f in CATALOGUE.values())


def test_a_new_catalogue_fault_is_healed_by_its_repair_on_every_path(fake: Any, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Written as the Fault docstring says (inject, repair, effect): heal, heal-all and a heal
    from the description in another process all run the one repair."""
    broken: set[str] = set()
    fault = faults_module.Fault(
        "test-break", "node", "a fault for this test",
        inject=lambda nem, target, params: broken.add(target),
        repair=lambda nem, target, params: broken.discard(target),
        effect=faults_module.Effect(lambda nem, target, ctx: (target in broken, f"broken: {sorted(broken)}")))
    monkeypatch.setitem(CATALOGUE, "test-break", fault)
    with HistoryWriter(tmp_path / "h.jsonl") as history:
        nem = fake({"coordinator-1": FakeContainer("coordinator-1")}, history)
        active = nem.inject("test-break", "n1")
        assert broken == {"n1"}
        nem.heal(active)
        assert not broken
        nem.inject("test-break", "n2")
        nem.heal_all()
        assert not broken
        nem.inject("test-break", "n3")
        fake({}).repair("test-break", "n3")  # `pgchaos heal` in another process
        assert not broken
    heals = [op for op in read_history(tmp_path / "h.jsonl") if op.f == "heal"]
    assert heals and all(op.error is None for op in heals) and "began" in heals[0].value
