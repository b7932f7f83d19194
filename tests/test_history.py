"""The history format: writer, validating reader, merge, invocation pairing."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from harness import history
from harness.history import (
    HistoryFormatError,
    HistoryWriter,
    Op,
    merge_histories,
    pair_invocations,
    pending_invocations,
    read_history,
    write_history,
)

TMP = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


def _line(**fields: object) -> str:
    op = {"index": 0, "time": 0.0, "process": 1, "type": "ok", "f": "write", "value": 1}
    op.update(fields)
    return json.dumps({k: v for k, v in op.items() if v is not _DROP})


_DROP = object()


def test_writer_assigns_index_and_time_and_flushes(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    w = HistoryWriter(path, run_start=0.0, index_offset=100)
    a = w.append(3, "invoke", "write", 7)
    b = w.append(3, "ok", "write", 7, node="pg1")
    c = w.append("nemesis", "info", "kill", {"target": "pg1"}, time=12.5)
    # flushed: readable before close
    ops = read_history(path)
    w.close()
    assert [o.index for o in ops] == [100, 101, 102]
    assert (a.index, b.index, c.index) == (100, 101, 102)
    assert 0.0 < a.time <= b.time
    assert ops[1].node == "pg1" and ops[0].node is None
    assert ops[2].time == 12.5 and ops[2].is_nemesis
    assert "node" not in json.loads(path.read_text().splitlines()[0])


def test_writer_time_is_relative_to_run_start(tmp_path: Path) -> None:
    import time

    start = time.monotonic() - 50.0
    with HistoryWriter(tmp_path / "h.jsonl", run_start=start) as w:
        op = w.append(1, "invoke", "read", None)
    assert 50.0 <= op.time < 60.0


def test_writer_rejects_unknown_type(tmp_path: Path) -> None:
    with HistoryWriter(tmp_path / "h.jsonl", run_start=0.0) as w, pytest.raises(ValueError):
        w.append(1, "done", "write", 1)  # type: ignore[arg-type]


def test_writer_is_thread_safe(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    per_thread, threads = 300, 8
    with HistoryWriter(path, run_start=0.0) as w:

        def work(p: int) -> None:
            for k in range(per_thread):
                w.append(p, "invoke", "write", p * per_thread + k)

        pool = [threading.Thread(target=work, args=(p,)) for p in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
    ops = read_history(path)
    assert [o.index for o in ops] == list(range(per_thread * threads))
    assert sorted(o.value for o in ops) == list(range(per_thread * threads))
    assert all(a.time <= b.time for a, b in zip(ops, ops[1:], strict=False))


def test_round_trip_keeps_every_field(tmp_path: Path, parser: str) -> None:
    ops = [
        Op(0, 0.5, 1, "invoke", "write", 1),
        Op(1, 0.75, 1, "info", "write", 1, node="pg2", error={"sqlstate": "08006"}),
        Op(2, 1.0, "nemesis", "info", "partition", {"target": "pg2", "peers": ["pg1"]}),
    ]
    path = tmp_path / "h.jsonl"
    write_history(path, ops)
    assert read_history(path) == ops


def test_blank_lines_and_extra_fields_are_tolerated(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    path.write_text(_line(index=0) + "\n\n" + _line(index=1, extra="x") + "\n   \n")
    assert [o.index for o in read_history(path)] == [0, 1]


def test_integer_time_is_accepted_as_float(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    path.write_text(_line(time=3) + "\n")
    (op,) = read_history(path)
    assert op.time == 3.0 and isinstance(op.time, float)


def _bad(**fields: object) -> str:
    return _line(**{"index": 2, **fields})


BAD_LINES = {
    "bad json": ("{not json", "invalid JSON"),
    "not an object": ("[1, 2]", "expected a JSON object"),
    "missing field": (_bad(f=_DROP), "missing field(s) 'f'"),
    "missing value": (_bad(value=_DROP), "missing field(s) 'value'"),
    "index type": (_bad(index="9"), "'index' must be an integer"),
    "index bool": (_bad(index=True), "'index' must be an integer"),
    "time type": (_bad(time="1.0"), "'time' must be a number"),
    "process type": (_bad(process="client-1"), "'process' must be an integer or \"nemesis\""),
    "op type": (_bad(type="done"), "'type' must be one of invoke, ok, fail, info"),
    "op type list": (_bad(type=["ok"]), "'type' must be one of invoke, ok, fail, info"),
    "time huge": (_bad(time=2**60), "'time' must be a finite number"),
    "f type": (_bad(f=3), "'f' must be a string"),
    "node type": (_bad(node=5), "'node' must be a string"),
    "index order": (_bad(index=-1), "'index' must increase"),
}


@pytest.fixture(params=["default", "stdlib"])
def parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run with the default JSON parser and with the standard library's."""
    if request.param == "stdlib":
        monkeypatch.setattr(history, "_loads", history._stdlib_loads)
    return request.param


@pytest.mark.parametrize("case", sorted(BAD_LINES))
def test_each_malformation_is_named(tmp_path: Path, case: str, parser: str) -> None:
    bad, message = BAD_LINES[case]
    path = tmp_path / "h.jsonl"
    path.write_text("\n".join([_line(index=0), _line(index=1), bad, _line(index=9)]) + "\n")
    with pytest.raises(HistoryFormatError) as err:
        read_history(path)
    assert err.value.line == 3
    assert message in str(err.value)
    assert f"{path}: line 3" in str(err.value)


