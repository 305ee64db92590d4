"""Pan & Li 2023 (reproductions/directional_sharpness): directional sharpness against closed forms, coordinate-wise
clipping and the clipped step against hand computations, the pseudo-update directions against torch's Adam, the
callback's Adam direction against the run's own Adam update, the generated data, and bad knobs stopping before
any work."""

from __future__ import annotations

import functools
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers.compose import compose_config
from helpers.rejected import rejected_run, stopped_before_any_work
from omegaconf import OmegaConf

from optrepro.errors import InvalidConfigError, OptreproError
from optrepro.paths import REPO_ROOT
from reproductions.directional_sharpness.clipping import clip_threshold, clip_top_coordinates_
from reproductions.directional_sharpness.directions import PseudoDirections
from reproductions.directional_sharpness.markov_lm import load_markov_lm, transition_table
from reproductions.directional_sharpness.sharpness import directional_sharpness, hessian_vector_product
from reproductions.directional_sharpness.step import CoordinateClip
from reproductions.directional_sharpness.transformer import TinyTransformer

G = [5.0, -3.0, 1.0, 0.5, 0.2]


def quadratic_sharpness(a: torch.Tensor, x: torch.Tensor, v: torch.Tensor) -> float:
    param = torch.nn.Parameter(x.clone())
    return directional_sharpness(lambda: 0.5 * param @ a @ param, [param], [v])


def test_sharpness_of_a_quadratic_is_the_rayleigh_quotient():
    generator = torch.Generator().manual_seed(0)
    b = torch.randn(6, 6, generator=generator, dtype=torch.float64)
    a = b + b.T  # symmetric and indefinite
    x, v = (
        torch.randn(6, generator=generator, dtype=torch.float64),
        torch.randn(6, generator=generator, dtype=torch.float64),
    )
    assert quadratic_sharpness(a, x, v) == pytest.approx(float(v @ a @ v / (v @ v)), rel=1e-12)
    assert quadratic_sharpness(a, x, 7.0 * v) == pytest.approx(quadratic_sharpness(a, x, v), rel=1e-12)  # scale-free


def test_sharpness_of_the_reference_quadratic_by_hand():
    # f = x^T H x / 2, H = diag(100, 1): Hv = (1000, 1) for v = (10, 1); DS(-g) = 10001/101, DS(clipped) = 101/2
    h, x = torch.diag(torch.tensor([100.0, 1.0], dtype=torch.float64)), torch.tensor([0.1, 1.0], dtype=torch.float64)
    param = torch.nn.Parameter(x.clone())
    hv = hessian_vector_product(0.5 * param @ h @ param, [param], [torch.tensor([10.0, 1.0], dtype=torch.float64)])
    assert hv[0].tolist() == pytest.approx([1000.0, 1.0])
    gradient = h @ x  # (10, 1)
    assert quadratic_sharpness(h, x, -gradient) == pytest.approx(10001 / 101)
    clipped = [gradient.clone()]
    clip_top_coordinates_(clipped, 0.5)  # tau = 1: (1, 1)
    assert quadratic_sharpness(h, x, -clipped[0]) == pytest.approx(50.5)


def test_sharpness_of_a_network_matches_finite_differences_of_the_gradient():
    torch.manual_seed(0)
    model = TinyTransformer("t", num_classes=8, input_shape=(5,), width=8, heads=2, layers=1).double()
    inputs, targets = torch.randint(0, 8, (4, 5)).double(), torch.randint(0, 8, (4,))
    params = list(model.parameters())
    loss = lambda: torch.nn.functional.cross_entropy(model(inputs), targets)  # noqa: E731
    v = [torch.randn_like(p) for p in params]
    eps = 1e-5

    def gradient_at(sign):
        with torch.no_grad():
            for p, d in zip(params, v):
                p.add_(sign * eps * d)
        grads = torch.autograd.grad(loss(), params)
        with torch.no_grad():
            for p, d in zip(params, v):
                p.sub_(sign * eps * d)
        return grads

    plus, minus = gradient_at(1.0), gradient_at(-1.0)
    finite = sum(((gp - gm) / (2 * eps) * d).sum() for gp, gm, d in zip(plus, minus, v)) / sum((d * d).sum() for d in v)
    assert directional_sharpness(loss, params, v) == pytest.approx(float(finite), rel=1e-5)


