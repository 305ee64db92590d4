"""run.py's start-up path imports neither torch nor Lightning (benchmarks/startup.py has the seconds), and `--help`
is the app's own page: what it does and the commands, with an example each."""

from __future__ import annotations

import ast
import os
import subprocess
import sys

import pytest

from optrepro.paths import REPO_ROOT

# Runs run.py as `python run.py <args>` would, then prints which heavy modules the process imported.
PROBE = """
import runpy, sys
sys.argv = ["run.py", *sys.argv[1:]]
try:
    runpy.run_path("run.py", run_name="__main__")
except SystemExit as exit:
    assert not exit.code, exit.code
finally:
    print("HEAVY", sorted(m for m in ("torch", "lightning", "pytorch_lightning", "wandb") if m in sys.modules))
"""
COMPLETION_LINE = "python run.py optimizer=s"


def probe(*args: str) -> tuple[str, list[str]]:
    env = os.environ | {
        "PYTHONPATH": str(REPO_ROOT / "src"),
        "COMP_LINE": COMPLETION_LINE,
        "COMP_POINT": str(len(COMPLETION_LINE)),
    }
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    output, _, heavy = done.stdout.rpartition("HEAVY ")
    return output, ast.literal_eval(heavy)


@pytest.mark.parametrize(
    "args", [("--help",), ("--cfg", "job"), ("+repro=sam_cifar", "--cfg", "job"), ("-sc", "query=bash")], ids=" ".join
)
def test_start_up_imports_no_torch(args):
    output, heavy = probe(*args)
    assert heavy == []
    assert output.strip()


def test_cfg_job_shows_the_config_and_completion_offers_options():
    assert "optimizer:" in probe("--cfg", "job")[0]
    assert "optimizer=sam" in probe("-sc", "query=bash")[0].split()


def test_help_says_what_run_py_does_with_examples():
    help_text, _ = probe("--help")
    assert "Trains and evaluates one setting" in help_text
    for command in (
        "python run.py +repro=sam_fmnist_cpu",
        "--cfg job",
        "hydra/launcher=slurm",
        "debug=smoke",
        "hardware=cpu",
        "python -m optrepro claims run",
    ):
        assert command in help_text
    assert "repro: " in help_text and "sam_cifar" in help_text  # the config groups, presets included
    assert len(help_text.splitlines()) < 50  # a page, not a dump of the config


@pytest.mark.parametrize("args", [("--help",), ("claims", "--help")], ids=" ".join)
def test_optrepro_tools_list_their_commands_without_torch(args):
    code = (
        "import sys; from optrepro.cli import main\ntry: main(sys.argv[1:])\nexcept SystemExit: pass\n"
        "print('HEAVY', 'torch' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        env=os.environ | {"PYTHONPATH": str(REPO_ROOT / "src")},
        timeout=120,
        check=True,
    )
    assert "landscape" in done.stdout or "list" in done.stdout
    assert done.stdout.strip().endswith("HEAVY False")
