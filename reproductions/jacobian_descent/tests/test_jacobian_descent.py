"""Quinton & Rey 2024, Jacobian descent (reproductions/jacobian_descent): the aggregators against hand computations
(UPGrad, DualProj, MGDA, PCGrad on 2x2 and 3x2 Jacobians), UPGrad's non-conflict on random Jacobians, the per-example
Jacobian of the step against a loop over examples, the mean aggregator's step against the standard SGD step, clear
errors, and a smoke run."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers.rejected import config_check_error, rejected_run
from omegaconf import OmegaConf

from optrepro.errors import InvalidConfigError
from optrepro.optim.backend import LocalBackend
from optrepro.optim.standard import StandardStep
from optrepro.train import run
from reproductions.jacobian_descent.aggregators import AGGREGATORS, aggregate, check_aggregator
from reproductions.jacobian_descent.callback import summarize
from reproductions.jacobian_descent.models import paper_cnn
from reproductions.jacobian_descent.step import JacobianDescentStep, build_jd_step, conflict_stats


def agg(name, rows, seed=0, reg_eps=0.0):
    return aggregate(name, torch.tensor(rows, dtype=torch.float64), np.random.default_rng(seed), reg_eps).tolist()


def test_upgrad_on_hand_computed_jacobians():
    # g1=(1,0), g2=(-1,1): dual cone {x2 >= x1 >= 0}; pi(g1)=(.5,.5), pi(g2)=(0,1); mean (.25,.75)
    assert agg("upgrad", [[1, 0], [-1, 1]]) == pytest.approx([0.25, 0.75], abs=1e-12)
    # g1=(1,0), g2=(-2,1): dual cone {x2 >= 2 x1 >= 0}; pi(g1)=(.2,.4), pi(g2)=(0,1); mean (.1,.7)
    assert agg("upgrad", [[1, 0], [-2, 1]]) == pytest.approx([0.1, 0.7], abs=1e-12)
    # no conflict between the rows: UPGrad is the mean (paper, Section 2.3)
    assert agg("upgrad", [[1, 0], [1, 1]]) == pytest.approx([1.0, 0.5], abs=1e-12)
    # the paper's 3x2 example (Appendix C.4): the dual cone is {0}, so UPGrad is 0
    assert agg("upgrad", [[1, 0], [0, 1], [-0.5, -1]]) == pytest.approx([0.0, 0.0], abs=1e-12)


def test_other_aggregators_on_hand_computed_jacobians():
    rows = [[1, 0], [-2, 1]]
    assert agg("mean", rows) == pytest.approx([-0.5, 0.5])  # conflicts with g1
    assert agg("dualproj", rows) == pytest.approx([0.0, 0.5], abs=1e-12)  # the mean projected onto the dual cone
    # MGDA: min-norm point of the segment [g1, g2]: w g1 + (1-w) g2, w = 0.7 -> (0.1, 0.3), equal improvement 0.1
    assert agg("mgda", rows) == pytest.approx([0.1, 0.3], abs=1e-5)
    # PCGrad sums the projected rows (eq. 33): m * UPGrad when m = 2 (paper, Section 4)
    assert agg("pcgrad", rows) == pytest.approx([0.2, 1.4], abs=1e-12)
    # the paper's 3x2 example: PCGrad is one of four vectors, depending on the random orders (Appendix C.4)
    outcomes = {tuple(np.round(agg("pcgrad", [[1, 0], [0, 1], [-0.5, -1]], seed), 9)) for seed in range(40)}
    assert outcomes == {(0.4, 0.2), (0.8, 0.2), (0.4, -0.2), (0.8, -0.2)}


@pytest.mark.parametrize("seed", range(40))
def test_upgrad_never_conflicts_and_is_linear_under_scaling(seed):
    gen = torch.Generator().manual_seed(seed)
    m = int(torch.randint(2, 33, (1,), generator=gen))
    n = int(torch.randint(2, 60, (1,), generator=gen))  # n < m too: rank-deficient Gramians
    jac = torch.randn(m, n, generator=gen, dtype=torch.float64)
    jac[: m // 3] *= 10.0  # imbalanced norms, as with easy and hard examples
    update = aggregate("upgrad", jac, reg_eps=0.0)
    scale = jac.norm(dim=1) * jac.norm()  # round-off scale of <g_i, J^T w> (the update may be ~0: dual cone {0})
    assert (jac @ update >= -1e-10 * scale).all()
    assert (jac @ aggregate("dualproj", jac, reg_eps=0.0) >= -1e-10 * scale).all()
    # each projection onto the cone is non-expansive, so ||UPGrad(J)|| <= mean_i ||g_i||
    assert update.norm() <= jac.norm(dim=1).mean() * (1 + 1e-12)
    # linear under scaling (Definition 2): A(diag(c) J) = sum_i c_i pi_J(g_i)/m, so A(a J) = a A(J)
    assert torch.allclose(aggregate("upgrad", 3.0 * jac, reg_eps=0.0), 3.0 * update, rtol=1e-7, atol=1e-9)


def test_conflict_stats_by_hand():
    jac = torch.tensor([[1.0, 0.0], [-2.0, 1.0]])
    worst, frac, cos_mean, scaled = conflict_stats(jac, torch.tensor([-0.5, 0.5])).tolist()  # the mean update
    assert worst == pytest.approx(1 / np.sqrt(2))  # cos(g1, d) = -0.5 / (1 * sqrt(0.5))
    assert frac == 0.5
    assert cos_mean == pytest.approx(1.0)
    assert scaled == pytest.approx(0.5 / (np.sqrt(5) * np.sqrt(0.5)))  # -<g1, d> / (max ||g_j|| ||d||)
    worst, frac, _, scaled = conflict_stats(jac, torch.tensor([0.1, 0.7])).tolist()  # UPGrad's
    assert worst < 0 and frac == 0.0 and scaled < 0
    summary = summarize([torch.tensor([0.1, 0.5, 0.9, 0.01]), torch.tensor([-0.2, 0.0, 0.7, -0.1])], (0.3, 0.0))
    assert summary == pytest.approx(
        {
            "train/jd_worst_conflict": 0.1,
            "train/jd_worst_conflict_run": 0.3,
            "train/jd_worst_scaled_conflict": 0.01,
            "train/jd_worst_scaled_conflict_run": 0.01,
            "train/jd_conflict_frac": 0.25,
            "train/jd_cos_to_mean": 0.8,
        }
    )


def _model(seed=0):
    torch.manual_seed(seed)
    return paper_cnn("paper_cnn", 10, (1, 28, 28), "mnist", scale=0.25)


def _batch(seed=1, n=6):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 28, 28, generator=gen), torch.randint(0, 10, (n,), generator=gen), torch.arange(n)


def test_mean_aggregator_step_is_the_sgd_step_exactly():
    model_sgd, model_jd = _model(), _model()
    opt_sgd = torch.optim.SGD(model_sgd.parameters(), lr=0.1)
    opt_jd = torch.optim.SGD(model_jd.parameters(), lr=0.1)
    sgd, jd = StandardStep(opt_sgd), JacobianDescentStep(opt_jd, aggregator="mean")
    for seed in (1, 2):
        out_sgd = sgd.training_step(LocalBackend(model_sgd), _batch(seed), epoch=0)
        out_jd = jd.training_step(LocalBackend(model_jd), _batch(seed), epoch=0)
        assert torch.equal(out_sgd.loss, out_jd.loss)
    for p, q in zip(model_sgd.parameters(), model_jd.parameters()):
        assert torch.equal(p, q)
    assert len(jd.pop_epoch_stats()) == 2 and jd.epoch_stats == []


def test_upgrad_step_applies_the_aggregated_loop_jacobian():
    """The vmap Jacobian equals one backward per example; the update is -lr * UPGrad(J)."""
    model = _model()
    before = copy.deepcopy(model)
    inputs, targets, idx = _batch()
    rows = []
    for x, y in zip(inputs, targets):
        before.zero_grad()
        F.cross_entropy(before(x[None]), y[None]).backward()
        rows.append(torch.cat([p.grad.reshape(-1) for p in before.parameters()]))
    expected = torch.cat([p.detach().reshape(-1) for p in before.parameters()]) - 0.05 * aggregate(
        "upgrad", torch.stack(rows), reg_eps=0.0
    )
    step = JacobianDescentStep(torch.optim.SGD(model.parameters(), lr=0.05), aggregator="upgrad", reg_eps=0.0)
    out = step.training_step(LocalBackend(model), (inputs, targets, idx), epoch=0)
    after = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    assert torch.allclose(after, expected, rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        assert out.loss == pytest.approx(float(F.cross_entropy(before(inputs), targets)), rel=1e-5)
    (stats,) = step.pop_epoch_stats()
    assert stats[3] <= 1e-6  # no example's gradient conflicts with the update


def test_bad_aggregator_and_batchnorm_model_are_clear_errors():
    with pytest.raises(
        ValueError, match=r"optimizer.aggregator='sum' is not one of the choices; allowed: " + ", ".join(AGGREGATORS)
    ):
        check_aggregator("sum")
    cfg = OmegaConf.create(
        {"aggregator": "upgrad", "base": {"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.1}}
    )
    bn_model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
    with pytest.raises(ValueError, match="needs a model without BatchNorm"):
        build_jd_step(cfg, bn_model, num_train_samples=10, num_classes=10, accumulate=1, grad_clip=None)
    with pytest.raises(ValueError, match="is not one of the choices"):
        build_jd_step(
            OmegaConf.merge(cfg, {"aggregator": "nope"}),
            _model(),
            num_train_samples=10,
            num_classes=10,
            accumulate=1,
            grad_clip=None,
        )
    with pytest.raises(InvalidConfigError, match=r"^model\.variant: unknown value 'resnet'; valid choices: "):
        paper_cnn("paper_cnn", 10, (1, 28, 28), "resnet")  # a model built outside a run gets the config check's line


def test_smoke_preset_records_no_conflict(make_cfg):
    record = run(make_cfg(["+repro=jd_smoke", "logger=csv", "optimizer.reg_eps=0.0"]))
    assert record["status"] == "finished"
    final = record["metrics"]["final"]
    assert final["train/jd_worst_scaled_conflict_run"] <= 1e-6
    assert 0 < final["train/jd_cos_to_mean"] <= 1.0 + 1e-9
    losses = [row["train/loss"] for row in record["history"]]
    assert final["train/loss_auc"] == pytest.approx(sum(losses) / len(losses))


def test_regularization_keeps_weights_bounded_on_a_singular_gramian():
    """Duplicate rows make G singular: without regularization the dual has unbounded minimizers; with TorchJD's
    reg_eps the weights stay O(1) and the update is the same projection (module docstring of aggregators.py)."""
    gen = torch.Generator().manual_seed(3)
    base = torch.randn(6, 40, generator=gen, dtype=torch.float64)
    jac = torch.cat([base, base[:3], -base[3:4] * 0.5])  # duplicates and an opposite row
    from reproductions.jacobian_descent.aggregators import aggregator_weights

    g = jac @ jac.T
    w = aggregator_weights("upgrad", g)
    assert float(w.abs().max()) < 100.0
    exact = aggregate("upgrad", jac, reg_eps=0.0)
    assert (aggregate("upgrad", jac) - exact).norm() <= 0.05 * jac.norm(dim=1).mean()
    with pytest.raises(ValueError, match="optimizer.reg_eps=-1.0: must be >= 0"):
        JacobianDescentStep(torch.optim.SGD(_model().parameters(), lr=0.1), aggregator="upgrad", reg_eps=-1.0)


# (overrides on the smoke preset, the key the one-line error names, words of its problem and fix)
BAD_KNOBS = [
    (["optimizer.aggregator=sum"], "optimizer.aggregator", "unknown value 'sum'; valid choices: 'upgrad', 'mean'"),
    (["optimizer.reg_eps=-1"], "optimizer.reg_eps", "must be >= 0, got -1"),
    (
        ["train.accumulate=2"],
        "train.accumulate",
        "the Jacobian descent step takes the whole batch at once: set train.accumulate=1",
    ),
    (["model.variant=resnet"], "model.variant", "unknown value 'resnet'; valid choices: cifar10, mnist, svhn"),
    (["model.scale=0"], "model.scale", "must be > 0, got 0; set model.scale above 0"),
    (["+model.width=3"], "model.width", "not a config key (misspelled, or added with + where nothing reads it)"),
    (["hardware=ddp_cpu"], "hardware", "world size 2: the Jacobian descent step runs on one process"),
]


@pytest.mark.parametrize("overrides, key, words", BAD_KNOBS)
def test_bad_knobs_stop_the_config_check_in_one_line(overrides, key, words):
    error = config_check_error(["+repro=jd_smoke", *overrides])
    assert isinstance(error, InvalidConfigError) and error.key == key
    assert words in str(error) and "\n" not in str(error)


def test_a_bad_aggregator_exits_2_before_the_run_has_a_folder(tmp_path):
    stderr = rejected_run(["+repro=jd_smoke", "optimizer.aggregator=sum", "logger=csv"], tmp_path, timeout=180)
    assert stderr.strip().splitlines()[-1].startswith("optrepro: error: optimizer.aggregator: unknown value 'sum'")
