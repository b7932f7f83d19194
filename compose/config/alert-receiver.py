"""Alertmanager webhook receiver: keeps every firing/resolved notification,
stamped with the time it arrived, and serves them on GET /notifications?after=N.

Standard library only; bounded memory (the last 10000 alerts)."""

import json
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

KEEP = 10_000
received: list[dict] = []
dropped = 0
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def _send(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        global dropped
        length = int(self.headers.get("Content-Length") or 0)
        try:
            doc = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            self._send(400, {"error": "not JSON"})
            return
        now = time.time()
        with lock:
            for alert in doc.get("alerts", []):
                received.append({"received": now, "status": alert.get("status"),
                                 "labels": alert.get("labels", {}),
                                 "annotations": alert.get("annotations", {}),
                                 "startsAt": alert.get("startsAt"), "endsAt": alert.get("endsAt"),
                                 "fingerprint": alert.get("fingerprint")})
            if len(received) > KEEP:
                dropped += len(received) - KEEP
                del received[: len(received) - KEEP]
        self._send(200, {"ok": True})

    def do_GET(self) -> None:
        url = urlparse(self.path)
        if url.path == "/health":
            self._send(200, {"ok": True})
            return
        if url.path != "/notifications":
            self._send(404, {"error": "unknown path"})
            return
        after = int(parse_qs(url.query).get("after", ["0"])[0])
        with lock:
            start = max(0, after - dropped)
            items = received[start:]
            self._send(200, {"next": dropped + len(received), "items": items})


# PID 1 of its container: without a handler SIGTERM is ignored and every stop waits the grace period
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
ThreadingHTTPServer(("0.0.0.0", 9095), Handler).serve_forever()
