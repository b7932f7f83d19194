"""The core every verdict passes through (checkers, verdict, history, targets) and the engine
seam (harness.engines.base and its registry) type-check strictly: mypy with the configuration
in pyproject.toml."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_the_core_type_checks_strictly() -> None:
    pytest.importorskip("mypy", reason="mypy is a dev dependency (pip install -e .[dev])")
    proc = subprocess.run([sys.executable, "-m", "mypy", "--no-error-summary"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
