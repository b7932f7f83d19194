"""HistoryWriter's line encoder writes exactly what Op.to_json() writes."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.history import OP_TYPES, HistoryWriter, Op, _encode_line, read_history

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text()
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=10,
)
ops = st.builds(
    Op,
    index=st.integers(min_value=0, max_value=2**63),
    time=st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from([0.0, -0.0, 1e-05, 1e16, 123.456]),
    process=st.integers() | st.sampled_from(["nemesis", "observer", "monitor", "é\n\"x"]),
    type=st.sampled_from(sorted(OP_TYPES)),
    f=st.text() | st.sampled_from(["write", "read", "vector-search", "fault-effect"]),
    value=json_values,
    node=st.none() | st.text(),
    error=st.none() | json_values,
)


@given(ops)
def test_line_is_byte_identical_to_to_json(op: Op) -> None:
    assert _encode_line(op) == op.to_json() + "\n"


@pytest.mark.parametrize("process", [True, False, 1.0, None])
def test_odd_process_values_fall_back(process: object) -> None:
    for p in (1, 0, process):  # a cached int head must not serve a bool or float
        op = Op(1, 2.5, p, "ok", "write", 7)  # type: ignore[arg-type]
        assert _encode_line(op) == op.to_json() + "\n"


@pytest.mark.parametrize("t", [math.inf, -math.inf, math.nan])
def test_non_finite_time_raises_like_json(t: float) -> None:
    with pytest.raises(ValueError):
        _encode_line(Op(1, t, 1, "ok", "write", 7))


def test_writer_file_reads_back(tmp_path) -> None:
    path = tmp_path / "h.jsonl"
    with HistoryWriter(path, run_start=0.0) as h:
        h.append(3, "invoke", "write", 10**15 + 7)
        h.append(3, "info", "write", 10**15 + 7, error="08006 OperationalError: ünïcode")
        h.append("nemesis", "info", "kill", {"node": "coordinator-1"}, node="coordinator-1", time=1.25)
    lines = path.read_text().splitlines()
    assert [json.loads(line) for line in lines] == [op.to_dict() for op in read_history(path)]
    assert lines == [op.to_json() for op in read_history(path)]
