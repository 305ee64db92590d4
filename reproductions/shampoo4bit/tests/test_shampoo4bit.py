"""4-bit Shampoo (reproductions/shampoo4bit): the 4-bit maps against the paper's listed values, a round trip by hand
and its error bound, Björck rectification, A^{-1/4} of known matrices, the errors by hand, the stored bytes, the
callback's measurement, knob errors and a smoke run."""

from __future__ import annotations

import math

import pytest
import torch
from helpers.rejected import rejected_run, stopped_before_any_work

from optrepro.errors import InvalidConfigError
from optrepro.optim.shampoo import Shampoo
from optrepro.train import run
from reproductions.shampoo4bit.callback import (
    QuantizationErrorCallback,
    shampoo_statistics,
)
from reproductions.shampoo4bit.inverse_root import (
    TARGETS,
    angle_error_degrees,
    bjorck,
    exact_root,
    quantized_root,
    relative_error,
)
from reproductions.shampoo4bit.optimizer import LowBitShampoo
from reproductions.shampoo4bit.quantize import (
    codebook,
    quantize,
    round_trip,
    stored_bytes,
)

LINEAR2_4BIT = [
    -1,
    -0.7511,
    -0.5378,
    -0.3600,
    -0.2178,
    -0.1111,
    -0.0400,
    0,
    0.0044,
    0.0400,
    0.1111,
    0.2178,
    0.3600,
    0.5378,
    0.7511,
    1,
]  # paper, App. C
DT_4BIT = [
    -0.8875,
    -0.6625,
    -0.4375,
    -0.2125,
    -0.0775,
    -0.0325,
    -0.0055,
    0,
    0.0055,
    0.0325,
    0.0775,
    0.2125,
    0.4375,
    0.6625,
    0.8875,
    1,
]  # paper, App. C


def orthogonal(n: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=generator, dtype=torch.float64))
    return q


def test_maps_are_the_papers_values():
    assert codebook("linear2", 4).tolist() == pytest.approx(LINEAR2_4BIT, abs=5e-5)
    assert codebook("dynamic_tree", 4).tolist() == pytest.approx(DT_4BIT, abs=0)


def test_round_trip_by_hand():
    # one block of 4, max-abs 2: normalized (1, 0.25, -0.025, 0) -> nearest (1, 0.2178, -0.04, 0), times 2
    matrix = torch.tensor([[2.0, 0.5, -0.05, 0.0]], dtype=torch.float64)
    codes, scales = quantize(matrix, block=4)
    assert codes.tolist() == [[[15, 11, 6, 7]]] and scales.item() == 2.0
    expected = 2 * torch.tensor([1.0, 0.2178, -0.04, 0.0], dtype=torch.float64)
    assert torch.allclose(round_trip(matrix, block=4), expected, atol=2e-4)


def test_round_trip_error_is_within_half_the_largest_gap_of_each_block():
    generator = torch.Generator().manual_seed(0)
    matrix = torch.randn(7, 150, generator=generator, dtype=torch.float64) * torch.logspace(-3, 2, 7).unsqueeze(1)
    values = codebook("linear2", 4)
    half_gap = float((values[1:] - values[:-1]).max()) / 2  # (1 - 0.7511) / 2
    approx = round_trip(matrix, block=64)
    for start in range(0, 150, 64):  # rows cut into blocks 0-63, 64-127, 128-149 (padded)
        block, err = matrix[:, start : start + 64], (approx - matrix)[:, start : start + 64]
        bound = half_gap * block.abs().amax(dim=1, keepdim=True) * (1 + 1e-6)
        assert (err.abs() <= bound).all()
    assert 0.05 < float((approx - matrix).abs().max() / matrix.abs().max()) <= half_gap  # the error is not zero


def test_bjorck_step_by_hand_and_rectification_orthogonalizes():
    q = orthogonal(8, 1)
    assert torch.allclose(bjorck(0.9 * q, 1), (1.5 * 0.9 - 0.5 * 0.9**3) * q)
    stored = round_trip(orthogonal(128, 2).T).T  # 4-bit eigenvectors: far from orthogonal
    eye = torch.eye(128, dtype=torch.float64)
    before = torch.linalg.matrix_norm(stored.T @ stored - eye)
    once = torch.linalg.matrix_norm(bjorck(stored, 1).T @ bjorck(stored, 1) - eye)
    many = bjorck(stored, 8)
    assert before > 0.5 and once < before / 3
    assert torch.allclose(many.T @ many, eye, atol=1e-10)


def test_inverse_fourth_root_of_a_known_matrix():
    c, s = math.cos(0.3), math.sin(0.3)
    q = torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
    a = q @ torch.diag(torch.tensor([16.0, 1.0], dtype=torch.float64)) @ q.T
    # (lambda + 16 * 1e-12)^{-1/4}: 16 -> 0.5, 1 -> 1 up to 4e-12
    assert torch.allclose(exact_root(a, 1e-12), q @ torch.diag(torch.tensor([0.5, 1.0], dtype=torch.float64)) @ q.T)
    # epsilon shifts by max(lambda) * epsilon: (16 + 16 * 0.25)^{-1/4} and (1 + 4)^{-1/4}
    expected = torch.tensor([20.0**-0.25, 5.0**-0.25], dtype=torch.float64)
    assert torch.allclose(exact_root(torch.diag(torch.tensor([16.0, 1.0])), 0.25), torch.diag(expected))


