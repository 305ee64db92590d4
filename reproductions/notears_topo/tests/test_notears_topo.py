"""NOTEARS / TOPO building blocks: acyclicity, metrics, data, solvers, and the run.py path."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from optrepro.paths import REPO_ROOT
from reproductions.notears_topo.data import is_dag, make_data, simulate_dag, topological_order
from reproductions.notears_topo.metrics import count_accuracy, score
from reproductions.notears_topo.notears import acyclicity, notears_linear
from reproductions.notears_topo.topo import TopoSearch, search_sizes


def chain(d: int) -> np.ndarray:
    w = np.zeros((d, d))
    for i in range(d - 1):
        w[i, i + 1] = 1.5
    return w


CYCLE = np.array([[0, 1.0, 0], [0, 0, 0.7], [-0.9, 0, 0]])


@pytest.mark.parametrize(
    "weights,is_acyclic",
    [
        (chain(4), True),
        (np.zeros((3, 3)), True),
        (CYCLE, False),
        (np.array([[0, 0.5], [0.5, 0]]), False),
        (np.array([[0.3, 0], [0, 0]]), False),  # a self-loop is a cycle
    ],
)
def test_h_is_zero_exactly_for_dags(weights, is_acyclic):
    h, _ = acyclicity(weights)
    assert (abs(h) < 1e-12) == is_acyclic and (h > 1e-6) == (not is_acyclic)
    assert is_dag(weights) == is_acyclic


@pytest.mark.parametrize("seed", [0, 1])
def test_h_gradient_matches_finite_differences(seed):
    w = np.random.default_rng(seed).normal(size=(4, 4)) * 0.5
    _, grad = acyclicity(w)
    eps, numeric = 1e-6, np.zeros_like(w)
    for idx in np.ndindex(*w.shape):
        up, down = w.copy(), w.copy()
        up[idx] += eps
        down[idx] -= eps
        numeric[idx] = (acyclicity(up)[0] - acyclicity(down)[0]) / (2 * eps)
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-7)


TRUE = np.array([[0, 1, 0], [0, 0, 1], [0, 0, 0]])  # 0 -> 1 -> 2


@pytest.mark.parametrize(
    "estimate,expected",
    [
        (TRUE, {"shd": 0, "tpr": 1.0, "fdr": 0.0, "nnz": 2}),
        (
            np.array([[0, 0, 0], [1, 0, 1], [0, 0, 0]]),
            {"shd": 1, "tpr": 0.5, "fdr": 0.5, "nnz": 2},
        ),  # 0->1 reversed: once
        (np.array([[0, 1, 1], [0, 0, 1], [0, 0, 0]]), {"shd": 1, "tpr": 1.0, "fdr": 1 / 3, "nnz": 3}),  # extra 0->2
        (np.array([[0, 1, 0], [0, 0, 0], [0, 0, 0]]), {"shd": 1, "tpr": 0.5, "fdr": 0.0, "nnz": 1}),  # missing 1->2
        (np.zeros((3, 3)), {"shd": 2, "tpr": 0.0, "fdr": 0.0, "nnz": 0}),
        (
            np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0]]),
            {"shd": 3, "tpr": 0.0, "fdr": 1.0, "nnz": 3},
        ),  # 2 reversed + 1 extra
    ],
)
def test_count_accuracy_follows_the_official_convention(estimate, expected):
    got = count_accuracy(TRUE, estimate)
    for name, value in expected.items():
        assert got[name] == pytest.approx(value), name


@pytest.mark.parametrize("graph_type,k", [("ER", 2), ("SF", 2)])
def test_generated_graphs_are_dags_with_about_k_d_edges(graph_type, k):
    d, counts = 20, []
    for seed in range(20):
        support = simulate_dag(np.random.default_rng(seed), d, k, graph_type)
        assert is_dag(support) and set(np.unique(support)) <= {0.0, 1.0}
        counts.append(support.sum())
    assert abs(np.mean(counts) - k * d) <= 0.1 * k * d  # ER: exactly k*d; SF: k*d - k(k+1)/2


def test_data_depend_only_on_seed_and_setting():
    a = make_data(3, d=8, n=50, k=2, graph_type="ER", noise="gauss")
    b = make_data(3, d=8, n=50, k=2, graph_type="ER", noise="gauss")
    c = make_data(4, d=8, n=50, k=2, graph_type="ER", noise="gauss")
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.weights, b.weights)
    assert not np.array_equal(a.x, c.x)
    magnitudes = np.abs(a.weights[a.support != 0])
    assert magnitudes.min() >= 0.5 and magnitudes.max() <= 2.0


def test_notears_recovers_a_three_node_chain():
    rng = np.random.default_rng(0)
    x = np.zeros((1000, 3))
    x[:, 0] = rng.normal(size=1000)
    x[:, 1] = 1.5 * x[:, 0] + rng.normal(size=1000)
    x[:, 2] = -1.2 * x[:, 1] + rng.normal(size=1000)
    result = notears_linear(x, lambda1=0.1)
    assert is_dag(result.weights) and result.h <= 1e-8
    assert count_accuracy(TRUE, result.weights)["shd"] == 0


@pytest.mark.parametrize("lambda1,graph_type,seed", [(0.0, "ER", 0), (0.1, "ER", 1), (0.0, "SF", 2)])
def test_topo_returns_a_dag_no_worse_than_its_start(lambda1, graph_type, seed):
    data = make_data(seed, d=8, n=200, k=2, graph_type=graph_type, noise="gauss")
    search = TopoSearch(data.x, lambda1)
    start = list(np.random.default_rng(seed).permutation(8))
    result = search.run(start)
    assert is_dag(result.weights) and topological_order(result.weights) is not None
    assert result.score <= result.start_score + 1e-12
    assert result.score == pytest.approx(score(search.x, result.weights, lambda1))
    assert all(b <= a + 1e-12 for a, b in zip(result.scores, result.scores[1:]))  # every step improves


@pytest.mark.parametrize("d", [2, 3, 5, 10, 20])
def test_search_sizes_fit_the_pairs(d):
    small, large, _ = search_sizes(d)
    assert 1 <= small <= large <= d * (d - 1) // 2


def run_py(*overrides: str, tmp_path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "run.py", *overrides, f"paths.runs_dir={tmp_path}"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("solver", ["notears", "notears_then_topo", "topo"])
def test_smoke_preset_writes_a_record_with_the_metrics(solver, tmp_path):
    done = run_py("+repro=notears_topo_smoke", f"structure.solver={solver}", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    (path,) = list(tmp_path.rglob("record.json"))
    record = json.loads(path.read_text())
    final = record["metrics"]["final"]
    assert record["status"] == "finished" and record["config"]["task"]["_target_"].endswith(".StructureLearningTask")
    assert {"graph/shd", "graph/tpr", "graph/fdr", "graph/nnz", "score/final"} <= set(final)
    assert final["graph/is_dag"] == 1.0 and record["timing"]["train_time_s"] > 0
    if solver != "notears":
        assert final["score/final"] <= final["score/start"] + 1e-9


def test_bad_solver_name_lists_the_valid_ones(tmp_path):
    done = run_py("+repro=notears_topo_smoke", "structure.solver=gradient_magic", tmp_path=tmp_path)
    assert done.returncode == 2
    line = (
        "optrepro: error: structure.solver: unknown value 'gradient_magic'; "
        "valid choices: notears, notears_then_topo, topo"
    )
    assert line in done.stderr.splitlines()
    assert not list(tmp_path.rglob("record.json"))
