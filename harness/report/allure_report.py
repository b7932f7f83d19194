"""Allure, live: scenario phases as steps, labels, and the evidence attached.

allure-pytest records only when pytest runs with ``--alluredir``: without it
no allure listener is registered and allure's calls do nothing. The observer
checks that up front (:func:`allure_active`) and then skips all its work;
whatever allure does, no method here raises.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from harness.verdict import is_passing

try:
    import allure
    from allure_commons import plugin_manager
except ImportError:  # allure-pytest is a dependency, but a report is never worth a crash
    allure = None
    plugin_manager = None

log = logging.getLogger(__name__)

SEVERITIES: Final = ("blocker", "critical", "normal", "minor", "trivial")
MAX_ATTACH_BYTES: Final = 20 * 2**20
INSTALL_HINT: Final = ("install the Allure command line with `npm install -g allure-commandline` "
                       "(it needs Java: `apt-get install default-jre-headless`), then run "
                       "`allure generate {results} -o {out} --clean`")


def allure_active() -> bool:
    """True when an allure listener records steps (pytest with ``--alluredir``)."""
    try:
        return plugin_manager is not None and bool(plugin_manager.hook.start_step.get_hookimpls())
    except Exception:
        return False


def _safely(what: str, fn: Callable[[], Any]) -> None:
    try:
        fn()
    except Exception as e:  # a report must never fail a scenario
        log.warning("allure: %s failed: %s", what, e)


def _title(name: str, detail: dict[str, Any]) -> str:
    if not detail:
        return name
    return f"{name} (" + ", ".join(f"{k}={v}" for k, v in detail.items()) + ")"


def _description(verdict: dict[str, Any]) -> str:
    from harness.report.summary import summary_row

    r = summary_row(verdict)

    def s(x: Any) -> str:
        return "—" if x is None else f"{x:.1f} s" if isinstance(x, float) else str(x)

    lines = [f"**verdict: {r['verdict']}** — target row `{r['target_row'] or 'none'}`", "",
             "| | target | measured |", "|---|---|---|",
             f"| RTO write | {s(r['target_rto_s'])} | {s(r['rto_write_s'])} |",
             f"| RTO read | {s(r['target_rto_s'])} | {s(r['rto_read_s'])} |",
             f"| RPO | {s(r['target_rpo_s'])} | lost {s(r['lost_writes'])}, window {s(r['rpo_window_s'])} |"]
    reasons = verdict.get("reasons") or []
    if reasons:
        lines += ["", "Reasons:", *[f"- {x}" for x in reasons]]
    for w in verdict.get("waivers") or []:
        lines += ["", f"Waiver (bound {w.get('bound')} s): {w.get('reason')}"]
    return "\n".join(lines)


class AllureObserver:
    """One scenario's allure view: each phase a step, open until the next phase or :meth:`close`."""

    def __init__(self) -> None:
        self._step: Any = None

    @property
    def active(self) -> bool:
        return allure_active()

    def phase(self, name: str, **detail: Any) -> None:
        """Close the current phase's step and open one for ``name``."""
        self.close()
        if not self.active:
            return
        try:
            step = allure.step(_title(name, detail))
            step.__enter__()
        except Exception as e:
            log.warning("allure: step %r failed: %s", name, e)
            return
        self._step = step

    def close(self, exc: BaseException | None = None) -> None:
        """Close the open step (marked broken or failed when ``exc`` is given)."""
        step, self._step = self._step, None
        if step is not None:
            exc_info = (None, None, None) if exc is None else (type(exc), exc, exc.__traceback__)
            _safely("step stop", lambda: step.__exit__(*exc_info))

    def __enter__(self) -> AllureObserver:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.close(exc)

    def labels(self, feature: str, severity: str, scenario: str) -> None:
        """Feature, severity (blocker .. trivial; else normal), tag and title of the test."""
        if not self.active:
            return
        level = str(severity).lower()
        level = level if level in SEVERITIES else "normal"
        _safely("feature", lambda: allure.dynamic.feature(feature))
        _safely("severity", lambda: allure.dynamic.severity(allure.severity_level(level)))
        _safely("tag", lambda: allure.dynamic.tag(scenario))
        _safely("title", lambda: allure.dynamic.title(scenario))

    def attach_scenario(self, scenario_dir: Path, verdict: dict[str, Any], failed: bool) -> None:
        """Attach the scenario's evidence to the test (container logs too when it failed)."""
        self.close()
        if not self.active:
            return
        _safely("attach", lambda: self._attach_all(Path(scenario_dir), verdict, failed))

    def _attach_all(self, d: Path, verdict: dict[str, Any], failed: bool) -> None:
        kind = allure.attachment_type
        v = str(verdict.get("verdict") or "unknown")
        _safely("verdict tag", lambda: allure.dynamic.tag(v))
        _safely("description", lambda: allure.dynamic.description(_description(verdict)))
        png = d / "timeline.png"
        if not png.exists() and (d / "history.jsonl").exists():
            from harness.report.timeline import render_timeline

            _safely("timeline", lambda: render_timeline(d / "history.jsonl", verdict, png))
        if (d / "verdict.json").exists():
            self._file(d / "verdict.json", "verdict.json", kind.JSON)
        else:
            body = json.dumps(verdict, indent=2, default=str)
            _safely("verdict", lambda: allure.attach(body, name="verdict.json", attachment_type=kind.JSON))
        for name, typ, ext in (("timeline.png", kind.PNG, None), ("history.jsonl", kind.TEXT, "jsonl"),
                               ("locust_stats.csv", kind.CSV, None), ("locust.html", kind.HTML, None),
                               ("patronictl-before.txt", kind.TEXT, None),
                               ("patronictl-after.txt", kind.TEXT, None),
                               ("steady-state-before.json", kind.JSON, None),
                               ("steady-state-after.json", kind.JSON, None)):
            self._file(d / name, name, typ, ext)
        if failed or not is_passing(v):
            logs = d / "logs"
            for path in sorted(logs.iterdir()) if logs.is_dir() else ():
                if path.is_file():
                    self._file(path, f"logs/{path.name}", kind.TEXT, path.suffix.lstrip(".") or "txt")

    @staticmethod
    def _file(path: Path, name: str, typ: Any, extension: str | None = None) -> None:
        if not path.is_file():
            return
        size = path.stat().st_size
        if size > MAX_ATTACH_BYTES:
            note = f"{path} is {size / 2**20:.0f} MiB, too large to attach; it stays in the run directory"
            _safely(name, lambda: allure.attach(note, name=f"{name} (not attached)",
                                                attachment_type=allure.attachment_type.TEXT))
            return
        _safely(name, lambda: allure.attach.file(str(path), name=name, attachment_type=typ,
                                                 extension=extension))


def generate_html(results_dir: Path, out_dir: Path) -> str:
    """Run `allure generate` when the Allure command line is here; say how to get it otherwise.

    Returns one line for a person; never raises.
    """
    try:
        return _generate(Path(results_dir), Path(out_dir))
    except Exception as e:
        return f"allure generate could not run: {e}"


def _generate(results: Path, out: Path) -> str:
    hint = INSTALL_HINT.format(results=results, out=out)
    exe = shutil.which("allure")
    if exe is None:
        return f"Allure command line not found: {hint}"
    if shutil.which("java") is None:
        return "Allure command line found but no Java: `apt-get install default-jre-headless`"
    if not results.is_dir() or not any(results.iterdir()):
        return f"no allure results in {results}: run pytest with --alluredir {results}"
    proc = subprocess.run([exe, "generate", str(results), "-o", str(out), "--clean"],
                          capture_output=True, text=True, timeout=900, check=False)
    if proc.returncode != 0:
        last = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()[-1]
        return f"allure generate failed (exit {proc.returncode}): {last}"
    return f"Allure report written to {out / 'index.html'}"
