"""The bank on the live stack: its traffic through the pooler, its final read, and the
atomicity checker over them — clean as run, and failing, naming the key, once one
side of an acknowledged transfer and one half of a paired insert are removed."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
import pytest

from harness.checkers.atomicity import atomicity
from harness.history import HistoryWriter, read_history
from harness.load.bank import SCHEMA, BankLoad, BankOptions
from harness.load.client import key_base
from harness.load.prepared_xacts import PreparedXactsWatch

pytestmark = pytest.mark.docker


def test_bank_final_state_is_judged_and_damage_is_named(pgchaos_stack, tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    with HistoryWriter(path) as history:
        bank = BankLoad(pgchaos_stack, history, key_base(), BankOptions(seed=7))
        watch = PreparedXactsWatch(pgchaos_stack, history)
        bank.start()
        time.sleep(4.0)
        bank.stop()
        watch.final_read()
        assert bank.final_read() is not None
    clean = atomicity(read_history(path), prepared_bound_s=60.0)
    assert clean["valid"] is True, clean["reason"]
    t = clean["transfers"]
    assert t["acknowledged"] > 20 and t["total_final"] == t["total_initial"] == 8000
    assert clean["paired"]["whole"] == clean["paired"]["acknowledged"] > 5
    assert clean["prepared"]["samples"] >= len(pgchaos_stack.manifest.data_members) - 1

    # damage the stored state the way a broken commit would, then read it again
    with psycopg.connect(bank.dsn("router"), autocommit=True) as conn:
        key, account, amount = conn.execute(
            f"SELECT key, account, amount FROM {SCHEMA}.bank_entries WHERE account = ANY(%s) AND amount > 0 "
            "ORDER BY key LIMIT 1", (bank.accounts,)).fetchone()
        with conn.transaction():  # the credit side vanishes: its entry and its effect on the balance
            conn.execute(f"DELETE FROM {SCHEMA}.bank_entries WHERE key = %s AND account = %s", (key, account))
            conn.execute(f"UPDATE {SCHEMA}.bank_accounts SET balance = balance - %s WHERE id = %s",
                         (amount, account))
        order = conn.execute(f"SELECT min(id) FROM {SCHEMA}.bank_order_lines WHERE id >= %s",
                             (bank.key_base,)).fetchone()[0]
        conn.execute(f"DELETE FROM {SCHEMA}.bank_order_lines WHERE id = %s", (order,))
    damaged_path = tmp_path / "damaged.jsonl"
    with HistoryWriter(damaged_path) as history:
        bank.history = history
        assert bank.final_read() is not None
    ops = [op for op in read_history(path) if op.f != "bank-final"] + read_history(damaged_path)
    damaged = atomicity(ops)
    found: dict[str, str] = {}
    for f in damaged["findings"]:
        found[f["code"]] = found.get(f["code"], "") + f["text"] + "\n"
    assert damaged["valid"] is False
    half = found["atomicity-half-applied"]
    assert f"transfer {key} (ok" in half and f"credited {account}" in half
    assert f"key {order} (ok): order without its line" in half
    assert "atomicity-total" in found and "atomicity-balance" not in found
