"""The alert rules, checked by Prometheus's own tool (promtool, from the stack's
monitoring image): syntax, the Prometheus and Alertmanager configs, and unit
tests of the thresholds (tests/rules/alerts_test.yml: the guide's 10 MB /
100 MB lag, 80 % / 95 % disk, 24 h backup, ...). The lag-alert-blind variant
differs from the reference rules in the lag thresholds only, and its rules
fail those unit tests."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from harness import assets
from harness.stack import images

pytestmark = pytest.mark.docker

CONFIG = assets.compose_dir() / "config"
VARIANT = assets.compose_dir() / "variants" / "lag-alert-blind" / "alerts.yml"
UNIT_TESTS = sorted((Path(__file__).parent / "rules").glob("*_test.yml"))


@pytest.fixture(scope="module")
def monitoring_image() -> str:
    tag = images.ensure_images(assets.compose_dir(), lambda msg: None)
    return f"{images.IMAGE_PREFIX}/prometheus:{tag}"


def tool(image: str, workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", "run", "--rm", "--network", "none", "-v", f"{workdir}:/w:ro", "-w", "/w",
                           "--entrypoint", args[0], image, *args[1:]],
                          capture_output=True, text=True, timeout=120)


def test_rules_and_configs_are_valid(monitoring_image: str, tmp_path: Path) -> None:
    for name in ("prometheus.yml", "alerts.yml", "alertmanager.yml"):
        shutil.copy(CONFIG / name, tmp_path / name)
    rules = tool(monitoring_image, tmp_path, "promtool", "check", "rules", "alerts.yml")
    assert rules.returncode == 0 and "SUCCESS" in rules.stdout, rules.stdout + rules.stderr
    am = tool(monitoring_image, tmp_path, "amtool", "check-config", "alertmanager.yml")
    assert am.returncode == 0, am.stdout + am.stderr
    # prometheus.yml names its rules by their path in the container
    (tmp_path / "prometheus.yml").write_text((CONFIG / "prometheus.yml").read_text().replace(
        "/etc/prometheus/alerts.yml", "alerts.yml"))
    prom = tool(monitoring_image, tmp_path, "promtool", "check", "config", "prometheus.yml")
    assert prom.returncode == 0, prom.stdout + prom.stderr


def unit_tests(rules: Path, image: str, workdir: Path) -> subprocess.CompletedProcess[str]:
    shutil.copy(rules, workdir / "alerts.yml")
    for test in UNIT_TESTS:
        shutil.copy(test, workdir / test.name)
    return tool(image, workdir, "promtool", "test", "rules", *(t.name for t in UNIT_TESTS))


def test_thresholds_are_the_guides(monitoring_image: str, tmp_path: Path) -> None:
    assert len(UNIT_TESTS) >= 2
    result = unit_tests(CONFIG / "alerts.yml", monitoring_image, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_blind_variant_fails_the_lag_unit_tests_only(monitoring_image: str, tmp_path: Path) -> None:
    result = unit_tests(VARIANT, monitoring_image, tmp_path)
    assert result.returncode != 0
    out = result.stdout + result.stderr
    failed = [line.split(":", 1)[1].strip().rstrip(",") for line in out.splitlines()
              if line.strip().startswith("name:")]
    assert failed and all(name.startswith("replication lag") for name in failed), out


def test_blind_variant_is_the_reference_but_for_the_lag_thresholds() -> None:
    """A guard against drift: the variant is the reference file with two thresholds raised."""
    ref = [line for line in (CONFIG / "alerts.yml").read_text().splitlines()]
    var = [line for line in VARIANT.read_text().splitlines() if not line.startswith("# VARIANT")
           and not line.startswith("# set far too high")]
    changed = [(a, b) for a, b in zip(ref, var, strict=True) if a != b]
    assert [a.split(">")[1].strip() for a, _ in changed] == ["10 * 1024 * 1024", "100 * 1024 * 1024"]
    assert all(b.split(">")[1].split("#")[0].strip().endswith("* 1024 * 1024 * 1024") for _, b in changed)
