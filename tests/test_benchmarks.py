"""Every benchmark runs in --quick mode and ends with its figure line; no timing is asserted (CI machines vary)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from optrepro.paths import REPO_ROOT

RATIO_LINE = re.compile(r"RATIO [^:]+: \d+\.\d+")
TOTAL_LINE = re.compile(r"TOTAL [^:]+: \d+\.\d+")
FINAL_LINES = {
    "framework_overhead.py": RATIO_LINE,
    "sam_cost.py": RATIO_LINE,
    "data_pipeline.py": RATIO_LINE,
    "cpu_tier_budget.py": TOTAL_LINE,
    "claims_speed.py": RATIO_LINE,
    "startup.py": RATIO_LINE,
    "sequential_power.py": RATIO_LINE,
    "parallel_runs.py": RATIO_LINE,
}


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(FINAL_LINES))
def test_quick_run_ends_with_its_figure(script, tmp_path):
    env = os.environ | {"OPTREPRO_RUNS": str(tmp_path / "runs")}  # no dependence on this checkout's runs
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / script), "--quick"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    last_line = result.stdout.strip().splitlines()[-1]
    assert FINAL_LINES[script].fullmatch(last_line), result.stdout
