"""Static M-FAC (reproductions/mfac: static.py, pruning.py, prune_callback.py): the blocked inverse's diagonal and
products against numpy's dense inverse, the OBS saliency and correction against the closed form of a 3-weight
quadratic, global magnitude pruning on a hand example, the recomputation schedule, the callback's pruned copies
and bad knobs stopping before any work."""

from __future__ import annotations

import copy
import itertools

import numpy as np
import pytest
import torch
from helpers.rejected import rejected_run, stopped_before_any_work

from reproductions.mfac.prune_callback import OneShotPruningCallback, prunable
from reproductions.mfac.pruning import (
    keep_count,
    magnitude_mask,
    mfac_prune,
    obs_prune,
    obs_saliency,
    recompute_schedule,
)
from reproductions.mfac.static import BlockFisherInverse

F64 = torch.float64


def random_grads(rows: int, dim: int, seed: int) -> torch.Tensor:
    return torch.randn(rows, dim, generator=torch.Generator().manual_seed(seed), dtype=F64)


def dense_inverse(grads: np.ndarray, damp: float, blocks: list[slice]) -> np.ndarray:
    """numpy: the block-diagonal matrix of inv(lambda I + G_b^T G_b / m), one block per slice."""
    m, d = grads.shape
    inverse = np.zeros((d, d))
    for b in blocks:
        g = grads[:, b]
        inverse[b, b] = np.linalg.inv(damp * np.eye(g.shape[1]) + g.T @ g / m)
    return inverse


@pytest.mark.parametrize("damp", [1e-5, 1e-2, 1.0])
@pytest.mark.parametrize("blocksize", [None, 4])
def test_blocked_inverse_diagonal_and_products_equal_numpy(damp, blocksize):
    """d = 10, m = 3: blocks 0-3, 4-7 and the padded 8-9, or one block; diag and F^{-1} v against numpy.linalg.inv."""
    grads, vector = random_grads(3, 10, 0), random_grads(1, 10, 1)[0]
    blocks = [slice(0, 10)] if blocksize is None else [slice(0, 4), slice(4, 8), slice(8, 10)]
    reference = dense_inverse(grads.numpy(), damp, blocks)
    inverse = BlockFisherInverse(grads, damp, blocksize)
    np.testing.assert_allclose(inverse.diag().numpy(), np.diag(reference), rtol=1e-9)
    np.testing.assert_allclose(inverse.mul(vector).numpy(), reference @ vector.numpy(), rtol=1e-8)
    weights = random_grads(1, 10, 2)[0]
    np.testing.assert_allclose(
        obs_saliency(weights, inverse.diag()).numpy(), weights.numpy() ** 2 / (2 * np.diag(reference)), rtol=1e-9
    )


def test_blocks_ignore_cross_block_correlation():
    """With identical gradients in two blocks, the blocked inverse differs from the full one (it is not a no-op)."""
    grads = random_grads(2, 4, 3)
    grads[:, 2:] = grads[:, :2]
    full, blocked = BlockFisherInverse(grads, 1e-2), BlockFisherInverse(grads, 1e-2, 2)
    assert not torch.allclose(full.diag(), blocked.diag(), rtol=1e-3)


def quadratic():
    """A 3-weight quadratic model: F = lambda I + G^T G / 2 with G = [[1, 2, 0], [0, 1, 1]], lambda = 0.5."""
    grads = torch.tensor([[1.0, 2.0, 0.0], [0.0, 1.0, 1.0]], dtype=F64)
    fisher = 0.5 * np.eye(3) + grads.numpy().T @ grads.numpy() / 2
    return grads, fisher


