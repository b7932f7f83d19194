"""Reports: run summaries (and, with allure, per-phase steps)."""
