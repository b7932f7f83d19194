"""A page opened in headless Chromium, as a reader would open it.

Chromium is driven over the DevTools protocol on a pipe
(``--remote-debugging-pipe``: JSON messages ending in a NUL byte on file
descriptors 3 and 4), so nothing beyond the standard library is needed. The
check loads a file, collects console errors, uncaught exceptions and failed
loads, evaluates expressions in the page, and takes a screenshot.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from harness.errors import PgchaosError

CANDIDATES: Final = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
TIMEOUT_S: Final = 60.0


def find_chromium() -> str | None:
    """The Chromium executable on PATH (``$PGCHAOS_CHROMIUM`` first), None when absent."""
    named = os.environ.get("PGCHAOS_CHROMIUM")
    if named:
        return shutil.which(named)
    return next((exe for exe in map(shutil.which, CANDIDATES) if exe), None)


@dataclass
class PageCheck:
    """What a page did on load: errors seen, values asked for, the screenshot's path."""

    url: str
    errors: list[str] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)
    screenshot: Path | None = None
    load_s: float = 0.0


class Chromium:
    """One headless Chromium speaking the DevTools protocol over a pipe."""

    def __init__(self, exe: str | None = None, width: int = 1280, height: int = 1600) -> None:
        exe = exe or find_chromium()
        if exe is None:
            raise PgchaosError("Chromium not found: apt-get install -y chromium")
        self.width, self.height = width, height
        self._profile = tempfile.TemporaryDirectory(prefix="pgchaos-chromium-")
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()

        def pipes() -> None:  # in the child: fd 3 reads commands, fd 4 writes replies
            read, write = os.dup(to_child_r), os.dup(from_child_w)  # neither is 3 or 4 now
            os.dup2(read, 3)
            os.dup2(write, 4)

        args = [exe, "--headless", "--remote-debugging-pipe", "--disable-gpu", "--no-first-run",
                "--no-default-browser-check", "--disable-extensions", "--hide-scrollbars",
                "--disable-dev-shm-usage", f"--user-data-dir={self._profile.name}",
                f"--window-size={width},{height}"]
        if os.geteuid() == 0:
            args.append("--no-sandbox")  # Chromium refuses to run its sandbox as root
        self._proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, close_fds=False, preexec_fn=pipes)
        os.close(to_child_r)
        os.close(from_child_w)
        self._next_id = 0
        self._buffer = b""
        self.events: list[dict[str, Any]] = []

    def close(self) -> None:
        """Stop Chromium and remove its profile."""
        with contextlib.suppress(Exception):
            self.send("Browser.close")
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        for fd in (self._to_child, self._from_child):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._profile.cleanup()

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read(self, deadline: float) -> dict[str, Any]:
        import select

        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_child], [], [], left)[0]:
                raise PgchaosError("Chromium did not answer in time")
            chunk = os.read(self._from_child, 1 << 16)
            if not chunk:
                raise PgchaosError("Chromium closed its DevTools pipe")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None,
             timeout: float = TIMEOUT_S) -> dict[str, Any]:
        """Send one command and return its result (events seen meanwhile go to ``events``)."""
        self._next_id += 1
        msg: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_child, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise PgchaosError(f"Chromium: {method}: {reply['error'].get('message')}")
                return reply.get("result") or {}
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float = TIMEOUT_S) -> dict[str, Any]:
        """Wait for the first event ``method`` not yet consumed."""
        deadline = time.monotonic() + timeout
        while True:
            for i, ev in enumerate(self.events):
                if ev.get("method") == method:
                    return self.events.pop(i)
            self.events.append(self._read(deadline))

    def check(self, path: Path, expressions: dict[str, str] | None = None,
              screenshot: Path | None = None, full_page: bool = False) -> PageCheck:
        """Open ``path``, wait for its load, evaluate ``expressions`` (name -> JS, JSON-returnable),
        and collect console errors, exceptions and failed loads; screenshot to ``screenshot``."""
        url = Path(path).resolve().as_uri()
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable", session=session)
        self.send("Emulation.setDeviceMetricsOverride", {"width": self.width, "height": self.height,
                                                         "deviceScaleFactor": 1, "mobile": False},
                  session=session)
        t0 = time.monotonic()
        self.send("Page.navigate", {"url": url}, session=session)
        self.wait_for("Page.loadEventFired")
        out = PageCheck(url, load_s=round(time.monotonic() - t0, 3))
        for name, js in (expressions or {}).items():
            res = self.send("Runtime.evaluate", {"expression": js, "returnByValue": True,
                                                 "awaitPromise": True}, session=session)
            if "exceptionDetails" in res:
                out.errors.append(f"{name}: {res['exceptionDetails'].get('text')}")
            out.values[name] = (res.get("result") or {}).get("value")
        if screenshot is not None:
            params: dict[str, Any] = {"format": "png"}
            if full_page:
                size = self.send("Page.getLayoutMetrics", session=session)["cssContentSize"]
                params.update(captureBeyondViewport=True, clip={"x": 0, "y": 0, "width": size["width"],
                                                                 "height": size["height"], "scale": 1})
            shot = self.send("Page.captureScreenshot", params, session=session)
            Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
            Path(screenshot).write_bytes(base64.b64decode(shot["data"]))
            out.screenshot = Path(screenshot)
        out.errors += errors_in(self.events)
        self.send("Target.closeTarget", {"targetId": target})
        self.events.clear()
        return out


def errors_in(events: Sequence[dict[str, Any]]) -> list[str]:
    """Console errors, uncaught exceptions, error log entries and failed loads among ``events``."""
    found = []
    for ev in events:
        method, p = ev.get("method"), ev.get("params") or {}
        if method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            args = p.get("args") or []
            found.append("console: " + " ".join(str(a.get("value", a.get("description"))) for a in args))
        elif method == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails") or {}
            found.append(f"exception: {(d.get('exception') or {}).get('description') or d.get('text')}")
        elif method == "Log.entryAdded" and (p.get("entry") or {}).get("level") == "error":
            e = p["entry"]
            found.append(f"log: {e.get('text')} {e.get('url') or ''}".strip())
        elif method == "Network.loadingFailed":
            found.append(f"load failed: {p.get('errorText')} ({p.get('type')})")
    return found