def test_obs_removal_of_one_weight_equals_the_closed_form():
    """Remove q: min 1/2 dw^T F dw s.t. w_q + dw_q = 0, solved as a KKT system; its value is the saliency."""
    grads, fisher = quadratic()
    weights = torch.tensor([0.3, -1.0, 2.0], dtype=F64)
    inverse = BlockFisherInverse(grads, 0.5)
    saliency = obs_saliency(weights, inverse.diag()).numpy()
    q = int(np.argmin(saliency))
    kkt = np.zeros((4, 4))
    kkt[:3, :3], kkt[:3, 3], kkt[3, :3] = fisher, np.eye(3)[q], np.eye(3)[q]
    step = np.linalg.solve(kkt, np.r_[np.zeros(3), -weights[q].item()])[:3]
    pruned, kept = obs_prune(weights, inverse, 1, update=True)
    assert kept.tolist() == [i != q for i in range(3)]
    assert pruned[q].item() == 0.0
    np.testing.assert_allclose(pruned.numpy(), weights.numpy() + step, rtol=1e-12, atol=1e-15)
    # the correction alone already zeroes w_q (before the explicit zeroing), and costs exactly the saliency
    correction = inverse.mul(torch.eye(3, dtype=F64)[q]) * (-weights[q] / inverse.diag()[q])
    assert abs((weights + correction)[q].item()) < 1e-14
    assert 0.5 * step @ fisher @ step == pytest.approx(saliency[q], rel=1e-12)
    assert saliency[q] == pytest.approx(weights[q].item() ** 2 / (2 * np.linalg.inv(fisher)[q, q]), rel=1e-12)


def test_obs_removal_of_several_weights_sums_the_single_corrections():
    grads, fisher = quadratic()
    weights = torch.tensor([0.3, -1.0, 2.0], dtype=F64)
    inverse = BlockFisherInverse(grads, 0.5)
    f_inv = np.linalg.inv(fisher)
    drop = np.argsort(weights.numpy() ** 2 / (2 * np.diag(f_inv)), kind="stable")[:2]
    expected = weights.numpy() + f_inv[:, drop] @ (-weights.numpy()[drop] / np.diag(f_inv)[drop])
    expected[drop] = 0.0
    pruned, kept = obs_prune(weights, inverse, 2, update=True)
    np.testing.assert_allclose(pruned.numpy(), expected, rtol=1e-12, atol=1e-15)
    assert int(kept.sum()) == 1
    plain, _ = obs_prune(weights, inverse, 2, update=False)
    assert plain.tolist() == [0.0 if i in drop else weights[i].item() for i in range(3)]


def test_magnitude_mask_hand_example():
    weights = torch.tensor([0.5, -0.1, 0.3, -0.7, 0.1])
    assert magnitude_mask(weights, 0.4).tolist() == [True, False, True, True, False]  # keeps ceil(5 * 0.6) = 3
    assert magnitude_mask(weights, 0.2).tolist() == [True, False, True, True, True]  # tie at 0.1: lower index goes
    assert keep_count(10, 0.9) == 1 and keep_count(2368, 0.9) == 237


def test_recomputations_reach_the_target_in_steps_of_equal_density_ratio():
    assert recompute_schedule(0.75, 2) == pytest.approx([0.5, 0.75])
    assert recompute_schedule(0.9, 1) == [0.9]
    grads_seen = []

    def gradients(w, alive):
        grads_seen.append(int(alive.sum()))
        return random_grads(3, 8, len(grads_seen))[:, alive]

    weights = random_grads(1, 8, 9)[0]
    pruned, kept = mfac_prune(weights, 0.75, gradients, damp=1e-2, blocksize=None, recomputations=2)
    assert grads_seen == [8, 4]  # fresh gradients over the alive weights before each step
    assert int(kept.sum()) == 2 and bool((pruned[~kept] == 0).all())


