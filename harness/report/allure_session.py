"""Allure results for a pytest session, switched on only once it is known to run scenarios.

allure-pytest records only with ``--alluredir``, which it reads in its own
``pytest_configure``; pgchaos used to set that option for every session, so
any pytest run with the plugin installed wrote ``reports/allure``. Now the
plugin calls :func:`enable_results` after collection, when the selected tests
include scenarios: it registers the same listener and result writer that
allure-pytest registers for ``--alluredir``. The user's own ``--alluredir``
always wins (allure is then configured already, and nothing here runs).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
ALLURE_PLUGIN = "allure_pytest"  # allure-pytest's pytest11 entry point


def enable_results(config: Any, results_dir: Path) -> bool:
    """Record allure results of this session into `results_dir`; False when allure is
    not installed, disabled (`-p no:allure_pytest`) or already told where to write."""
    if not config.pluginmanager.has_plugin(ALLURE_PLUGIN) or getattr(config.option, "allure_report_dir", None):
        return False
    try:
        import allure_commons
        from allure_commons.logger import AllureFileLogger
        from allure_pytest.listener import AllureListener
        from allure_pytest.plugin import cleanup_factory
    except ImportError as exc:  # a report is never worth a crash
        log.warning("allure results not recorded: %s", exc)
        return False
    config.option.allure_report_dir = str(results_dir)
    listener = AllureListener(config)
    config.pluginmanager.register(listener, "allure_listener")
    allure_commons.plugin_manager.register(listener)
    config.add_cleanup(cleanup_factory(listener))
    clean = bool(getattr(config.option, "clean_alluredir", False)) and not config.option.collectonly
    writer = AllureFileLogger(str(Path(results_dir).absolute()), clean)
    allure_commons.plugin_manager.register(writer)
    config.add_cleanup(cleanup_factory(writer))
    return True
