"""The RTO/RPO table: the shipped rows and waivers, and clear errors for malformed files."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import PgchaosError
from harness.targets import DEFAULT_PATH, Target, TargetsError, Waiver, load_targets

GUIDE = {
    "coordinator-failure": (10, 0, "Single coordinator failure", "Automatic failover"),
    "worker-failure": (300, 0, "Single worker failure", "Manual intervention"),
    "complete-cluster-loss": (7200, 86400, "Complete cluster loss", "From daily backup"),
    "data-corruption": (14400, 86400, "Data corruption", "Restore + verification"),
}
PGCHAOS = {
    "planned-switchover": (10, 0),
    "network-lag": (10, 0),
    "leader-partition": (30, 0),
    "disk-full": (60, 0),
    "dcs-outage": (60, 0),
    "pool-exhaustion": (30, 0),
    "zero-downtime-update": (1, 0),  # the swarm engine's rows (ours)
    "pooler-restart": (10, 0),
    "citus-worker-link": (30, 0),  # the Citus profile's rows (ours)
    "citus-scale-out": (120, 0),
    "backup-monitoring": (1, 0),  # the backup alert scenario (ours)
    "distributed-transactions": (10, 0),  # transfers and paired inserts under faults (ours)
    "worker-distributed-transactions": (300, 0),
    "node-failure": (10, 0),  # a host of a multi-node swarm (ours)
}


def test_default_path_is_the_repository_table() -> None:
    expected = Path(__file__).resolve().parent.parent / "scenarios" / "targets.toml"
    assert expected == DEFAULT_PATH
    assert DEFAULT_PATH.is_file()


def test_guide_rows() -> None:
    targets = load_targets()
    for row, (rto, rpo, guide_row, notes) in GUIDE.items():
        t = targets.row(row)
        assert (t.rto_s, t.rpo_s, t.guide_row, t.notes) == (rto, rpo, guide_row, notes)
        assert t.source == "operations-guide"


def test_pgchaos_rows() -> None:
    targets = load_targets()
    for row, (rto, rpo) in PGCHAOS.items():
        t = targets.row(row)
        assert (t.rto_s, t.rpo_s, t.source) == (rto, rpo, "pgchaos")
    assert set(targets.rows) == set(GUIDE) | set(PGCHAOS)


def test_shipped_waiver() -> None:
    targets = load_targets()
    # docker kill on compose; a killed task on swarm; a crashed host; the 2PC coordinator killed
    w, swarm, host, two_pc = targets.waivers
    assert (w.row, w.faults, w.metric, w.bound) == ("coordinator-failure", ("kill",), "rto_s", 25)
    assert "ttl" in w.reason and "25 s" in w.reason
    assert (swarm.row, swarm.faults, swarm.metric, swarm.bound) == ("coordinator-failure", ("task-kill",),
                                                                     "rto_s", 25)
    assert (host.row, host.faults, host.bound) == ("coordinator-failure", ("node-crash",), 25)
    assert targets.waivers_for("coordinator-failure") == [w, swarm, host]
    assert (two_pc.row, two_pc.faults, two_pc.bound) == ("distributed-transactions", ("kill",), 25)
    assert "never waived" in two_pc.reason
    assert targets.waivers_for("worker-failure") == []
    # the waiver does not change the target
    assert targets.row("coordinator-failure").rto_s == 10


def test_waiver_covers() -> None:
    w = Waiver("coordinator-failure", ("kill",), "rto_s", 25.0, "r")
    assert w.covers("coordinator-failure", "kill", "rto_s", 21.0)
    assert w.covers("coordinator-failure", "kill", "rto_s", 25.0)
    assert not w.covers("coordinator-failure", "kill", "rto_s", 25.01)
    assert not w.covers("coordinator-failure", "pause", "rto_s", 21.0)
    assert not w.covers("worker-failure", "kill", "rto_s", 21.0)


def test_unknown_row_lists_the_valid_rows() -> None:
    with pytest.raises(TargetsError) as err:
        load_targets().row("coordinator-failur")
    message = str(err.value)
    assert "'coordinator-failur'" in message
    assert all(row in message for row in [*GUIDE, *PGCHAOS])


def test_target_to_dict() -> None:
    t = Target("r", 10.0, 0.0, "pgchaos", None, "n")
    assert t.to_dict() == {
        "row": "r",
        "rto_s": 10.0,
        "rpo_s": 0.0,
        "source": "pgchaos",
        "guide_row": None,
        "notes": "n",
    }


ROW = '[a]\nsource = "pgchaos"\nrto_s = 10\nrpo_s = 0\n'
WAIVER = '[[waivers]]\nrow = "a"\nfaults = ["kill"]\nmetric = "rto_s"\nbound = 25\nreason = "why"\n'

MALFORMED = {
    "invalid toml": ("[a\n", "invalid TOML"),
    "unknown row key": (ROW + "rto = 3\n", "unknown key(s) 'rto'"),
    "missing rto_s": ('[a]\nsource = "pgchaos"\nrpo_s = 0\n', "missing required key 'rto_s'"),
    "missing rpo_s": ('[a]\nsource = "pgchaos"\nrto_s = 1\n', "missing required key 'rpo_s'"),
    "missing source": ("[a]\nrto_s = 1\nrpo_s = 0\n", "missing required key 'source'"),
    "bad source": (ROW.replace('"pgchaos"', '"blog"'), "'source' must be one of"),
    "guide row without guide_row": (
        ROW.replace('"pgchaos"', '"operations-guide"'),
        "needs 'guide_row'",
    ),
    "negative rto": (ROW.replace("rto_s = 10", "rto_s = -1"), "'rto_s' must be a finite number"),
    "nan rpo": (ROW.replace("rpo_s = 0", "rpo_s = nan"), "'rpo_s' must be a finite number"),
    "string rto": (ROW.replace("rto_s = 10", 'rto_s = "10s"'), "'rto_s' must be a number"),
    "bool rpo": (ROW.replace("rpo_s = 0", "rpo_s = false"), "'rpo_s' must be a number"),
    "row not a table": ('a = 3\n', "expected a table"),
    "no rows": ("", "no target rows"),
    "waiver without reason": (ROW + WAIVER.replace('reason = "why"\n', ""), "'reason'"),
    "waiver with empty reason": (
        ROW + WAIVER.replace('reason = "why"', 'reason = "  "'),
        "'reason' must be a non-empty string",
    ),
    "waiver unknown row": (
        ROW + WAIVER.replace('row = "a"', 'row = "b"'),
        "waiver names unknown row 'b'; valid rows: a",
    ),
    "waiver negative bound": (
        ROW + WAIVER.replace("bound = 25", "bound = -5"),
        "'bound' must be a finite number >= 0",
    ),
    "waiver unknown key": (ROW + WAIVER + 'until = "2025"\n', "unknown key(s) 'until'"),
    "waiver empty faults": (
        ROW + WAIVER.replace('["kill"]', "[]"),
        "'faults' must be a non-empty list",
    ),
    "waiver unknown metric": (
        ROW + WAIVER.replace('metric = "rto_s"', 'metric = "rpo_s"'),
        "'metric' must be one of rto_s",
    ),
    "waivers not an array": ('waivers = "none"\n' + ROW, "'waivers' must be an array"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_targets(tmp_path: Path, case: str) -> None:
    text, message = MALFORMED[case]
    path = tmp_path / "targets.toml"
    path.write_text(text)
    with pytest.raises(TargetsError) as err:
        load_targets(path)
    assert message in str(err.value)
    assert str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_errors_are_user_facing() -> None:
    assert issubclass(TargetsError, PgchaosError)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TargetsError, match="cannot read targets file"):
        load_targets(tmp_path / "nope.toml")


def test_minimal_valid_file(tmp_path: Path) -> None:
    path = tmp_path / "targets.toml"
    path.write_text(ROW + WAIVER)
    targets = load_targets(path)
    assert targets.row("a").rto_s == 10
    assert targets.waivers == (Waiver("a", ("kill",), "rto_s", 25.0, "why"),)
