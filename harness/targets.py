"""The RTO/RPO targets table (``scenarios/targets.toml``) and its waivers."""

from __future__ import annotations

import math
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

from harness.assets import targets_file
from harness.errors import PgchaosError

DEFAULT_PATH: Final = targets_file()  # package data, or the checkout's scenarios/targets.toml
SOURCES: Final = ("operations-guide", "pgchaos")
METRICS: Final = ("rto_s",)
ROW_KEYS: Final = ("source", "guide_row", "rto_s", "rpo_s", "notes", "prepared_xacts_s", "snapshot_reads")
WAIVER_KEYS: Final = ("row", "faults", "metric", "bound", "reason")
WAIVER_OPTIONAL: Final = ("derive",)  # "hard-kill": the bound is derived from the stack (harness.bounds)


class TargetsError(PgchaosError, ValueError):
    """A malformed targets file, or an unknown row."""


@dataclass(frozen=True, slots=True)
class Target:
    """One row: recovery time and loss targets, in seconds.

    ``rpo_s == 0``: no acknowledged write may be lost; ``rpo_s > 0``: the loss
    window (or backup age) must not exceed it.
    """

    row: str
    rto_s: float
    rpo_s: float
    source: str
    guide_row: str | None = None
    notes: str | None = None
    # distributed transactions (checkers.atomicity): how long a prepared transaction may outlive
    # a heal on a primary (None: leftovers are reported, not judged), and whether the stack
    # promises multi-shard reads one snapshot (then a read skew fails the verdict)
    prepared_xacts_s: float | None = None
    snapshot_reads: bool = False

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if self.prepared_xacts_s is None:  # the optional fields appear only when a row sets them
            del d["prepared_xacts_s"]
        if not self.snapshot_reads:
            del d["snapshot_reads"]
        return d


