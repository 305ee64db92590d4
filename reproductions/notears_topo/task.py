"""The structure-learning task: one (seed, setting, solver) run, recorded like a training run.

`optrepro.train.run` instantiates it from the `task` node (`task=structure_learning`, configs/task/ in this folder)
after seeding and the skip_finished check, and calls `run(cfg)`. The run gets the same run folder, provenance
and record writer (`optrepro.train.write_solver_record`) as a classification run; its single history row holds
the graph metrics and scores, so they land in record["metrics"]["final"].
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import numpy as np
from omegaconf import DictConfig
from pydantic import Field

from optrepro.config_schema import NonNegFloat, OpenSection, PosFloat, PosInt, check_section, choice
from optrepro.errors import ConfigError
from optrepro.records import provenance
from optrepro.records.run_dir import make_run_dir
from optrepro.records.schema import failure_status, utc_now
from optrepro.train import solver_timing, write_solver_record
from reproductions.notears_topo.data import is_dag, make_data, topological_order
from reproductions.notears_topo.metrics import count_accuracy, score
from reproductions.notears_topo.notears import notears_linear
from reproductions.notears_topo.topo import TopoSearch

SOLVER_STREAM = 1  # rng stream of a seed for the solver (TOPO's random start); the data use stream 0


class StructureKnobs(OpenSection):
    """The `structure` block (configs/structure/linear_sem.yaml), typed once; its solver sub-blocks pass on."""

    graph_type: Annotated[str, choice("reproductions.notears_topo:GRAPH_TYPES")]
    d: Annotated[int, Field(ge=2)]  # nodes
    k: PosFloat  # expected edges per node
    n: PosInt  # samples
    noise: Annotated[str, choice("reproductions.notears_topo:NOISE_TYPES")]
    solver: Annotated[str, choice("reproductions.notears_topo:SOLVERS")]
    lambda1: NonNegFloat
    threshold: NonNegFloat


def validate(cfg: DictConfig) -> DictConfig:
    """The `structure` block, typed by StructureKnobs before any work: unknown choices list the valid ones."""
    sc = cfg.get("structure")
    if sc is None:
        raise ConfigError(
            "task=structure_learning needs a `structure` block: add `+structure=linear_sem` "
            "or use a preset such as `+repro=notears_topo_smoke`."
        )
    check_section(cfg, "structure", StructureKnobs)
    return sc


def thresholded(weights: np.ndarray, threshold: float) -> np.ndarray:
    out = weights.copy()
    out[np.abs(out) < threshold] = 0.0
    return out


def solve(sc: DictConfig, x: np.ndarray, seed: int) -> tuple[np.ndarray, dict[str, float]]:
    """The weighted DAG the solver returns (before the graph threshold for TOPO) and solver-specific metrics."""
    lambda1, threshold = float(sc.lambda1), float(sc.threshold)
    xc = x - x.mean(axis=0, keepdims=True)
    metrics: dict[str, float] = {}
    if sc.solver in ("notears", "notears_then_topo"):
        nt = notears_linear(
            x,
            lambda1,
            max_iter=int(sc.notears.max_iter),
            h_tol=float(sc.notears.h_tol),
            rho_max=float(sc.notears.rho_max),
            w_threshold=threshold,
        )
        metrics.update(
            {
                "notears/h": nt.h,
                "notears/rho": nt.rho,
                "notears/dual_steps": float(nt.dual_steps),
                "score/notears": score(xc, nt.weights, lambda1),
                "score/notears_unthresholded": score(xc, nt.raw_weights, lambda1),
            }
        )
        if sc.solver == "notears":
            return nt.weights, metrics
        start = nt.weights
        while topological_order(start) is None:  # only when rho_max stopped NOTEARS before h reached h_tol
            nonzero = np.flatnonzero(start)
            start.flat[nonzero[np.argmin(np.abs(start.flat[nonzero]))]] = 0.0
        order = topological_order(start)
        metrics["score/start"] = score(xc, start, lambda1)
    else:
        order = [int(v) for v in np.random.default_rng([int(seed), SOLVER_STREAM]).permutation(int(sc.d))]
    result = TopoSearch(x, lambda1).run(order)
    metrics.setdefault("score/start", result.start_score)
    metrics.update(
        {
            "topo/iterations": float(result.iterations),
            "topo/large_searches": float(result.large_searches),
            "score/topo_start_fit": result.start_score,
        }
    )
    return result.weights, metrics


class StructureLearningTask:
    """`task._target_` of the notears_topo presets; the config check calls `validate` before any work."""

    validate = staticmethod(validate)

    def run(self, cfg: DictConfig) -> dict[str, Any]:
        return run_structure(cfg)


def run_structure(cfg: DictConfig) -> dict[str, Any]:
    sc = validate(cfg)
    run_dir = make_run_dir(cfg.paths.runs_dir, str(cfg.name))
    started_at, clock, code = utc_now(), time.perf_counter(), provenance.code_info(cfg)
    status, error, history, solve_wall, solve_cpu = "finished", None, [], float("nan"), float("nan")
    try:
        data = make_data(
            int(cfg.seed), d=int(sc.d), n=int(sc.n), k=float(sc.k), graph_type=str(sc.graph_type), noise=str(sc.noise)
        )
        wall0, cpu0 = time.perf_counter(), time.process_time()
        weights, extra_metrics = solve(sc, data.x, int(cfg.seed))
        solve_wall, solve_cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        graph = thresholded(weights, float(sc.threshold))
        xc = data.x - data.x.mean(axis=0, keepdims=True)
        accuracy = count_accuracy(data.support, graph)
        row: dict[str, float] = {"epoch": 0, "step": 1}
        row.update({f"graph/{name}": value for name, value in accuracy.items()})
        row["graph/miss_rate"] = 1.0 - accuracy["tpr"]  # bound checks are upper bounds: TPR >= t is miss_rate <= 1 - t
        row.update(
            {
                "graph/is_dag": float(is_dag(graph)),
                "graph/true_edges": float(data.support.sum()),
                "score/final": score(xc, weights, float(sc.lambda1)),
                "score/true_weights": score(xc, data.weights, float(sc.lambda1)),
                "time/train_s": solve_wall,
                "time/train_cpu_s": solve_cpu,
            }
        )
        row.update(extra_metrics)
        history.append(row)
        if not np.isfinite(row["score/final"]):
            status, error = "diverged", "the solver returned a non-finite score"
    except BaseException as exc:
        status, error = failure_status(exc)
        raise
    finally:
        timing = solver_timing(time.perf_counter() - clock, solve_wall, solve_cpu, 1 if history else 0)
        record = write_solver_record(
            cfg,
            run_dir,
            status=status,
            error=error,
            history=history,
            timing=timing,
            started_at=started_at,
            code=code,
            extra={"task": "structure_learning", "solver": str(sc.solver)},
        )
    return record
