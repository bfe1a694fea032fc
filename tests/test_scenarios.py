"""The reliability scenarios (loadtests/scenarios.py), briefly: Redis killed under load,
model swaps under load, a broken current, kill -9 of the jobs and of the service, a full
events volume. Real processes throughout; RELIABILITY.md has the full run's figures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_reliability_scenario_passes() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "loadtests" / "scenarios.py"),
                             "--quick"], capture_output=True, text=True, timeout=1800)
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 7, result.stdout + result.stderr
    assert all(line.startswith("PASS") for line in lines), result.stdout + result.stderr[-3000:]
    assert result.returncode == 0
