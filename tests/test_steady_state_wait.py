"""wait_for_steady_state ends early on a refusal by configuration that keeps being
logged, and only then (synthetic observations; no stack)."""

from __future__ import annotations

import importlib
import itertools
import time
from collections.abc import Callable, Iterator

import pytest

from harness.stack.steady_state import Check, SteadyState, wait_for_steady_state
from harness.stack.topology import Member, Topology

module = importlib.import_module("harness.stack.steady_state")  # the package exports a function of that name
REFUSAL = "coordinator-2 not streaming — {n} FATAL: pg_hba.conf rejects replication connection"


def observations(details: Iterator[str | None]) -> Callable[[object], SteadyState]:
    def observe(stack: object) -> SteadyState:
        detail = next(details)
        checks = [Check("replicas_streaming", detail is None, detail or "2/2 streaming")]
        return SteadyState(checks, Topology())
    return observe


@pytest.fixture
def quick(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setattr(module, "REFUSED_FOR_S", 0.3)
    return monkeypatch


def test_a_refusal_logged_again_and_again_ends_the_wait_early(quick: pytest.MonkeyPatch) -> None:
    quick.setattr(module, "steady_state", observations(REFUSAL.format(n=n) for n in itertools.count()))
    started = time.monotonic()
    state = wait_for_steady_state(object(), timeout=30, interval=0.05)  # type: ignore[arg-type]
    assert not state.healthy and "pg_hba.conf rejects" in state.summary()
    assert time.monotonic() - started < 5


def test_a_stale_refusal_line_waits_out_the_timeout(quick: pytest.MonkeyPatch) -> None:
    quick.setattr(module, "steady_state", observations(itertools.repeat(REFUSAL.format(n=0))))
    started = time.monotonic()
    state = wait_for_steady_state(object(), timeout=1.0, interval=0.05)  # type: ignore[arg-type]
    assert not state.healthy and time.monotonic() - started >= 1.0


def test_a_refusal_that_clears_is_waited_through(quick: pytest.MonkeyPatch) -> None:
    seq = itertools.chain((REFUSAL.format(n=n) for n in range(3)), itertools.repeat(None))
    quick.setattr(module, "steady_state", observations(seq))
    assert wait_for_steady_state(object(), timeout=10, interval=0.05).healthy  # type: ignore[arg-type]


def _group(*members: tuple[str, str, str]) -> Topology:
    from harness.stack.topology import Member

    return Topology(groups={"coordinator": [Member(n, role, state) for n, role, state in members]})


def _sync(monkeypatch: pytest.MonkeyPatch, config: dict, topo: Topology) -> Check:
    from types import SimpleNamespace

    monkeypatch.setattr(module, "_patroni_config", lambda stack, group: config)
    monkeypatch.setattr(module, "_suffix", lambda stack, group: "")
    return module.check_sync_standbys(SimpleNamespace(), topo, "coordinator")


def test_synchronous_mode_is_ready_only_with_its_sync_standby_in_place(monkeypatch: pytest.MonkeyPatch) -> None:
    plain = _group(("c1", "leader", "running"), ("c2", "replica", "streaming"), ("c3", "replica", "streaming"))
    formed = _group(("c1", "leader", "running"), ("c2", "sync_standby", "streaming"),
                    ("c3", "replica", "streaming"))
    assert _sync(monkeypatch, {"synchronous_mode": False}, plain).ok
    waiting = _sync(monkeypatch, {"synchronous_mode": True}, plain)
    assert not waiting.ok and "not ready" in waiting.detail and "0/1" in waiting.detail
    assert _sync(monkeypatch, {"synchronous_mode": True}, formed).ok


def test_quorum_mode_counts_quorum_standbys_up_to_the_replicas_there_are(monkeypatch: pytest.MonkeyPatch) -> None:
    one = _group(("c1", "leader", "running"), ("c2", "quorum_standby", "streaming"),
                 ("c3", "replica", "streaming"))
    two = _group(("c1", "leader", "running"), ("c2", "quorum_standby", "streaming"),
                 ("c3", "quorum_standby", "streaming"))
    alone = _group(("c1", "leader", "running"), ("c2", "quorum_standby", "streaming"))
    quorum = {"synchronous_mode": "quorum", "synchronous_node_count": 2}
    assert not _sync(monkeypatch, quorum, one).ok
    assert _sync(monkeypatch, quorum, two).ok
    assert _sync(monkeypatch, quorum, alone).ok  # one replica: one standby is all there can be


def test_a_refusal_watch_names_only_a_refusal_that_keeps_coming() -> None:
    from harness.stack.refusals import RefusalWatch

    line = "coordinator-2: 2026-12-04 10:00:{:02d} FATAL: pg_hba.conf rejects replication connection"
    noise = {"coordinator-2: INFO: no action. I am a secondary"}
    # a transient at start-up: two refusals, then only the same old lines in the log's tail
    watch = RefusalWatch()
    tail = {line.format(0), line.format(5)} | noise
    assert all(watch.see(tail, now=t) is None for t in (0.0, 5.0, 12.0, 30.0, 60.0))
    # refused every 5 s for 20 s: named, with its newest line
    watch = RefusalWatch()
    said = [watch.see({line.format(s) for s in range(0, t + 1, 5)} | noise, now=float(t)) for t in range(0, 30, 5)]
    assert said[:4] == [None] * 4 and said[4] == line.format(20)


def _routed(member: str | None, leader: str | None, read_only: bool = True) -> SteadyState:
    if member is None:  # writes through the router reach the leader: healthy
        return SteadyState([Check("router_write", True, "writes through :5000 reach the leader")], Topology())
    detail = f"a write through :5000 reached a read-only member ({member})"
    data = {"member": member, "read_only": read_only, "leader": leader}
    return SteadyState([Check("router_write", False, detail, data)], Topology())


def test_a_router_that_does_not_follow_the_leader_is_named_after_its_follow_time() -> None:
    follow = (5.0, "loop_wait 2 s + inter 1 s x (fall 2 + rise 1) = 5 s")
    watch = module.MisrouteWatch(lambda: follow)
    stuck = _routed("coordinator-1", "coordinator-2")
    said = [watch.see(stuck, now=float(t)) for t in range(0, 20)]
    assert said[:15] == [None] * 15  # 3 follow times of 5 s: a router in the middle of a failover is waited for
    assert said[15] is not None and "does not follow the leader" in said[15] and "coordinator-2" in said[15]
    assert follow[1] in said[15]


def test_a_router_that_follows_or_a_leader_that_moves_is_waited_for() -> None:
    watch = module.MisrouteWatch(lambda: (5.0, "5 s"))
    # the leader moves (a failover in progress), then the router follows: never named
    seq = [_routed("c1", "c1")] * 3 + [_routed("c1", "c2")] * 8 + [_routed("c2", "c3")] * 8 + [_routed(None, None)]
    assert all(watch.see(s, now=float(t)) is None for t, s in enumerate(seq))
    # no single leader, or a refusal that is not about a read-only member: not this watch's business
    watch = module.MisrouteWatch(lambda: (1.0, "1 s"))
    assert all(watch.see(_routed("c1", None), now=float(t)) is None for t in range(30))
    assert all(watch.see(_routed("c1", "c2", read_only=False), now=float(t)) is None for t in range(30))


def test_a_router_that_delivers_writes_to_no_member_while_the_leader_answers_is_named() -> None:
    """A router stuck on a member that is down (the variant's stick table after a graceful
    stop): writes reach no member while Patroni's leader answers, itself, as the primary."""
    def undelivered(leader: str | None) -> SteadyState:
        data = {"undeliverable": True, "leader": leader} if leader else {}
        return SteadyState([Check("router_write", False, "could not run: OperationalError", data)], Topology())

    watch = module.MisrouteWatch(lambda: (5.0, "5 s"))
    said = [watch.see(undelivered("coordinator-3"), now=float(t)) for t in range(0, 17)]
    assert said[:15] == [None] * 15
    assert said[15] is not None and "reached no member" in said[15] and "coordinator-3" in said[15]
    # no leader answering as the primary (a hard kill before Patroni's ttl): never this watch's business
    watch = module.MisrouteWatch(lambda: (1.0, "1 s"))
    assert all(watch.see(undelivered(None), now=float(t)) is None for t in range(60))
    # undelivered, then reaching the new leader: the count starts again
    watch = module.MisrouteWatch(lambda: (5.0, "5 s"))
    seq = [undelivered("c2")] * 12 + [_routed(None, None)] + [undelivered("c2")] * 12
    assert all(watch.see(st, now=float(t)) is None for t, st in enumerate(seq))


def test_observed_router_write_says_whether_the_leader_answered(monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(stack: object, topo: object) -> Check:
        raise OSError("connection refused")

    topo = Topology(members=[Member("coordinator-3", "leader", "running")])
    monkeypatch.setattr(module, "check_router_write", refused)
    monkeypatch.setattr(module, "answers_as_primary", lambda stack, member: member == "coordinator-3")
    check = module.observe_router_write(object(), topo)  # type: ignore[arg-type]
    assert not check.ok and check.data == {"undeliverable": True, "leader": "coordinator-3"}
    assert module.misrouted(SteadyState([check], topo)) == (module.UNDELIVERED, "coordinator-3")
    monkeypatch.setattr(module, "answers_as_primary", lambda stack, member: False)
    check = module.observe_router_write(object(), topo)  # type: ignore[arg-type]
    assert not check.ok and not check.data and module.misrouted(SteadyState([check], topo)) is None
    # a write that reached a member (a read-only one) is the check's own answer: the leader is not asked
    reached = Check("router_write", False, "reached a read-only member", {"member": "c1", "read_only": True})
    monkeypatch.setattr(module, "check_router_write", lambda stack, topo: reached)
    monkeypatch.setattr(module, "answers_as_primary", lambda stack, member: pytest.fail("asked the leader"))
    assert module.observe_router_write(object(), topo) is reached  # type: ignore[arg-type]


def test_wait_for_steady_state_ends_early_on_a_router_that_does_not_follow(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(module, "MISROUTE_MIN_S", 0.3)
    monkeypatch.setattr(module, "router_follow", lambda stack: (0.1, "0.1 s"))
    monkeypatch.setattr(module, "steady_state", lambda stack: _routed("coordinator-1", "coordinator-2"))
    started = time.monotonic()
    state = wait_for_steady_state(object(), timeout=30, interval=0.05)  # type: ignore[arg-type]
    assert not state.healthy and "does not follow the leader" in state.summary()
    assert time.monotonic() - started < 5


def _waiting_run(monkeypatch: pytest.MonkeyPatch, stable: Callable[[float], bool], routed: SteadyState) -> object:
    """A ScenarioRun's recovery wait, alone: a probe, the router's observation, the phases."""
    from types import SimpleNamespace

    from harness import scenario

    monkeypatch.setattr(module, "MISROUTE_MIN_S", 0.3)
    monkeypatch.setattr(scenario, "ROUTER_LOOK_S", 0.05)
    monkeypatch.setattr(scenario, "router_follow", lambda stack: (0.1, "0.1 s"))
    monkeypatch.setattr(scenario, "router_observation", lambda stack: routed)
    run = scenario.ScenarioRun.__new__(scenario.ScenarioRun)
    run.probe = SimpleNamespace(stable_for=stable)  # type: ignore[assignment]
    run.stack = object()  # type: ignore[assignment]
    run.options = SimpleNamespace(scaled=lambda s: s)  # type: ignore[assignment]
    run.phases_seen = []  # type: ignore[attr-defined]
    run.phase = lambda name, **kw: run.phases_seen.append((name, kw))  # type: ignore[attr-defined,method-assign]
    return run


def test_a_recovery_wait_stops_at_once_on_a_router_that_does_not_follow(monkeypatch: pytest.MonkeyPatch) -> None:
    """The scenario's own wait for recovery names the stuck router and stops (StopWaiting,
    a verdict reason of the stack's, code not-recovering), instead of waiting out its timeout."""
    from harness import scenario

    run = _waiting_run(monkeypatch, lambda s: False, _routed("coordinator-1", "coordinator-2"))
    started = time.monotonic()
    with pytest.raises(scenario.StopWaiting, match="will not recover: the router does not follow the leader"):
        run.wait_for_recovery(timeout_s=60)  # type: ignore[attr-defined]
    assert time.monotonic() - started < 5
    assert [name for name, _ in run.phases_seen] == ["stop-waiting"]  # type: ignore[attr-defined]
    assert scenario._run_code(f"{scenario.NOT_RECOVERING}: x") == "not-recovering"


def test_a_recovery_wait_ends_normally_when_the_probe_is_stable(monkeypatch: pytest.MonkeyPatch) -> None:
    run = _waiting_run(monkeypatch, lambda s: True, _routed("coordinator-1", "coordinator-2"))
    assert run.wait_for_recovery(timeout_s=5) < 1.0  # type: ignore[attr-defined]