def test_callback_prunes_a_copy_to_the_exact_sparsity():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3)).double()
    inputs = torch.randn(40, 6, dtype=F64, generator=torch.Generator().manual_seed(1))
    targets = torch.arange(40) % 3
    batches = itertools.cycle([(inputs[i : i + 4], targets[i : i + 4]) for i in range(0, 40, 4)])
    dense = [p.detach().clone() for p in net.parameters()]
    for method in ("magnitude", "mfac"):
        pruned = copy.deepcopy(net)
        callback = OneShotPruningCallback(
            method=method,
            sparsities=[0.6],
            ngrads=5,
            damp=1e-3,
            blocksize=8,
            recomputations=3,
            update=True,
            grad_batch_size=None,
        )
        kept = callback.prune(pruned, 0.6, batches if method == "mfac" else iter(()))
        weights = torch.cat([p.detach().reshape(-1) for p in prunable(pruned)])
        assert int(kept.sum()) == keep_count(45, 0.6) == int((weights != 0).sum())
        assert torch.equal(pruned[0].bias, dense[1])  # biases stay dense and untouched
    assert all(torch.equal(p, d) for p, d in zip(net.parameters(), dense))


N = "callbacks.mfac_pruning"
# (override on mfac_prune_smoke, the exact line): PruningKnobs (the callback's node, closed).
BAD_KNOBS = [
    (f"{N}.sparsities=[0.5,1.0]", f"{N}.sparsities[1]: must be < 1, got 1.0; set {N}.sparsities[1] below 1"),
    (f"{N}.sparsities=[0.0]", f"{N}.sparsities[0]: must be > 0, got 0.0; set {N}.sparsities[0] above 0"),
    (f"{N}.sparsities=[]", f"{N}.sparsities: has 0 items, needs 1; give 1 items"),
    (f"{N}.sparsities=0.9", f"{N}.sparsities: 0.9 is not a list; give a list, e.g. {N}.sparsities=[1,2]"),
    (
        f"{N}.sparsities=[0.5,0.501]",
        f"{N}.sparsities: [0.5, 0.501] name one percentage twice; give each percentage once",
    ),
    (f"{N}.ngrads=0", f"{N}.ngrads: must be >= 1, got 0; set {N}.ngrads to at least 1"),
    (f"{N}.damp=0", f"{N}.damp: must be > 0, got 0; set {N}.damp above 0"),
    (f"{N}.recomputations=0", f"{N}.recomputations: must be >= 1, got 0; set {N}.recomputations to at least 1"),
    (f"{N}.blocksize=0", f"{N}.blocksize: must be >= 1, got 0; set {N}.blocksize to at least 1"),
    (
        f"{N}.grad_batch_size=1.5",
        f"{N}.grad_batch_size: 1.5 is not a whole number; give an integer, e.g. {N}.grad_batch_size=1",
    ),
    (f"{N}.method=random", f"{N}.method: unknown value 'random'; valid choices: 'mfac' or 'magnitude'"),
    (f"{N}.update=yes", f"{N}.update: 'yes' is not true or false; set {N}.update=true or {N}.update=false"),
    (
        f"+{N}.ngrad=3",
        f"{N}.ngrad: not a config key (misspelled, or added with + where nothing reads it); check the spelling; "
        "the keys here are _target_, blocksize, damp, grad_batch_size, method, ngrads, recomputations, sparsities, "
        "update",
    ),
]


@pytest.mark.parametrize("override, line", BAD_KNOBS, ids=[row[0] for row in BAD_KNOBS])
def test_bad_pruning_knobs_stop_in_one_line_before_the_run_folder(override, line, tmp_path):
    assert stopped_before_any_work(["+repro=mfac_prune_smoke", override], tmp_path) == f"optrepro: error: {line}"


def test_a_bad_pruning_knob_exits_2_with_one_line_before_the_run_has_a_folder(tmp_path):
    stderr = rejected_run(["+repro=mfac_prune_smoke", f"{N}.ngrads=0"], tmp_path, timeout=120)
    assert stderr == f"optrepro: error: {N}.ngrads: must be >= 1, got 0; set {N}.ngrads to at least 1\n"