@pytest.mark.parametrize("target", TARGETS)
def test_a_diagonal_matrix_is_stored_exactly_by_every_target(target):
    a = torch.diag(torch.tensor([81.0, 16.0, 1.0], dtype=torch.float64))  # eigenvectors: 0/1 entries, exact in 4 bits
    expected = torch.diag(torch.tensor([1 / 3, 1 / 2, 1.0], dtype=torch.float64))
    assert torch.allclose(quantized_root(a, target, 1e-14, block=64), expected, atol=1e-12)


def test_errors_by_hand():
    eye = torch.eye(2, dtype=torch.float64)
    assert relative_error(eye, 2 * eye) == pytest.approx(1.0)
    assert angle_error_degrees(eye, 2 * eye) == pytest.approx(0.0, abs=1e-5)  # acos near 1: ~1e-6 degrees of rounding
    assert angle_error_degrees(eye, torch.diag(torch.tensor([1.0, -1.0], dtype=torch.float64))) == pytest.approx(90.0)


def test_stored_bytes_by_hand():
    assert stored_bytes(64, 64) == 64 * 64 / 2 + 64 * 4  # 2048 code bytes + one fp32 scale per row
    assert stored_bytes(64, 64) / (4 * 64 * 64) == pytest.approx(0.140625)  # ~1/7 [paper, App. G]
    assert stored_bytes(2, 65) == 2 * 65 / 2 + 2 * 2 * 4  # 65 columns: two blocks per row


def test_callback_measures_an_ill_conditioned_matrix_and_reports_its_target():
    q = orthogonal(128, 3)
    lam = torch.cat([torch.ones(64), torch.full((64,), 1e4)]).double()
    callback = QuantizationErrorCallback(target="preconditioner")
    out = callback.measure([(q * lam) @ q.T])
    assert out["q4/matrices"] == 1 and out["q4/nre"] == out["q4/nre_preconditioner"]
    assert out["q4/nre_ratio"] == pytest.approx(out["q4/nre_eigenvectors_rectified"] / out["q4/nre_preconditioner"])
    assert out["q4/log10_cond"] == pytest.approx(4.0, abs=1e-6)
    assert out["q4/nre_eigenvectors_rectified"] < out["q4/nre_eigenvectors"] < out["q4/nre_preconditioner"]


def test_statistics_are_read_from_shampoo_only():
    model = torch.nn.Linear(64, 100)
    optimizer = Shampoo(model.parameters())
    model(torch.ones(3, 64)).sum().backward()
    optimizer.step()
    assert [tuple(s.shape) for s in shampoo_statistics(optimizer, 64)] == [(100, 100), (64, 64)]  # no bias
    assert [tuple(s.shape) for s in shampoo_statistics(optimizer, 65)] == [(100, 100)]
    with pytest.raises(InvalidConfigError, match=r"^callbacks\.shampoo4bit_error: needs optimizer=shampoo"):
        shampoo_statistics(torch.optim.SGD(model.parameters(), lr=0.1), 64)


@pytest.mark.parametrize(
    ("knobs", "message"),
    [
        (
            {"target": "weights"},
            "callbacks.shampoo4bit_error.target: unknown value 'weights'; "
            "valid choices: eigenvectors, eigenvectors_rectified, preconditioner",
        ),
        (
            {"bits": 1},
            "callbacks.shampoo4bit_error.bits: must be >= 2, got 1; set callbacks.shampoo4bit_error.bits to at least 2",
        ),
        (
            {"mapping": "dynamic_tree", "bits": 3},
            "callbacks.shampoo4bit_error.bits: 3 with the dynamic-tree map, given for 4 bits only; "
            "set bits=4 or mapping=linear2",
        ),
        (
            {"epsilon": 0},
            "callbacks.shampoo4bit_error.epsilon: must be > 0, got 0; set callbacks.shampoo4bit_error.epsilon above 0",
        ),
        (
            {"block": 0},
            "callbacks.shampoo4bit_error.block: must be >= 1, got 0; "
            "set callbacks.shampoo4bit_error.block to at least 1",
        ),
    ],
)
def test_bad_callback_knobs_are_one_line_errors(knobs, message):
    with pytest.raises(InvalidConfigError) as raised:
        QuantizationErrorCallback(**knobs)
    assert str(raised.value) == message


def test_bad_knob_on_the_command_line_exits_2_with_one_line(tmp_path):
    N = "callbacks.shampoo4bit_error"  # noqa: N806
    stderr = rejected_run(["+repro=q4_digits_smoke", "logger=csv", f"{N}.bits=1"], tmp_path)
    assert (
        stderr.strip().splitlines()[-1] == f"optrepro: error: {N}.bits: must be >= 2, got 1; set {N}.bits to at least 2"
    )


