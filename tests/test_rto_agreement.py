"""The live agreement test's reading of a disagreement (tests/test_rto_agreement_live.py),
on synthetic client histories: a later RTO is accepted only when every silent gap that
makes it later is one the other client was slowed in too, and never for a failure."""

from __future__ import annotations

from test_rto_agreement_live import shared_slowdowns

from harness.history import Op


def client(process: int, writes: list[tuple[float, float, str]]) -> list[Op]:
    ops, n = [], 0
    for inv, done, typ in writes:
        ops += [Op(n, inv, process, "invoke", "write", n), Op(n + 1, done, process, typ, "write", n)]
        n += 2
    return ops


def steady(start: float, end: float, every: float = 0.05, took: float = 0.01) -> list[tuple[float, float, str]]:
    out, t = [], start
    while t < end:
        out.append((t, t + took, "ok"))
        t += every
    return out


OUTAGE = [(0.0, 4.0, "ok")]  # queued across the outage, served at 4.0 s


def test_a_gap_the_other_client_was_slowed_in_is_shared() -> None:
    later = client(1, [*OUTAGE, *steady(4.05, 6.0), (6.0, 6.45, "ok"), *steady(6.5, 8.0)])
    other = client(2, [*OUTAGE, *steady(4.05, 6.1), (6.1, 6.3, "ok"), *steady(6.35, 8.0)])
    shared, unexplained = shared_slowdowns(later, other, 4.0, 6.45, 0.25, 0.25)
    assert shared and not unexplained


def test_a_gap_only_one_client_saw_is_unexplained() -> None:
    later = client(1, [*OUTAGE, *steady(4.05, 6.0), (6.0, 6.45, "ok"), *steady(6.5, 8.0)])
    other = client(2, [*OUTAGE, *steady(4.05, 8.0)])  # never slower than 10 ms
    shared, unexplained = shared_slowdowns(later, other, 4.0, 6.45, 0.25, 0.25)
    assert not shared and unexplained


def test_a_failure_or_a_late_first_recovery_is_never_explained() -> None:
    failed = client(1, [*OUTAGE, *steady(4.05, 6.0), (6.0, 6.02, "fail"), *steady(6.05, 8.0)])
    other = client(2, [*OUTAGE, (4.05, 4.4, "ok"), (6.0, 6.3, "ok"), *steady(6.35, 8.0)])
    assert shared_slowdowns(failed, other, 4.0, 6.1, 0.25, 0.25)[1]
    late = client(1, [(0.0, 5.0, "ok"), *steady(5.05, 8.0)])  # recovered 1 s after the other
    assert shared_slowdowns(late, other, 4.0, 5.0, 0.25, 0.25)[1]
