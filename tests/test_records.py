"""Run folders never collide; records are written whole or not at all; every producer builds the one record
definition, older records migrate, later measurements sit beside record.json; a new config knob names its duty."""

from __future__ import annotations

import json
import os
import warnings
from concurrent.futures import ThreadPoolExecutor

import pytest
from helpers.compose import compose_config
from omegaconf import OmegaConf

from optrepro.paths import REPO_ROOT
from optrepro.records.record import SCHEMA_VERSION, InvalidRecordError, RunRecord, read_record
from optrepro.records.run_dir import RUN_DIR_ENV, make_run_dir
from optrepro.records.schema import best_metrics, build_record, final_metrics
from optrepro.records.table import iter_records
from optrepro.records.writer import write_json_atomic, write_record


def minimal_record(**fields) -> RunRecord:
    return RunRecord(
        run_id=fields.pop("run_id", "r1"),
        status=fields.pop("status", "finished"),
        config={"seed": 0},
        config_hash="h",
        setting_hash="s",
        seed=0,
        **fields,
    )


@pytest.fixture(autouse=True)
def _no_slurm(monkeypatch):
    for name in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", RUN_DIR_ENV):
        monkeypatch.delenv(name, raising=False)


def test_many_runs_started_in_the_same_second_get_distinct_folders(tmp_path):
    with ThreadPoolExecutor(8) as pool:
        folders = list(pool.map(lambda _: make_run_dir(tmp_path, "sweep"), range(64)))
    assert len(set(folders)) == 64 and all(f.is_dir() for f in folders)


def test_slurm_array_elements_are_named_by_their_ids_and_a_requeue_finds_its_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "1005")
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "1000")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "5")
    first = make_run_dir(tmp_path, "sam_cifar")
    assert first.name == "1000_5_1005"
    assert make_run_dir(tmp_path, "sam_cifar") == first, "a requeued job (same ids) resumes in its folder"
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "6")
    monkeypatch.setenv("SLURM_JOB_ID", "1006")
    assert make_run_dir(tmp_path, "sam_cifar") != first


def test_ddp_workers_reuse_the_folder_of_rank_zero(tmp_path, monkeypatch):
    monkeypatch.setenv(RUN_DIR_ENV, str(tmp_path / "rank0"))
    assert make_run_dir(tmp_path, "x") == tmp_path / "rank0"


def test_record_write_is_atomic_and_a_failed_write_keeps_the_old_record(tmp_path, monkeypatch):
    write_record(tmp_path, minimal_record(error="first"))

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        write_record(tmp_path, minimal_record(error="second"))
    assert read_record(tmp_path)["error"] == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"], "no temporary file is left behind"


def test_non_finite_metrics_are_stored_as_readable_json(tmp_path):
    write_json_atomic(tmp_path / "r.json", {"loss": float("nan"), "rows": [{"acc": float("inf")}]})
    assert json.loads((tmp_path / "r.json").read_text()) == {"loss": "nan", "rows": [{"acc": "inf"}]}


def test_best_and_final_metrics_over_the_history():
    history = [
        {"epoch": 0, "step": 10, "lr": 0.1, "train/loss": 2.0, "test/acc": 0.5, "test/loss": 1.0},
        {"epoch": 1, "step": 20, "lr": 0.05, "train/loss": 1.0, "test/acc": 0.7, "test/loss": 1.2},
        {"epoch": 2, "step": 30, "lr": 0.0, "train/loss": float("nan"), "test/acc": 0.6, "test/loss": 0.9},
    ]
    assert best_metrics(history) == {"train/loss": 1.0, "test/acc": 0.7, "test/loss": 0.9}
    final = final_metrics(history)
    assert final["test/acc"] == 0.6 and final["lr"] == 0.0 and "epoch" not in final


# --- one record definition -----------------------------------------------------------------------------------