def test_smoke_preset_records_the_errors(make_cfg):
    record = run(make_cfg(["+repro=q4_digits_smoke", "logger=csv"]))
    assert record["status"] == "finished", record["error"]
    final = record["metrics"]["final"]
    assert final["q4/matrices"] == 5  # 256, 64 (layer 1); 256, 256 (layer 2); 256 (output layer)
    assert final["q4/nre"] == final["q4/nre_eigenvectors_rectified"]
    assert final["q4/state_bytes_ratio"] == pytest.approx(0.140625)


def step_once(storage: str, grad: torch.Tensor, **knobs) -> torch.Tensor:
    weight = torch.nn.Parameter(torch.zeros_like(grad))
    optimizer = LowBitShampoo([weight], lr=0.5, beta=0.0, epsilon=1e-12, update_freq=1, storage=storage, **knobs)
    weight.grad = grad.clone()
    optimizer.step()
    return weight.detach()


@pytest.mark.parametrize("storage", ["fp32", "eigenvectors", "preconditioner"])
def test_optimizer_step_by_hand(storage):
    # G = diag(3, 1), beta 0: L = R = diag(9, 1), L^-1/4 G R^-1/4 = I, grafted to ||G||_F = sqrt(10): sqrt(5) I.
    # A diagonal state is exact in 4 bits (eigenvectors 0/1, off-diagonal 0), so every storage takes this step.
    grad = torch.diag(torch.tensor([3.0, 1.0], dtype=torch.float64))
    expected = -0.5 * math.sqrt(5.0) * torch.eye(2, dtype=torch.float64)
    assert torch.allclose(step_once(storage, grad, min_order=1), expected, atol=1e-9)


def test_optimizer_roots_change_only_every_update_freq_steps():
    generator = torch.Generator().manual_seed(4)
    weight = torch.nn.Parameter(torch.zeros(70, 70, dtype=torch.float64))
    optimizer = LowBitShampoo([weight], update_freq=2)
    roots = []
    for _ in range(3):
        weight.grad = torch.randn(70, 70, generator=generator, dtype=torch.float64)
        optimizer.step()
        roots.append(optimizer.state[weight]["sides"][0].root.clone())
    assert torch.equal(roots[0], roots[1]) and not torch.equal(roots[1], roots[2])


def test_optimizer_state_bytes_by_hand():
    model = torch.nn.Linear(64, 100)  # sides of order 100 and 64, both >= min_order 64; the bias is not preconditioned
    optimizer = LowBitShampoo(model.parameters(), storage="eigenvectors")
    model(torch.ones(2, 64)).sum().backward()
    optimizer.step()
    # per side: fp32 root 4 n^2, fp32 eigenvalues 4 n, 4-bit codes n^2 / 2 and one fp32 scale per block of 64
    expected = sum(4 * n * n + 4 * n + n * n / 2 + n * (-(-n // 64)) * 4 for n in (100, 64))
    assert optimizer.state_bytes() == expected


def test_bad_optimizer_knob_is_a_one_line_error():
    """Built outside a run, the optimizer gives the config check's lines (the table below)."""
    with pytest.raises(InvalidConfigError, match=r"^optimizer\.base\.storage: unknown value 'int8'; valid choices: "):
        LowBitShampoo([torch.nn.Parameter(torch.zeros(2, 2))], storage="int8")
    with pytest.raises(InvalidConfigError, match=r"^optimizer\.base\.beta: must be < 1, got 1\.0; "):
        LowBitShampoo([torch.nn.Parameter(torch.zeros(2, 2))], beta=1.0)


BAD_BASE_KNOBS = [
    ("bits=9", "must be <= 8, got 9; set optimizer.base.bits to at most 8"),
    ("storage=int8", "unknown value 'int8'; valid choices: eigenvectors, fp32, preconditioner"),
    ("update_freq=0", "must be >= 1, got 0; set optimizer.base.update_freq to at least 1"),
    ("rectify_steps=1.5", "1.5 is not a whole number; give an integer, e.g. optimizer.base.rectify_steps=1"),
]


@pytest.mark.parametrize("override, words", BAD_BASE_KNOBS)
def test_bad_base_optimizer_knobs_stop_before_any_work(override, words, tmp_path):
    given = ["+repro=q4_digits_train_eigenvectors", f"optimizer.base.{override}", "logger=csv"]
    key = override.split("=")[0]
    assert stopped_before_any_work(given, tmp_path) == f"optrepro: error: optimizer.base.{key}: {words}"


def test_training_preset_records_the_state_bytes(make_cfg):
    record = run(make_cfg(["+repro=q4_digits_train_eigenvectors", "train.epochs=1", "logger=csv"]))
    assert record["status"] == "finished", record["error"]
    sides = [256, 64, 256, 256, 256]  # quantized; the output layer's order-10 side stays fp32
    expected = sum(4 * n * n + 4 * n + n * n / 2 + n * (n // 64) * 4 for n in sides) + 2 * 4 * 10 * 10
    assert record["metrics"]["final"]["q4/preconditioner_state_bytes"] == expected
