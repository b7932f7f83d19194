"""junit.xml of a run: one testcase per scenario, from the summary rows.

``fail``, ``unknown`` and ``unjudged`` (nothing judged it against a target)
become ``<failure>``, ``error`` becomes ``<error>``, ``skipped`` becomes
``<skipped>``; ``pass``, ``waived`` and ``marginal`` pass (a waived one carries
a ``waiver`` property with the waiver's reason, a marginal one its margin;
with ``marginal_fails`` a marginal one is a ``<failure>``). RTO/RPO figures
and the margin to the bound are ``<property>`` elements of the testcase.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

SUITE: Final = "pgchaos"
FAILING: Final = frozenset({"fail", "unknown", "unjudged"})
MESSAGE_CHARS: Final = 300
FIGURES: Final = (
    "verdict",
    "target_row",
    "target_rto_s",
    "rto_write_s",
    "rto_read_s",
    "target_rpo_s",
    "lost_writes",
    "rpo_window_s",
    "unknown_writes",
    "backup_age_s",
)


def _text(x: Any) -> str:
    return f"{x:.3f}" if isinstance(x, float) else str(x)


def _testcase(suite: ET.Element, row: dict[str, Any], classname: str, marginal_fails: bool = False) -> str:
    """Append one testcase; returns its outcome (passed, failure, error, skipped)."""
    verdict = str(row.get("verdict") or "unknown")
    case = ET.SubElement(suite, "testcase", classname=classname, name=str(row.get("scenario") or "?"),
                         time=_text(float(row.get("wall_s") or 0.0)))
    props = ET.SubElement(case, "properties")
    for key in FIGURES:
        if row.get(key) is not None:
            ET.SubElement(props, "property", name=key, value=_text(row[key]))
    for key, value in sorted((row.get("figures") or {}).items()):
        ET.SubElement(props, "property", name=f"figure.{key}", value=_text(value))
    margin = row.get("margin") or {}
    if margin.get("ratio") is not None:
        ET.SubElement(props, "property", name="margin_ratio", value=_text(float(margin["ratio"])))
    reason = str(row.get("reason") or "")
    if verdict == "waived":
        ET.SubElement(props, "property", name="waiver", value=reason)
    if verdict == "error":
        short = reason if len(reason) <= MESSAGE_CHARS else reason[: MESSAGE_CHARS - 3] + "..."
        error = ET.SubElement(case, "error", message=short or "error", type="error")
        error.text = reason or "error"
        return "error"
    if verdict in FAILING or (marginal_fails and verdict == "marginal"):
        short = reason if len(reason) <= MESSAGE_CHARS else reason[: MESSAGE_CHARS - 3] + "..."
        failure = ET.SubElement(case, "failure", message=f"{verdict}: {short or 'no reason given'}",
                                type=verdict)
        failure.text = reason or f"verdict {verdict}"
        return "failure"
    if verdict == "skipped":
        ET.SubElement(case, "skipped", message=reason or "skipped")
        return "skipped"
    if reason:
        ET.SubElement(case, "system-out").text = reason
    return "passed"


def write_junit(rows: Sequence[dict[str, Any]], path: Path, run_id: str | None = None,
                marginal_fails: bool = False) -> Path:
    """Write ``rows`` (from :func:`harness.report.summary.summary_row`) as JUnit XML at ``path``."""
    path = Path(path)
    run_id = run_id or path.parent.name
    root = ET.Element("testsuites", name=SUITE)
    suite = ET.SubElement(root, "testsuite", name=f"{SUITE} {run_id}",
                          timestamp=time.strftime("%Y-%m-%dT%H:%M:%S"))
    outcomes = [_testcase(suite, r, f"{SUITE}.{run_id}", marginal_fails) for r in rows]
    total = sum(float(r.get("wall_s") or 0.0) for r in rows)
    for el in (root, suite):
        el.set("tests", str(len(rows)))
        el.set("failures", str(outcomes.count("failure")))
        el.set("errors", str(outcomes.count("error")))
        el.set("skipped", str(outcomes.count("skipped")))
        el.set("time", _text(total))
    ET.indent(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    return path
