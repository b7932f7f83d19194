#!/usr/bin/env bash
# Everything a fresh machine needs before pgchaos runs: the host set-up
# (Docker engine, compose plugin, debootstrap), Go for Toxiproxy, Chromium for
# the report pages' browser check, and the
# Python package with its dependencies. Idempotent.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
bash "$here/compose/scripts/setup-host.sh"
if ! command -v go >/dev/null && [ ! -x /usr/local/go/bin/go ]; then
  echo "[setup] installing golang-go (Toxiproxy is built from its Go module)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends golang-go >/dev/null
fi
if ! command -v chromium >/dev/null; then
  echo "[setup] installing chromium (the report pages are checked in a headless browser)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
if ! python3 -c "import harness, locust, psycopg, testcontainers, toxiproxy, allure, pytest_timeout, mkdocs, mypy" 2>/dev/null \
   || ! command -v pgchaos >/dev/null; then
  echo "[setup] pip install -e $here[dev]"
  python3 -m pip install -q -e "$here[dev]"
else
  echo "[setup] Python package installed"
fi
