"""Waiver bounds derived from the stack's timings (no Docker): HAProxy's check settings,
the derivation, a manifest's own bound, and a run's recorded bounds for `pgchaos report`."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from harness.assets import compose_dir
from harness.bounds import Timings, apply_recorded, derive, derived_bounds, haproxy_checks, resolve
from harness.stack.manifest import ManifestError, load_manifest
from harness.targets import load_targets
from harness.verdict import check_history

REFERENCE = Timings(ttl=20, loop_wait=2, retry_timeout=5, inter_s=1.0, fall=2, rise=1)


def test_haproxy_checks_of_the_primary_backend() -> None:
    assert haproxy_checks((compose_dir() / "config" / "haproxy.cfg").read_text()) == (1.0, 2, 1)
    slow = compose_dir() / "variants" / "haproxy-slow-checks" / "haproxy.cfg"
    assert haproxy_checks(slow.read_text()) == (3.0, 3, 2)
    text = "backend primary\n    option httpchk\n    http-check send meth GET uri /primary\n" \
           "    server a a:5432 check inter 500ms\nbackend replicas\n    default-server inter 9s\n"
    assert haproxy_checks(text) == (0.5, 3, 2)  # HAProxy's defaults where a setting is absent
    assert haproxy_checks("backend x\n  server a a:1 check\n") is None


def test_the_hard_kill_bound_is_derived_and_says_how() -> None:
    bound, how = derive("hard-kill", REFERENCE) or (None, "")
    assert bound == 25.0
    assert how == "Patroni ttl 20 s + loop_wait 2 s + HAProxy inter 1 s x (fall 2 + rise 1) = 25 s"
    assert derive("hard-kill", replace(REFERENCE, ttl=30)) == (35.0, how.replace("20", "30").replace("25", "35"))
    assert derive("hard-kill", replace(REFERENCE, fall=None)) is None


def test_resolve_derives_overrides_or_falls_back_visibly() -> None:
    waivers = load_targets().waivers_for("coordinator-failure")
    assert all(w.derive == "hard-kill" for w in waivers)
    slow = resolve(waivers, replace(REFERENCE, inter_s=3.0, fall=3, rise=2))
    # 37 s derived, but a derived bound never loosens the table's 25 s: slower checks stay failing
    n = len(waivers)  # docker kill, a Swarm task kill, a host crash: every one derived alike
    assert n >= 2 and [w.bound for w in slow] == [25.0] * n and "inter 3 s" in (slow[0].derivation or "")
    assert "= 37 s" in (slow[0].derivation or "") and "capped at 25 s" in (slow[0].derivation or "")
    fast = resolve(waivers, replace(REFERENCE, ttl=15))
    assert [w.bound for w in fast] == [20.0] * n  # a faster configuration tightens it
    manual = resolve(waivers, REFERENCE, {"hard-kill": (30.0, "our ttl is 25")})
    assert manual[0].bound == 30.0 and manual[0].derivation == "set by the manifest: 30 s (our ttl is 25)"
    unknown = resolve(waivers, None)
    assert unknown[0].bound == 25.0 and "could not be read" in (unknown[0].derivation or "")
    recorded = derived_bounds(slow)
    again = apply_recorded(waivers, recorded)
    assert [w.bound for w in again] == [25.0] * n and again[0].derivation == slow[0].derivation


def test_the_verdict_prints_the_derivation(tmp_path: Path) -> None:
    from test_verdict import ROW, run  # the same synthetic runs

    targets = load_targets()
    waivers = resolve(targets.waivers_for(ROW), REFERENCE)
    result = check_history(run(fault="kill", outage_s=21.0), targets.row(ROW), waivers)
    assert result["verdict"] == "waived"
    assert any("bound 25.000 s: Patroni ttl 20 s + loop_wait 2 s" in r for r in result["reasons"])
    tight = resolve(targets.waivers_for(ROW), replace(REFERENCE, ttl=15))
    failed = check_history(run(fault="kill", outage_s=21.0), targets.row(ROW), tight)
    assert failed["verdict"] == "fail"
    assert any("past the waiver bound 20.000 s (Patroni ttl 15 s" in r for r in failed["reasons"])


def test_a_manifest_sets_a_bound_only_with_a_reason(tmp_path: Path) -> None:
    text = (compose_dir() / "pgchaos.toml").read_text()
    path = compose_dir() / "pgchaos-bounds-test.toml"
    try:
        path.write_text(text + '\n[bounds]\nhard_kill_s = 33\nreason = "ttl 30 in production"\n')
        assert load_manifest(path).bounds == {"hard-kill": (33.0, "ttl 30 in production")}
        path.write_text(text + "\n[bounds]\nhard_kill_s = 33\n")
        with pytest.raises(ManifestError, match="reason"):
            load_manifest(path)
        path.write_text(text + '\n[bounds]\nhard_kill_s = -1\nreason = "x"\n')
        with pytest.raises(ManifestError, match="hard_kill_s"):
            load_manifest(path)
    finally:
        path.unlink(missing_ok=True)


def test_the_router_follow_time_is_derived_and_never_shorter_than_the_defaults() -> None:
    from harness.bounds import Timings, router_follow_s

    follow, how = router_follow_s(Timings(ttl=20, loop_wait=2, inter_s=1.0, fall=2, rise=1))
    assert follow == 5.0 and "loop_wait 2 s" in how and "fall 2" in how
    # unreadable timings: Patroni's loop_wait 10 s and HAProxy's inter 2s fall 3 rise 2
    assert router_follow_s(Timings())[0] == 20.0


def test_haproxy_timings_are_read_beside_the_manifest_when_no_config_folder_has_them(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from harness.bounds import read_timings

    demo = load_manifest(Path(__file__).parent / "foreign_citus" / "pgchaos.toml")  # haproxy.cfg beside it
    stack = SimpleNamespace(manifest=demo, config_dir=tmp_path,
                            patroni_url=lambda member: "http://127.0.0.1:9")  # no Patroni answers
    t = read_timings(stack)  # type: ignore[arg-type]
    assert (t.inter_s, t.fall, t.rise) == (1.0, 2, 1) and t.ttl is None