@pytest.mark.parametrize(
    "fraction,expected",
    [
        (0.2, [3.0, -3.0, 1.0, 0.5, 0.2]),
        (0.4, [1.0, -1.0, 1.0, 0.5, 0.2]),
        (0.0, G),
        (0.99, [0.2, -0.2, 0.2, 0.2, 0.2]),
    ],
)
def test_clipping_by_hand(fraction, expected):
    g = torch.tensor(G)
    clip_top_coordinates_([g], fraction)
    assert g.tolist() == pytest.approx(expected)


def test_clipping_pools_every_tensor():
    # one global threshold over both tensors (tau = 3 at k = 0.2 of 5 values), not one per tensor
    a, b = torch.tensor([5.0, -3.0]), torch.tensor([[1.0, 0.5, 0.2]])
    assert float(clip_threshold([a, b], 0.2)) == 3.0
    clip_top_coordinates_([a, b], 0.2)
    assert a.tolist() == [3.0, -3.0] and b.flatten().tolist() == pytest.approx([1.0, 0.5, 0.2])


def test_clipped_sgd_step_by_hand():
    param = torch.nn.Parameter(torch.zeros(5))
    optimizer = CoordinateClip([param], functools.partial(torch.optim.SGD, lr=0.1), fraction=0.4)
    param.grad = torch.tensor(G)
    optimizer.step()
    assert param.detach().tolist() == pytest.approx([-0.1, 0.1, -0.1, -0.05, -0.02])
    assert param.grad.tolist() == pytest.approx(G)  # the unclipped gradient is back for observers
    with pytest.raises(
        ValueError, match=r"^fraction must be in \[0, 1\) \(1 would clip every coordinate to 0\), got 1.0$"
    ):
        CoordinateClip([param], functools.partial(torch.optim.SGD, lr=0.1), fraction=1.0)


def test_pseudo_directions_by_hand_and_against_torch_adam():
    g1, g2 = torch.tensor([4.0, -1.0, 0.5, 0.1]), torch.tensor([2.0, 1.0, -0.5, 0.3])
    pseudo = PseudoDirections([torch.zeros(4)], sgd_clip=0.25, adam_clip=0.5)
    param = torch.nn.Parameter(torch.zeros(4))
    adam = torch.optim.Adam([param], lr=1.0)
    for g in (g1, g2):
        pseudo.update([g])
        param.grad = g.clone()
        before = param.detach().clone()
        adam.step()
    directions = pseudo.directions()
    assert directions["sgd"][0].tolist() == pytest.approx((0.9 * g1 + 0.1 * g2).tolist())  # m = g at the first step
    c1, c2 = torch.tensor([1.0, -1.0, 0.5, 0.1]), torch.tensor([1.0, 1.0, -0.5, 0.3])  # tau = 1 (k = 0.25)
    assert directions["sgd_clip"][0].tolist() == pytest.approx((0.9 * c1 + 0.1 * c2).tolist())
    assert directions["adam"][0].tolist() == pytest.approx((before - param.detach()).tolist(), rel=1e-6)
    a1, a2 = torch.tensor([0.5, -0.5, 0.5, 0.1]), torch.tensor([0.5, 0.5, -0.5, 0.3])  # tau = 0.5 twice (k = 0.5)
    m = (0.9 * 0.1 * a1 + 0.1 * a2) / (1 - 0.9**2)
    v = (0.999 * 0.001 * g1**2 + 0.001 * g2**2) / (1 - 0.999**2)  # second moment: unclipped
    assert directions["adam_clip"][0].tolist() == pytest.approx((m / (v.sqrt() + 1e-8)).tolist(), rel=1e-6)


