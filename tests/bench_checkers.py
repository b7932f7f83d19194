"""Benchmark: time ``check_file`` on a synthetic history with faults.

Run: ``python tests/bench_checkers.py [--ops 1000000] [--keep PATH]``.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

from harness import history
from harness.verdict import check_file

CLIENTS = 8
STEP_S = 0.001
FAULT_EVERY_S = 50.0
OUTAGE_S = 6.0
HEAL_AFTER_S = 4.0
FAULTS = ("kill", "pause", "partition", "latency", "pg-kill", "switchover")


def generate(path: Path, n_ops: int, seed: int = 1, observe: bool = True) -> dict[str, int]:
    """Write about ``n_ops`` lines: client op pairs, faults (each observed to take effect
    when ``observe``), heals and a final read-all."""
    rng = random.Random(seed)
    acked: list[int] = []
    key = 0
    index = 0
    t = 0.0
    next_fault = FAULT_EVERY_S / 2
    outage_end = -1.0
    heal_at: tuple[float, int, str] | None = None
    lines: list[str] = []
    written = 0
    fault_count = 0
    out = path.open("w", encoding="utf-8")

    def emit(process: object, typ: str, f: str, value: object, extra: str = "") -> None:
        nonlocal index
        lines.append(
            f'{{"index":{index},"time":{t:.6f},"process":{json.dumps(process)},'
            f'"type":"{typ}","f":"{f}","value":{json.dumps(value)}{extra}}}'
        )
        index += 1
        if len(lines) >= 10_000:
            flush()

    def flush() -> None:
        nonlocal written
        out.write("\n".join(lines) + "\n")
        written += len(lines)
        lines.clear()

    while index < n_ops - 4:
        t += STEP_S
        if t >= next_fault:
            name = FAULTS[fault_count % len(FAULTS)]
            node = f"pg{fault_count % 3 + 1}"
            fault_index = index
            emit("nemesis", "info", name, {"target": node})
            if observe:
                emit("observer", "ok", "fault-effect",
                     {"fault": fault_index, "target": node, "evidence": "seen"}, f',"node":"{node}"')
            outage_end = t + OUTAGE_S * rng.uniform(0.3, 1.0)
            heal_at = (t + HEAL_AFTER_S, fault_index, node)
            next_fault += FAULT_EVERY_S
            fault_count += 1
            continue
        if heal_at and t >= heal_at[0]:
            emit("nemesis", "info", "heal", {"target": heal_at[2], "fault": heal_at[1]})
            heal_at = None
            continue
        process = rng.randrange(CLIENTS)
        r = rng.random()
        down = t < outage_end
        if r < 0.6:
            key += 1
            emit(process, "invoke", "write", key)
            if down:
                typ = "info" if rng.random() < 0.1 else "fail"
                emit(process, typ, "write", key, ',"error":"connection refused"')
            else:
                emit(process, "ok", "write", key, ',"node":"pg1"')
                acked.append(key)
        elif r < 0.95:
            emit(process, "invoke", "read", None)
            emit(process, "fail" if down else "ok", "read", None if down else key)
        else:
            emit(process, "invoke", "vector-search", None)
            emit(process, "ok", "vector-search", 10)
    t += 1.0
    emit(0, "invoke", "read-all", None)
    emit(0, "ok", "read-all", acked)
    flush()
    out.close()
    return {"lines": written, "faults": fault_count, "acked": len(acked)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ops", type=int, default=1_000_000, help="history size in lines")
    parser.add_argument("--keep", type=Path, metavar="PATH", help="write the history here")
    parser.add_argument(
        "--stdlib-json", action="store_true", help="parse with json instead of orjson"
    )
    args = parser.parse_args(argv)
    if args.stdlib_json:
        history._loads = history._stdlib_loads
    parser_name = "json" if history._loads is history._stdlib_loads else "orjson"

    with tempfile.TemporaryDirectory() as tmp:
        path = args.keep or Path(tmp) / "history.jsonl"
        t0 = time.perf_counter()
        info = generate(path, args.ops)
        gen_s = time.perf_counter() - t0
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

        t0 = time.perf_counter()
        result = check_file(path, "coordinator-failure")
        elapsed = time.perf_counter() - t0
        peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        size_mb = path.stat().st_size / 1e6

    print(f"history      {info['lines']:,} ops, {size_mb:.1f} MB, {info['faults']} faults")
    print(f"parser       {parser_name}")
    print(f"generate     {gen_s:.2f} s (not timed below)")
    print(f"check_file   {elapsed:.2f} s, {info['lines'] / elapsed:,.0f} ops/s")
    print(f"peak RSS     {peak_kib / 1024:.0f} MiB (before check: {rss_before / 1024:.0f} MiB)")
    print(
        f"verdict      {result['verdict']}; rto_s {result['rto_s']}; "
        f"lost {result['rpo']['lost']}; unknown {result['rpo']['unknown']}; gap_s {result['gap_s']}"
    )
    for reason in result["reasons"][:3]:
        print(f"  - {reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