@dataclass(frozen=True, slots=True)
class Waiver:
    """Accepts a measured ``metric`` over a row's target, up to ``bound``, for some faults."""

    row: str
    faults: tuple[str, ...]
    metric: str
    bound: float
    reason: str
    derive: str | None = None  # how the bound is derived from the stack (harness.bounds); None: literal
    derivation: str | None = None  # the derivation, once resolved against a stack

    def covers(self, row: str, fault: str, metric: str, measured: float) -> bool:
        return (
            self.row == row
            and fault in self.faults
            and self.metric == metric
            and measured <= self.bound
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["faults"] = list(self.faults)
        return d


@dataclass(frozen=True, slots=True)
class Targets:
    """All rows by id, and the waivers."""

    rows: dict[str, Target]
    waivers: tuple[Waiver, ...] = ()
    path: Path | None = None

    def row(self, name: str) -> Target:
        """The row ``name``; TargetsError listing the valid rows otherwise."""
        try:
            return self.rows[name]
        except KeyError:
            valid = ", ".join(sorted(self.rows))
            raise TargetsError(f"unknown target row {name!r}; valid rows: {valid}") from None

    def waivers_for(self, row: str) -> list[Waiver]:
        return [w for w in self.waivers if w.row == row]


def _number(where: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TargetsError(f"{where}: {key!r} must be a number, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise TargetsError(f"{where}: {key!r} must be a finite number >= 0, got {value!r}")
    return float(value)


def _text(where: str, key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise TargetsError(f"{where}: {key!r} must be a non-empty string, got {value!r}")
    return value


def _optional_text(where: str, key: str, value: Any) -> str | None:
    return None if value is None else _text(where, key, value)


def _unknown_keys(where: str, table: dict[str, Any], allowed: tuple[str, ...]) -> None:
    extra = sorted(set(table) - set(allowed))
    if extra:
        raise TargetsError(
            f"{where}: unknown key(s) {', '.join(map(repr, extra))}; allowed: {', '.join(allowed)}"
        )


def _target(where: str, row: str, table: Any) -> Target:
    if not isinstance(table, dict):
        raise TargetsError(f"{where}: expected a table [{row}], got {table!r}")
    _unknown_keys(where, table, ROW_KEYS)
    for key in ("rto_s", "rpo_s", "source"):
        if key not in table:
            raise TargetsError(f"{where}: missing required key {key!r}")
    source = table["source"]
    if source not in SOURCES:
        raise TargetsError(f"{where}: 'source' must be one of {', '.join(SOURCES)}; got {source!r}")
    guide_row = _optional_text(where, "guide_row", table.get("guide_row"))
    if source == "operations-guide" and guide_row is None:
        raise TargetsError(f"{where}: a row from the operations guide needs 'guide_row'")
    snapshot_reads = table.get("snapshot_reads", False)
    if not isinstance(snapshot_reads, bool):
        raise TargetsError(f"{where}: 'snapshot_reads' must be true or false, got {snapshot_reads!r}")
    prepared = table.get("prepared_xacts_s")
    return Target(
        row=row,
        rto_s=_number(where, "rto_s", table["rto_s"]),
        rpo_s=_number(where, "rpo_s", table["rpo_s"]),
        source=source,
        guide_row=guide_row,
        notes=_optional_text(where, "notes", table.get("notes")),
        prepared_xacts_s=None if prepared is None else _number(where, "prepared_xacts_s", prepared),
        snapshot_reads=snapshot_reads,
    )


def _waiver(where: str, table: Any, rows: dict[str, Target]) -> Waiver:
    if not isinstance(table, dict):
        raise TargetsError(f"{where}: expected a [[waivers]] table, got {table!r}")
    _unknown_keys(where, table, WAIVER_KEYS + WAIVER_OPTIONAL)
    missing = [k for k in WAIVER_KEYS if k not in table]
    if missing:
        raise TargetsError(f"{where}: missing required key(s) {', '.join(map(repr, missing))}")
    row = table["row"]
    if row not in rows:
        raise TargetsError(
            f"{where}: waiver names unknown row {row!r}; valid rows: {', '.join(sorted(rows))}"
        )
    faults = table["faults"]
    if (
        not isinstance(faults, list)
        or not faults
        or not all(isinstance(x, str) and x for x in faults)
    ):
        raise TargetsError(f"{where}: 'faults' must be a non-empty list of fault names")
    metric = table["metric"]
    if metric not in METRICS:
        raise TargetsError(f"{where}: 'metric' must be one of {', '.join(METRICS)}; got {metric!r}")
    reason = _text(where, "reason", table["reason"])
    derive = table.get("derive")
    if derive is not None and derive not in ("hard-kill",):
        raise TargetsError(f"{where}: 'derive' must be \"hard-kill\" (or left out), got {derive!r}")
    return Waiver(row, tuple(faults), metric, _number(where, "bound", table["bound"]), reason, derive)


def parse_targets(data: dict[str, Any], path: Path | None = None) -> Targets:
    """Validate a decoded targets document."""
    name = str(path) if path else "targets"
    rows: dict[str, Target] = {}
    for key, table in data.items():
        if key != "waivers":
            rows[key] = _target(f"{name}: row {key!r}", key, table)
    if not rows:
        raise TargetsError(f"{name}: no target rows")
    raw_waivers = data.get("waivers", [])
    if not isinstance(raw_waivers, list):
        raise TargetsError(f"{name}: 'waivers' must be an array of tables ([[waivers]])")
    waivers = tuple(_waiver(f"{name}: waiver #{i}", w, rows) for i, w in enumerate(raw_waivers, 1))
    return Targets(rows, waivers, path)


def load_targets(path: str | Path | None = None) -> Targets:
    """Load and validate the targets table (default: the repository's scenarios/targets.toml)."""
    p = DEFAULT_PATH if path is None else Path(path)
    try:
        with open(p, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as e:
        raise TargetsError(f"{p}: cannot read targets file: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise TargetsError(f"{p}: invalid TOML: {e}") from None
    except UnicodeDecodeError as e:
        raise TargetsError(f"{p}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    return parse_targets(data, p)