def test_pseudo_directions_resume_from_their_state():
    grads = [torch.tensor([4.0, -1.0, 0.5, 0.1]), torch.tensor([2.0, 1.0, -0.5, 0.3]), torch.tensor([-1.0, 2, 0, 1])]
    whole, first = PseudoDirections([torch.zeros(4)]), PseudoDirections([torch.zeros(4)])
    for g in grads[:2]:
        whole.update([g])
        first.update([g])
    resumed = PseudoDirections([torch.zeros(4)])
    resumed.load_state_dict(first.state_dict())
    whole.update([grads[2]])
    resumed.update([grads[2]])
    for name, direction in whole.directions().items():
        assert torch.equal(direction[0], resumed.directions()[name][0]), name


def test_markov_data_is_fixed_by_its_seed_and_follows_zipf_rows():
    cfg = OmegaConf.create(
        {
            "name": "markov_lm",
            "vocab": 8,
            "context": 6,
            "order": 1,
            "zipf": 1.0,
            "n_train": 50,
            "n_test": 10,
            "data_seed": 3,
        }
    )
    a, b = load_markov_lm(cfg, None), load_markov_lm(cfg, None)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert a.x_train.shape == (50, 6) and a.num_classes == 8 and int(a.x_train.max()) < 8
    table = transition_table(8, 2, 1.5, np.random.default_rng(0))
    weights = np.arange(1, 9) ** -1.5
    assert table.shape == (64, 8)
    assert np.allclose(np.sort(table, axis=1)[:, ::-1], weights / weights.sum())