def test_the_training_producer_builds_a_valid_current_record():
    cfg = compose_config(["debug=smoke"])
    record = build_record(
        cfg,
        run_id="r",
        status="finished",
        error=None,
        history=[{"epoch": 0, "step": 1, "x": 1.0}],
        timing={"time_per_step_s": 0.1},
        device_names=["cpu"],
        wandb=None,
        started_at="2025-01-01T00:00:00+00:00",
        code={"git_commit": None},
    )
    assert RunRecord.from_dict(record).to_dict() == record and record["schema_version"] == SCHEMA_VERSION
    with pytest.raises(InvalidRecordError, match="status 'done' is not one of finished, failed, diverged"):
        build_record(
            cfg,
            run_id="r",
            status="done",
            error=None,
            history=[],
            timing={},
            device_names=["cpu"],
            wandb=None,
            started_at="",
            code={},
        )


def test_the_structure_learning_producer_writes_a_valid_current_record(tmp_path):
    from reproductions.notears_topo.task import run_structure

    run_structure(compose_config(["+repro=notears_topo_smoke", "structure.d=4", "structure.n=20"], tmp_path))
    (path,) = tmp_path.rglob("record.json")
    stored = json.loads(path.read_text())
    assert RunRecord.from_dict(stored).to_dict() == stored and stored["schema_version"] == SCHEMA_VERSION


def test_the_wandb_producer_builds_a_valid_current_record():
    from optrepro.results.wandb_runs import WandbRun, to_record

    run = WandbRun(
        "abc",
        "proj",
        {"seed": 1, "train": {"batch_size": 8}, "hardware": {"devices": 1}},
        {"test/error": 3.0},
        [{"epoch": 0, "test/error": 3.0}],
        "finished",
        "offline",
    )
    record = to_record(run)
    assert RunRecord.from_dict(record).to_dict() == record
    assert record["run_id"] == "wandb-abc" and record["timing"] is None and record["versions"] is None


def test_a_version_1_record_migrates_and_a_newer_one_is_refused():
    v1 = {
        "schema_version": 1,
        "run_id": "old",
        "status": "finished",
        "config": {"seed": 2},
        "metrics": {"final": {"test/error": 3.0}},
        "timing": None,
    }  # v1 producers left blocks out
    migrated = RunRecord.from_dict(v1)
    assert migrated.schema_version == SCHEMA_VERSION and migrated.seed == 2
    assert migrated.metrics == {"final": {"test/error": 3.0}, "best": {}} and migrated.extra == {}
    with pytest.raises(InvalidRecordError, match="schema_version 99; this optrepro reads versions 1..3: update"):
        RunRecord.from_dict(v1 | {"schema_version": 99})
    with pytest.raises(InvalidRecordError, match="unknown field\\(s\\) colour"):
        RunRecord.from_dict(v1 | {"colour": "red"})


def test_every_committed_record_reads_as_the_current_definition():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a record skipped as invalid would raise here
        records = [record for _, record in iter_records(REPO_ROOT / "results" / "records")]
    assert records and all(record["schema_version"] == SCHEMA_VERSION for record in records)


def test_a_later_measurement_leaves_record_json_byte_identical_and_is_merged_on_read(tmp_path):
    from optrepro.landscape.record_update import write_landscape

    write_record(tmp_path, minimal_record(metrics={"final": {"test/error": 3.0}, "best": {}}))
    before = (tmp_path / "record.json").read_bytes()
    write_landscape(tmp_path, {"metrics": {"landscape/hessian_max_eig": 12.5}, "slice_1d": [[0.1, 0.2]]})
    assert (tmp_path / "record.json").read_bytes() == before
    merged = read_record(tmp_path)
    assert merged["metrics"]["final"] == {"test/error": 3.0, "landscape/hessian_max_eig": 12.5}
    assert merged["extra"]["landscape"]["slice_1d"] == [[0.1, 0.2]]
    write_landscape(tmp_path, {"metrics": {"landscape/hessian_max_eig": 7.0}})
    assert read_record(tmp_path)["metrics"]["final"]["landscape/hessian_max_eig"] == 7.0, "a re-measurement replaces"
    assert (tmp_path / "record.json").read_bytes() == before


