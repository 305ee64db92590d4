"""A paper brings its own code: a fixture paper outside src/ (tests/fixtures/fixture_paper) with its own loss, metric
and callback runs end to end from its preset and its claim is decided; paper code is importable from any folder;
records written before the paper knobs moved into their folders still answer their claims."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.compose import compose_config
from helpers.rejected import stopped_before_any_work
from hydra.core.plugins import Plugins

import hydra_plugins.optrepro_searchpath as searchpath
from optrepro.claims.load import load_all_claims, load_paper_claims
from optrepro.claims.match import arm_keys
from optrepro.paths import REPO_ROOT, REPRODUCTIONS_DIR
from optrepro.records.table import load_records_from
from optrepro.results.report import evaluate_papers
from optrepro.train import run

FIXTURES = Path(__file__).parent / "fixtures"
FIXTURE_PAPER = FIXTURES / "fixture_paper"


@pytest.fixture
def fixture_paper_installed(monkeypatch):
    """The fixture paper as a paper folder: its presets on Hydra's search path, its modules importable."""
    Plugins.instance()  # Hydra's first plugin scan re-executes the plugin module: let it happen before the patch
    dirs = searchpath.reproduction_config_dirs
    monkeypatch.setattr(searchpath, "reproduction_config_dirs", lambda: [*dirs(), FIXTURE_PAPER / "configs"])
    monkeypatch.syspath_prepend(str(FIXTURES))


def test_fixture_paper_runs_end_to_end_and_its_claim_is_decided(fixture_paper_installed, tmp_path):
    records = [run(compose_config(["+repro=fixture_paper_smoke", f"seed={seed}"], tmp_path)) for seed in (0, 1)]
    for record in records:
        assert record["status"] == "finished"
        assert record["config"]["loss"]["_target_"] == "fixture_paper.loss.TemperedCrossEntropy"
        assert 0 < record["metrics"]["final"]["train/param_norm"] < 100  # the fixture's callback and metric ran
    # Its loss is the one trained on: at a huge temperature every logit is ~0, so the loss is ln(10) on 10 classes.
    flat = run(compose_config(["+repro=fixture_paper_smoke", "loss.temperature=1e9"], tmp_path))
    assert flat["metrics"]["final"]["train/loss"] == pytest.approx(math.log(10), abs=1e-6)

    table = load_records_from([tmp_path / "runs"])
    (verdict,) = evaluate_papers([load_paper_claims(FIXTURE_PAPER / "claims.yaml")], table)[0].verdicts
    assert verdict.status == "reproduced"
    tight = tmp_path / "fixture_paper" / "claims.yaml"
    tight.parent.mkdir()
    tight.write_text((FIXTURE_PAPER / "claims.yaml").read_text().replace("max: 100.0", "max: 0.001"))
    (verdict,) = evaluate_papers([load_paper_claims(tight)], table)[0].verdicts
    assert verdict.status == "not reproduced"


@pytest.mark.parametrize(
    "override, line",
    [
        ("loss.temperature=0", "loss.temperature: must be > 0, got 0; set loss.temperature above 0"),
        ("+loss.temprature=2", "loss.temprature: not a config key (misspelled, "),
    ],
)
def test_a_papers_own_knob_is_typed_by_its_folder_alone(fixture_paper_installed, tmp_path, override, line):
    """The fixture's loss knob is declared in its folder (TemperedKnobs) and checked before any run folder."""
    stopped = stopped_before_any_work(["+repro=fixture_paper_smoke", override], tmp_path)
    assert stopped.startswith(f"optrepro: error: {line}")


def test_paper_code_is_importable_from_any_working_folder(tmp_path):
    """What a SLURM job or a DDP worker does: import optrepro's builders, then resolve a paper's `_target_`."""
    target = "reproductions.lion_k.weight_bound.WeightBoundCallback"
    code = (
        "from optrepro.builders import instantiate_node; "
        f"print(type(instantiate_node({{'_target_': '{target}'}}, 'x')).__name__)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT / "src"), "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "WeightBoundCallback"


def test_a_target_that_does_not_import_is_an_error_naming_the_node(make_cfg):
    from optrepro import builders
    from optrepro.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^loss: could not build 'reproductions\.nowhere\.Loss'"):
        builders.build_train_loss(make_cfg(["loss._target_=reproductions.nowhere.Loss"]))


MOVED = ("gradient_starvation", "lion_k", "notears_topo", "grokking")


def test_records_written_before_the_move_still_answer_every_seed_of_their_claims():
    """The committed records hold `train.loss`, `train.sd_*`, `train.log_*` and `task: structure_learning`; they
    answer today's arms (whose configs hold loss / callbacks / task nodes) by the recipe they were given."""
    records = load_records_from([REPO_ROOT / "results" / "records"])
    claims = [c for p in load_all_claims(REPRODUCTIONS_DIR) if p.paper in MOVED for c in p.claims if c.tier == "cpu"]
    keys = arm_keys(claims)
    for claim in claims:
        for arm in claim.arms:
            seeds = set(records.loc[records["recipe"] == keys[(claim.key, arm)], "seed"])
            needed = set(range(claim.looks[0])) if claim.looks else set(claim.seed_values)  # a sequential claim
            assert needed <= seeds, f"{claim.key} arm {arm}: seeds {sorted(seeds)}"  # needs its first look's seeds


def test_a_papers_own_step_strategy_is_named_by_module_and_function(fixture_paper_installed, tmp_path):
    """`optimizer.step: <module>:<function>` builds the paper's step; one signSGD step moves every weight by lr."""
    import torch
    from omegaconf import OmegaConf

    from optrepro.optim.backend import LocalBackend
    from optrepro.optim.factory import build_optimizer

    model = torch.nn.Linear(3, 2)
    inputs = torch.tensor([[1.0, -2.0, 0.5], [0.3, 0.1, -1.0], [2.0, 0.0, 1.0], [-1.0, 1.0, 1.0]])
    targets = torch.tensor([0, 1, 1, 0])
    grads = torch.autograd.grad(torch.nn.functional.cross_entropy(model(inputs), targets), list(model.parameters()))
    expected = [p.detach() - 0.25 * g.sign() for p, g in zip(model.parameters(), grads)]
    cfg = OmegaConf.create(
        {
            "name": "sign",
            "step": "fixture_paper.step:build_sign_step",
            "base": {"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.25},
        }
    )
    optimizer, strategy = build_optimizer(cfg, model, num_train_samples=4, num_classes=2)
    strategy.training_step(LocalBackend(model), (inputs, targets, torch.arange(4)), epoch=0)
    for want, got in zip(expected, model.parameters()):
        assert torch.equal(got.detach(), want)

    record = run(
        compose_config(["+repro=fixture_paper_smoke", "optimizer.step=fixture_paper.step:build_sign_step"], tmp_path)
    )
    assert record["status"] == "finished"
    assert record["config"]["optimizer"]["step"] == "fixture_paper.step:build_sign_step"
