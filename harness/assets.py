"""Where the files pgchaos ships beside its code are: the reference compose
stack, the scenarios with their targets table, and the locust users.

They live in the repository's top-level folders `compose/`, `scenarios/` and
`loadtests/`. A built wheel carries them as package data under
`harness/_assets/` (pyproject.toml maps those folders there); a checkout, or an
editable install of one, reads them in place. Nothing here ever writes.
"""

from __future__ import annotations

import functools
from importlib import metadata
from pathlib import Path

from harness._version import __version__

PACKAGE_DIR = Path(__file__).resolve().parent
BUNDLED = PACKAGE_DIR / "_assets"
DISTRIBUTION = "pgchaos"


def checkout_root() -> Path | None:
    """The repository this package is imported from (a checkout or an editable
    install), or None when it runs from an installed wheel."""
    root = PACKAGE_DIR.parent
    if (root / "pyproject.toml").is_file() and (root / "compose").is_dir() and (root / "scenarios").is_dir():
        return root
    return None


@functools.cache
def assets_root() -> Path:
    """The folder that holds compose/, scenarios/ and loadtests/."""
    if (BUNDLED / "compose").is_dir():
        return BUNDLED
    return checkout_root() or BUNDLED


def compose_dir() -> Path:
    """The reference stack: compose files, Dockerfiles (images/), configs, scripts, sql, variants."""
    return assets_root() / "compose"


def scenarios_dir() -> Path:
    """The scenario catalogue (pytest modules, conftest.py, targets.toml)."""
    return assets_root() / "scenarios"


def targets_file() -> Path:
    """The RTO/RPO table the scenarios are judged against."""
    return scenarios_dir() / "targets.toml"


def loadtests_dir() -> Path:
    return assets_root() / "loadtests"


def locustfile() -> Path:
    """The locust users run as a subprocess (nothing in harness imports locust)."""
    return loadtests_dir() / "locustfile.py"


def import_root() -> Path:
    """The folder `harness` is imported from (for a child interpreter's PYTHONPATH)."""
    return PACKAGE_DIR.parent


def default_reports_dir() -> Path:
    """Where run output goes unless told otherwise: ./reports of the caller's
    working directory, evaluated at call time (never the package or a checkout)."""
    return Path.cwd() / "reports"


def version() -> str:
    """The installed distribution's version (the package's own when not installed)."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return __version__