def test_callback_adam_direction_is_the_runs_own_adam_update(tmp_path):
    runs = tmp_path / "runs"
    done = subprocess.run(
        [
            sys.executable,
            "run.py",
            "+repro=ds_lm_smoke",
            "logger=csv",
            f"paths.runs_dir={runs}",
            f"hydra.run.dir={tmp_path}/h",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads(next(runs.rglob("record.json")).read_text())
    row = record["history"][-1]
    assert row["ds/measurements"] == 2.0
    assert row["ds/update"] == pytest.approx(row["ds/adam"], rel=1e-3)  # the run trains with Adam
    assert row["ds/adam_over_sgd"] == pytest.approx(row["ds/adam"] / row["ds/sgd"], rel=1e-9)


C = "callbacks.directional_sharpness"
# (preset, override, the exact line): ClipKnobs (the optimizer node, open), DSKnobs (the callback's node, closed) in
# the config check; MarkovLMKnobs (the dataset node, open: the shared keys pass) when the data loads, before the run
# has a folder. orthogonal_grad with the step, and order against context and vocab, relate keys and stay code.
BAD_KNOBS = [
    (
        "ds_lm_sgdclip_cpu",
        "optimizer.clip_fraction=1.0",
        "optimizer.clip_fraction: must be < 1, got 1.0; set optimizer.clip_fraction below 1",
    ),
    (
        "ds_lm_sgdclip_cpu",
        "optimizer.clip_fraction=-0.1",
        "optimizer.clip_fraction: must be >= 0, got -0.1; set optimizer.clip_fraction to at least 0",
    ),
    (
        "ds_lm_sgdclip_cpu",
        "optimizer.clip_fraction=x",
        "optimizer.clip_fraction: 'x' is not a number; give a number, e.g. optimizer.clip_fraction=0.1",
    ),
    (
        "ds_lm_sgdclip_cpu",
        "optimizer.orthogonal_grad=true",
        "optimizer.orthogonal_grad: not available with coordinate-wise clipping; set optimizer.orthogonal_grad=false",
    ),
    (
        "ds_lm_smoke",
        f"{C}.every_n_steps=0",
        f"{C}.every_n_steps: must be >= 1, got 0; set {C}.every_n_steps to at least 1",
    ),
    ("ds_lm_smoke", f"{C}.sgd_clip=1.5", f"{C}.sgd_clip: must be < 1, got 1.5; set {C}.sgd_clip below 1"),
    ("ds_lm_smoke", f"{C}.start_step=-1", f"{C}.start_step: must be >= 0, got -1; set {C}.start_step to at least 0"),
    (
        "ds_lm_smoke",
        f"{C}.batch_size=2.5",
        f"{C}.batch_size: 2.5 is not a whole number; give an integer, e.g. {C}.batch_size=1",
    ),
    (
        "ds_lm_smoke",
        f"+{C}.every=5",
        f"{C}.every: not a config key (misspelled, or added with + where nothing reads it); check the spelling; "
        "the keys here are _target_, adam_clip, batch_size, every_n_steps, sgd_clip, start_step",
    ),
    (
        "ds_lm_smoke",
        "model.heads=3",
        "model.heads: 3 heads do not split width 64; choose heads dividing model.width, e.g. 4 for 64",
    ),
    ("ds_lm_smoke", "model.layers=0", "model.layers: must be >= 1, got 0; set model.layers to at least 1"),
    ("ds_lm_smoke", "model.width=1.5", "model.width: 1.5 is not a whole number; give an integer, e.g. model.width=1"),
    (
        "ds_lm_smoke",
        "+model.depth=3",
        "model.depth: not a config key (misspelled, or added with + where nothing reads it); check the spelling; "
        "the keys here are _target_, heads, layers, mlp_ratio, name, width",
    ),
    ("ds_lm_smoke", "dataset.vocab=0", "dataset.vocab: must be >= 1, got 0; set dataset.vocab to at least 1"),
    ("ds_lm_smoke", "dataset.zipf=-1", "dataset.zipf: must be >= 0, got -1; set dataset.zipf to at least 0"),
    (
        "ds_lm_smoke",
        "dataset.data_seed=x",
        "dataset.data_seed: 'x' is not a whole number; give an integer, e.g. dataset.data_seed=1",
    ),
    ("ds_lm_smoke", "dataset.order=20", "dataset.order: 20 exceeds the context 16; use an order <= dataset.context"),
    (
        "ds_lm_smoke",
        "dataset.vocab=64 dataset.order=4",
        "dataset.order: vocab^order = 16777216 contexts; keep vocab^order <= 2^20 (a smaller vocab or order)",
    ),
]


@pytest.mark.parametrize("preset, overrides, line", BAD_KNOBS, ids=[row[1] for row in BAD_KNOBS])
def test_bad_knobs_stop_in_one_line_before_the_run_folder(preset, overrides, line, tmp_path):
    given = [f"+repro={preset}", *overrides.split(" "), "logger=csv"]
    assert stopped_before_any_work(given, tmp_path) == f"optrepro: error: {line}"


def test_a_bad_knob_exits_2_with_one_line_before_the_run_has_a_folder(tmp_path):
    stderr = rejected_run(["+repro=ds_lm_smoke", f"{C}.sgd_clip=1.5"], tmp_path, timeout=120)
    assert stderr == f"optrepro: error: {C}.sgd_clip: must be < 1, got 1.5; set {C}.sgd_clip below 1\n"


def test_a_model_built_outside_a_run_gets_the_same_checks():
    with pytest.raises(InvalidConfigError, match=r"^model\.heads: 3 heads do not split width 8; "):
        TinyTransformer("t", num_classes=8, input_shape=(5,), width=8, heads=3)
    with pytest.raises(InvalidConfigError, match=r"^model: input shape \(1, 28, 28\) is not a token sequence; "):
        TinyTransformer("t", num_classes=8, input_shape=(1, 28, 28))


def test_the_callback_added_by_its_target_alone_takes_the_schema_defaults():
    from reproductions.directional_sharpness.callback import DirectionalSharpnessCallback

    callback = DirectionalSharpnessCallback()  # `+callbacks.directional_sharpness._target_=...` on any preset
    assert (callback.every, callback.batch_size, callback.start) == (20, 32, 0)
    assert callback.clips == {"sgd_clip": 0.1, "adam_clip": 0.5}
    assert DirectionalSharpnessCallback(every_n_steps=32, sgd_clip=0.2).every == 32


def test_the_config_check_alone_stops_a_bad_data_knob_before_any_data_is_made():
    """load_markov_lm.validate runs in the config check (config_schema.dataset_source), not first in the loader."""
    from optrepro.config_schema import validate_config

    with pytest.raises(OptreproError) as stopped:
        validate_config(compose_config(["+repro=ds_lm_smoke", "dataset.order=20"]))
    assert str(stopped.value) == "dataset.order: 20 exceeds the context 16; use an order <= dataset.context"