def test_invalid_utf8_is_a_format_error(tmp_path: Path, parser: str) -> None:
    path = tmp_path / "h.jsonl"
    path.write_bytes(_line(index=0).encode() + b"\n" + b'{"f": "\xff"}\n')
    with pytest.raises(HistoryFormatError) as err:
        read_history(path)
    assert err.value.line == 2


@TMP
@given(
    n=st.integers(min_value=1, max_value=40),
    data=st.data(),
    corruption=st.sampled_from(["truncate", "drop-time", "repeat-index", "type", "nan-time"]),
)
def test_malformed_line_number_is_reported(
    tmp_path: Path, parser: str, n: int, data: st.DataObject, corruption: str
) -> None:
    lines = [_line(index=i, time=float(i)) for i in range(n)]
    first = 1 if corruption == "repeat-index" else 0  # the first line has nothing to repeat
    assume(n > first)
    k = data.draw(st.integers(min_value=first, max_value=n - 1), label="bad line")
    if corruption == "truncate":
        lines[k] = lines[k][: len(lines[k]) // 2]
    elif corruption == "drop-time":
        lines[k] = _line(index=k, time=_DROP)
    elif corruption == "repeat-index":
        lines[k] = _line(index=k - 1)
    elif corruption == "type":
        lines[k] = _line(index=k, type="completed")
    else:
        lines[k] = lines[k].replace(f'"time": {float(k)}', '"time": NaN')
    path = tmp_path / "h.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(HistoryFormatError) as err:
        read_history(path)
    assert err.value.line == k + 1


times = st.lists(
    st.floats(min_value=0, max_value=1000, allow_nan=False, allow_infinity=False), max_size=30
).map(sorted)


@TMP
@given(files=st.lists(times, min_size=1, max_size=4))
def test_merge_histories_preserves_time_order(tmp_path: Path, files: list[list[float]]) -> None:
    paths = []
    for i, ts in enumerate(files):
        path = tmp_path / f"p{i}.jsonl"
        ops = [Op(1000 * i + n, t, i, "ok", "read", [i, n]) for n, t in enumerate(ts)]
        write_history(path, ops)
        paths.append(path)
    merged = merge_histories(paths)
    assert [o.index for o in merged] == list(range(sum(map(len, files))))
    assert all(a.time <= b.time for a, b in zip(merged, merged[1:], strict=False))
    assert sorted(tuple(o.value) for o in merged) == sorted(
        (i, n) for i, ts in enumerate(files) for n in range(len(ts))
    )
    # within one file the original order is kept
    for i in range(len(files)):
        assert [o.value[1] for o in merged if o.value[0] == i] == list(range(len(files[i])))


def test_merge_rewrites_heal_references(tmp_path: Path) -> None:
    client, nemesis = tmp_path / "client.jsonl", tmp_path / "nemesis.jsonl"
    write_history(client, [Op(0, 0.5, 1, "ok", "write", 1), Op(1, 2.5, 1, "ok", "write", 2)])
    write_history(
        nemesis,
        [
            Op(10**6, 1.0, "nemesis", "info", "kill", {"target": "pg1"}),
            Op(10**6 + 1, 3.0, "nemesis", "info", "heal", {"target": "pg1", "fault": 10**6}),
        ],
    )
    merged = merge_histories([client, nemesis])
    assert [o.f for o in merged] == ["write", "kill", "write", "heal"]
    assert merged[3].value == {"target": "pg1", "fault": 1}


def test_pair_invocations_by_process() -> None:
    ops = [
        Op(0, 0.0, 1, "invoke", "write", 1),
        Op(1, 0.1, 2, "invoke", "write", 2),
        Op(2, 0.2, 2, "ok", "write", 2),
        Op(3, 0.3, 1, "fail", "write", 1),
        Op(4, 0.4, 3, "ok", "read", 5),  # no invoke: tolerated
        Op(5, 0.5, 4, "invoke", "write", 9),  # never completes
    ]
    assert pair_invocations(ops) == [None, None, 1, 0, None, None]
    assert pending_invocations(ops) == [5]


def test_merge_keeps_heal_references_per_file(tmp_path: Path) -> None:
    """Two files with overlapping indexes: the heal must still name its own fault."""
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    with HistoryWriter(b, run_start=0.0) as w:
        for i in range(5):
            w.append(7, "invoke", "write", i, time=0.4 + 0.1 * i)
    with HistoryWriter(a, run_start=0.0) as w:
        w.append(1, "invoke", "write", 99, time=0.05)
        fault = w.append("nemesis", "info", "kill", {"target": "coordinator-1"}, time=0.35)
        w.append("nemesis", "info", "heal", {"target": "coordinator-1", "fault": fault.index}, time=0.9)
    merged = merge_histories([a, b])
    kill = next(op for op in merged if op.f == "kill")
    heal = next(op for op in merged if op.f == "heal")
    assert heal.value["fault"] == kill.index


def test_merge_reports_every_renumbering(tmp_path: Path) -> None:
    """`remap` receives (file position, old index) -> new index: references kept outside
    the files (a scenario's phases) are renumbered the same way."""
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    with HistoryWriter(a, run_start=0.0) as w:
        w.append("nemesis", "info", "kill", {"target": "x"}, time=2.0)
    with HistoryWriter(b, run_start=0.0, index_offset=100) as w:
        w.append(1, "invoke", "write", 1, time=1.0)
        w.append(1, "ok", "write", 1, time=1.5)
    remap: dict[tuple[int, int], int] = {}
    ops = merge_histories([a, b], remap=remap)
    assert [op.f for op in ops] == ["write", "write", "kill"]
    assert remap == {(1, 100): 0, (1, 101): 1, (0, 0): 2}
