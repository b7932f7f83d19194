"""A static Allure site of a run's results, rendered with Allure 3 (npm package ``allure``).

Allure 3 is JavaScript (Node.js, no Java). pgchaos looks for it in its cache
folder (``~/.cache/pgchaos/allure/node_modules/.bin/allure``, or
``$PGCHAOS_ALLURE_DIR``), then on PATH (an Allure 2 there is not used), and
installs it into the cache folder when asked (``npm install --prefix DIR
allure@3``). The results of every session go to ``<reports>/allure``; the
ones of one run are those whose test started within the run's time window
(from its run id to its summary), copied with their attachments into a
folder of their own before ``allure generate`` reads them. The site needs no
network to be viewed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Final

from harness.errors import PgchaosError

SITE: Final = "allure-report"
SLACK_S: Final = 60.0  # a test's start may precede its scenario folder by its set-up
VERSION: Final = re.compile(r"(\d+)\.\d+\.\d+")
ANALYTICS: Final = re.compile(r"<script async src=\"https://www\.googletagmanager\.com/[^\"]*\"></script>\s*"
                              r"<script>\s*window\.dataLayer.*?</script>\s*", re.S)


def cache_dir() -> Path:
    """Where pgchaos installs Allure 3: ``$PGCHAOS_ALLURE_DIR``, else ~/.cache/pgchaos/allure."""
    named = os.environ.get("PGCHAOS_ALLURE_DIR")
    return Path(named) if named else Path.home() / ".cache" / "pgchaos" / "allure"


def install_command() -> str:
    return f"npm install --prefix {cache_dir()} allure@3"


def _major(exe: str) -> int | None:
    try:
        proc = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    m = VERSION.search(proc.stdout + proc.stderr)
    return int(m.group(1)) if m else None


def find_allure() -> str | None:
    """The Allure 3 executable: the cache folder's, else an ``allure`` on PATH of version 3 or later."""
    cached = cache_dir() / "node_modules" / ".bin" / "allure"
    if cached.is_file() and os.access(cached, os.X_OK):
        return str(cached)
    on_path = shutil.which("allure")
    if on_path and (_major(on_path) or 0) >= 3:
        return on_path
    return None


def install_allure() -> str:
    """Install Allure 3 into the cache folder with npm; its executable."""
    if shutil.which("npm") is None or shutil.which("node") is None:
        raise PgchaosError(f"Allure 3 needs Node.js and npm (apt-get install -y nodejs npm), then: "
                           f"{install_command()}")
    cache_dir().mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["npm", "install", "--prefix", str(cache_dir()), "--no-audit", "--no-fund", "allure@3"],
                          capture_output=True, text=True, timeout=900, check=False)
    exe = find_allure()
    if proc.returncode != 0 or exe is None:
        last = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()[-1]
        raise PgchaosError(f"`{install_command()}` failed (exit {proc.returncode}): {last}")
    return exe


def run_window(run_dir: Path) -> tuple[float, float] | None:
    """Epoch seconds from the run's start (its id, local time) to its end (summary's time)."""
    try:
        start = time.mktime(time.strptime(run_dir.name[:15], "%Y%m%d-%H%M%S"))
    except ValueError:
        return None
    ends = [p.stat().st_mtime for p in (run_dir / "summary.json", run_dir / "junit.xml") if p.exists()]
    return start - SLACK_S, (max(ends) if ends else time.time()) + 5.0


def _attachments(node: dict[str, Any]) -> list[str]:
    found = [a["source"] for a in node.get("attachments") or [] if isinstance(a, dict) and a.get("source")]
    for step in node.get("steps") or []:
        if isinstance(step, dict):
            found += _attachments(step)
    return found


def select_results(results: Path, run_dir: Path | None, into: Path) -> int:
    """Copy the results of ``run_dir`` (all of them when None) with their attachments and
    containers into ``into``; the number of test results copied."""
    window = None if run_dir is None else run_window(run_dir)
    if run_dir is not None and window is None:
        raise PgchaosError(f"{run_dir}: not a run folder named by its start (reports/<YYYYmmdd-HHMMSS>)")
    into.mkdir(parents=True, exist_ok=True)
    uuids: set[str] = set()
    for path in sorted(results.glob("*-result.json")):
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        start = (doc.get("start") or 0) / 1000.0
        if window is not None and not window[0] <= start <= window[1]:
            continue
        shutil.copy2(path, into / path.name)
        uuids.add(str(doc.get("uuid")))
        for source in _attachments(doc):
            if (results / source).is_file():
                shutil.copy2(results / source, into / source)
    for path in sorted(results.glob("*-container.json")):
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if uuids & set(doc.get("children") or []):
            shutil.copy2(path, into / path.name)
            for source in _attachments(doc) + [a for f in (doc.get("befores") or []) + (doc.get("afters") or [])
                                               for a in _attachments(f)]:
                if (results / source).is_file():
                    shutil.copy2(results / source, into / source)
    for extra in ("environment.properties", "categories.json", "executor.json"):
        if (results / extra).is_file():
            shutil.copy2(results / extra, into / extra)
    return len(uuids)


def generate_site(results: Path, out: Path, run_dir: Path | None = None, *, install: bool = False,
                  name: str = "pgchaos") -> Path:
    """Render the Allure results of ``run_dir`` (all under ``results`` when None) into ``out``
    with Allure 3; returns ``out/index.html``. Raises PgchaosError with the next step to take."""
    exe = find_allure()
    if exe is None:
        if not install:
            if shutil.which("npm") is None:
                raise PgchaosError(f"Allure 3 not found and no npm here: apt-get install -y nodejs npm, then "
                                   f"{install_command()} (or pgchaos report --html --install-allure)")
            raise PgchaosError(f"Allure 3 not found: pgchaos report --html --install-allure (runs "
                               f"`{install_command()}`)")
        exe = install_allure()
    if not results.is_dir():
        raise PgchaosError(f"no Allure results in {results}: they are written when scenarios run")
    with tempfile.TemporaryDirectory(prefix="pgchaos-allure-") as tmp:
        picked = Path(tmp) / "allure-results"
        n = select_results(results, run_dir, picked)
        if n == 0:
            raise PgchaosError(f"no Allure result in {results} belongs to "
                               f"{run_dir.name if run_dir else 'any run'}")
        if out.exists():
            shutil.rmtree(out)
        (Path(tmp) / "allurerc.json").write_text(json.dumps(config(name)))
        proc = subprocess.run([exe, "generate", str(picked), "--output", str(out.resolve())], cwd=tmp,
                              capture_output=True, text=True, timeout=900, check=False,
                              env={**os.environ, "NO_COLOR": "1"})
    index = out / "index.html"
    if proc.returncode != 0 or not index.is_file():
        last = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()[-1]
        raise PgchaosError(f"allure generate failed (exit {proc.returncode}): {last}")
    index.write_text(offline(index.read_text(encoding="utf-8")), encoding="utf-8")
    return index


def config(name: str) -> dict[str, Any]:
    """Allure 3's configuration (allurerc.json): the Awesome report in one file, so that it
    opens from the disk (file://) without a web server."""
    return {"name": name, "plugins": {"awesome": {"options": {"singleFile": True, "reportName": name,
                                                              "reportLanguage": "en"}}}}


def offline(page: str) -> str:
    """The report without its analytics tag (a script from the network and its set-up), so that
    viewing it asks nothing of the network."""
    return ANALYTICS.sub("", page)
