"""The differential gate's judgement, on synthetic verdicts: the regression rule, phases
named, lost writes and worse verdicts, and the gate's flow (stacks up, interleaved
samples, stacks down) with its runner replaced."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from harness.errors import PgchaosError
from harness.gate import Samples, Side, collect, compare, regressed, run_gate, side


def verdict(name: str, rto: float, router: float = 0.4, lost: int = 0, word: str = "pass") -> dict[str, Any]:
    return {"scenario": name, "verdict": word, "rto_s": {"write": rto, "read": rto / 2}, "rpo": {"lost": lost},
            "recovery_phases": {"faults": [{"phases": [
                {"phase": "dcs", "duration_s": 1.3}, {"phase": "router", "duration_s": router}]}]}}


def samples(*verdicts: dict[str, Any]) -> Samples:
    s = Samples()
    for v in verdicts:
        s.add(v)
    return s


def test_the_rule_allows_the_baselines_noise_and_flags_beyond_it() -> None:
    base = [4.1, 4.6, 5.2]
    assert not regressed(base, [5.0, 5.5, 6.2])  # min 5.0 <= 5.2 + 1.04
    assert regressed(base, [9.0, 9.5, 8.9])  # the doubled outage of a slower router
    assert not regressed(base, [6.24, 6.3, 6.3])  # 6.24: the boundary itself is allowed
    assert regressed(base, [6.3, 6.3, 6.3])
    assert regressed([0.2, 0.3], [1.5, 1.6])  # small figures: the 1 s floor decides
    assert not regressed([0.2, 0.3], [1.2, 1.3])
    # a bimodal phase (the pooler after 0.2 s or after 3 s) slow in two of three samples is noise
    assert not regressed([0.19, 0.45, 0.2], [3.6, 2.4, 0.3])
    assert not regressed([], [9.0]) and not regressed([1.0], [])


def test_a_slower_router_is_a_regression_inside_its_target_naming_the_phase() -> None:
    base = {"graceful_stop": samples(*(verdict("graceful_stop[sample1]", r) for r in (3.4, 3.5, 3.9)))}
    cand = {"graceful_stop": samples(*(verdict("graceful_stop", r, router=5.9) for r in (8.7, 9.0, 9.5)))}
    result = compare(base, cand)
    e = result["scenarios"]["graceful_stop"]
    assert result["regressions"] == ["graceful_stop"]
    assert e["regressed_phases"] == ["router"]
    assert e["figures"]["rto_write_s"]["regressed"] and not e["figures"]["phase:dcs"]["regressed"]
    assert any("phase router (HAProxy inter/fall/rise)" in r for r in e["regressions"])
    assert e["worst"]["candidate"] == "pass"  # every absolute target met, and still a regression


def test_the_baseline_against_itself_flags_nothing() -> None:
    runs = [(3.4, 0.4), (3.9, 0.6), (3.5, 0.3), (4.4, 0.9), (3.6, 0.5), (3.7, 0.4)]
    base = {"s": samples(*(verdict("s", r, router=x) for r, x in runs[:3]))}
    cand = {"s": samples(*(verdict("s", r, router=x) for r, x in runs[3:]))}
    assert compare(base, cand)["regressions"] == []


def test_lost_writes_a_worse_verdict_or_a_missing_side_are_regressions() -> None:
    base = {"s": samples(verdict("s", 3.0)), "t": samples(verdict("t", 3.0))}
    cand = {"s": samples(verdict("s", 3.0, lost=2, word="fail")), "u": samples(verdict("u", 3.0))}
    result = compare(base, cand)
    assert result["regressions"] == ["s", "t", "u"]
    reasons = result["scenarios"]["s"]["regressions"]
    assert "acknowledged writes lost: 2 (baseline 0)" in reasons and "verdict fail (baseline pass)" in reasons
    assert result["scenarios"]["t"]["missing"] == "candidate"
    # a waived kill on both sides is no regression
    waived = compare({"k": samples(verdict("k", 21.0, word="waived"))},
                     {"k": samples(verdict("k", 21.3, word="waived"))})
    assert waived["regressions"] == []


def test_side_names_a_variant_a_manifest_or_the_reference(tmp_path: Path) -> None:
    assert side(None, "b", {}).variant is None and side("reference", "b", {}).manifest is None
    assert side("haproxy-slow-checks", "c", {}).variant == "haproxy-slow-checks"
    manifest = tmp_path / "m.toml"
    manifest.write_text("")
    assert side(str(manifest), "c", {}).manifest == manifest.resolve()
    with pytest.raises(PgchaosError, match="unknown variant 'nope'; valid: "):
        side("nope", "c", {})
    with pytest.raises(PgchaosError, match="no such manifest file"):
        side(str(tmp_path / "missing.toml"), "c", {})


def test_run_gate_interleaves_samples_and_removes_only_its_own_stacks(tmp_path: Path) -> None:
    calls: list[str] = []

    def up(args: list[str], env: Mapping[str, str]) -> int:
        calls.append(f"{args[0]} {env.get('PGCHAOS_STATE_DIR', 'default')}")
        return 0

    def run_pytest(paths: list[str], extra: list[str], env: Mapping[str, str]) -> int:
        out = Path(extra[extra.index("--pgchaos-reports-dir") + 1])
        slow = "--pgchaos-variant" in extra
        calls.append(f"sample {out.parent.name}/{out.name}")
        d = out / "run-1" / "graceful_stop"
        d.mkdir(parents=True)
        rto = 9.0 if slow else 3.5
        (d / "verdict.json").write_text(json.dumps(verdict("graceful_stop", rto, router=5.9 if slow else 0.4)))
        return 0

    cand = Side("candidate", variant="haproxy-slow-checks", env={"PGCHAOS_STATE_DIR": "/x"})
    code = run_gate(cand, Side("baseline"), 2, ["-k", "graceful"], run_pytest, tmp_path,
                    say=lambda _: None, up=up)
    assert code == 1
    # both stacks come up at once, then samples alternate, then both go down at once
    assert sorted(calls[:2]) == ["up /x", "up default"] and sorted(calls[-2:]) == ["down /x", "down default"]
    assert calls[2:-2] == ["sample baseline/sample-1", "sample candidate/sample-1",
                           "sample baseline/sample-2", "sample candidate/sample-2"]
    (report,) = tmp_path.glob("gate-*/gate.md")
    assert "**REGRESSION** in graceful_stop" in report.read_text()
    (gate_dir,) = tmp_path.glob("gate-*")
    assert set(collect([gate_dir / "candidate" / "sample-1"])) == {"graceful_stop"}

    calls.clear()

    def refused(args: list[str], env: Mapping[str, str]) -> int:
        calls.append(f"{args[0]} {env.get('PGCHAOS_STATE_DIR', 'default')}")
        return 1 if args[0] == "up" and "PGCHAOS_STATE_DIR" not in env else 0

    with pytest.raises(PgchaosError, match="baseline: `pgchaos up ` failed"):
        run_gate(cand, Side("baseline"), 1, [], run_pytest, tmp_path / "r", say=lambda _: None, up=refused)
    # the refused side (someone else's stack is up there) is never taken down; the other is
    assert sorted(calls) == ["down /x", "up /x", "up default"], calls


def test_a_gate_whose_samples_never_ran_says_nothing_was_compared(tmp_path: Path) -> None:
    said: list[str] = []
    code = run_gate(Side("candidate"), Side("baseline"), 2, [], lambda paths, extra, env: 4, tmp_path,
                    say=said.append, up=lambda args, env: 0)
    assert code == 1
    (report,) = tmp_path.glob("gate-*/gate.md")
    assert "**NOTHING COMPARED" in report.read_text() and "no regression" not in report.read_text()


def test_gate_options_may_follow_the_candidate_and_pytest_options_follow_a_double_dash(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.cli as cli
    import harness.gate as gate_module

    seen: dict[str, Any] = {}

    def fake(candidate: Side, baseline: Side, repeat: int, select: list[str], *args: Any, **kw: Any) -> int:
        seen.update(repeat=repeat, select=select, candidate=candidate.variant)
        return 0

    monkeypatch.setattr(gate_module, "run_gate", fake)
    assert cli.main(["gate", "reference", "--repeat", "15", "-k", "graceful_stop"]) == 0
    assert seen == {"repeat": 15, "select": ["-k", "graceful_stop"], "candidate": None}
    assert cli.main(["gate", "--repeat", "2", "async-replication", "-k", "x", "--", "-x"]) == 0
    assert seen == {"repeat": 2, "select": ["-k", "x", "-x"], "candidate": "async-replication"}
    assert cli.main(["gate", "reference", "stray"]) == 2