def test_the_outcome_digest_ignores_timings_and_later_measurements_and_tells_no_whole_number_outcomes_apart(tmp_path):
    from optrepro.landscape.record_update import write_landscape
    from optrepro.records.record import outcome_digest

    def digest(final, status="finished"):
        return outcome_digest({"status": status, "metrics": {"final": final, "best": {}}})

    base = digest({"test/error": 2.7, "time/train_s": 1.0})
    assert base == digest({"test/error": 2.7, "time/train_s": 9.0}), "a timing is not part of the outcome"
    assert base != digest({"test/error": 2.7000000000000006}), "the last bit is"
    assert digest({"test/error": 2.7}, status="diverged") is None
    assert digest({"shd": 3.0, "time/train_s": 1.5}) is None, "whole numbers alone can coincide"
    write_record(tmp_path, minimal_record(metrics={"final": {"test/error": 2.7}, "best": {}}))
    write_landscape(tmp_path, {"metrics": {"landscape/hessian_max_eig": 12.5}})
    assert outcome_digest(read_record(tmp_path)) == base, "a later measurement is not what the run computed"


# --- hashes of a stored config ------------------------------------------------------------------------------------


def test_a_stored_config_hashes_alike_as_a_plain_dict_and_as_an_omegaconf_config():
    from optrepro.config import config_hash, semantic_config, setting_hash

    for _, record in list(iter_records(REPO_ROOT / "results" / "records"))[::20]:
        config = record["config"]
        assert semantic_config(config) == semantic_config(OmegaConf.create(config))
        assert config_hash(config) == config_hash(OmegaConf.create(config))
        assert setting_hash(config) == setting_hash(OmegaConf.create(config))


def test_code_version_covers_a_papers_own_code_but_not_its_tests_or_docs(tmp_path, monkeypatch):
    """A change to reproductions/<paper>/step.py is a new code version (its runs are not pooled with older ones);
    a change to the paper's tests or README is not."""
    from optrepro.records import provenance

    paper = tmp_path / "reproductions" / "paper"
    (paper / "tests").mkdir(parents=True)
    files = {
        "src/optrepro/train.py": "x = 1",
        "reproductions/paper/step.py": "lr = 1",
        "reproductions/paper/tests/test_paper.py": "def test(): pass",
        "reproductions/paper/README.md": "# P",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    monkeypatch.setattr(provenance, "REPO_ROOT", tmp_path)
    before = provenance.source_hash()
    for unrelated in ("reproductions/paper/tests/test_paper.py", "reproductions/paper/README.md"):
        (tmp_path / unrelated).write_text("changed")
        assert provenance.source_hash() == before, unrelated
    (tmp_path / "reproductions/paper/step.py").write_text("lr = 2")
    assert provenance.source_hash() != before


def test_a_runs_code_version_covers_the_shared_code_and_its_own_papers_not_the_others(tmp_path, monkeypatch):
    """Adding or editing paper B leaves paper A's runs at their code version; A's own code, a paper module A's config
    names (here B's step) and the shared code change it."""
    from omegaconf import OmegaConf

    from optrepro.records import provenance

    files = {
        "src/optrepro/train.py": "x = 1",
        "configs/train.yaml": "a: 1",
        "reproductions/a/step.py": "lr = 1",
        "reproductions/a/configs/repro/a_cpu.yaml": "x: 1",
        "reproductions/b/step.py": "lr = 1",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    monkeypatch.setattr(provenance, "REPO_ROOT", tmp_path)
    run_of_a = OmegaConf.create({"repro": {"paper": "a"}, "optimizer": {"step": None}})
    uses_b = OmegaConf.create({"repro": {"paper": "a"}, "optimizer": {"step": "reproductions.b.step:build"}})
    assert provenance.papers_used(run_of_a) == ("a",) and provenance.papers_used(uses_b) == ("a", "b")

    def version(cfg):
        return provenance.code_info(cfg)["source_hash"]

    before, before_b = version(run_of_a), version(uses_b)
    (tmp_path / "reproductions/b/step.py").write_text("lr = 2")  # another paper's edit
    (tmp_path / "reproductions/c").mkdir()
    (tmp_path / "reproductions/c/new.py").write_text("y = 1")  # a new paper
    assert version(run_of_a) == before
    assert version(uses_b) != before_b  # a run that names b's step is b's too
    (tmp_path / "reproductions/a/configs/repro/a_cpu.yaml").write_text("x: 2")
    assert version(run_of_a) != before
    assert provenance.source_hash() != provenance.source_hash(("a",))  # without a config: every paper
