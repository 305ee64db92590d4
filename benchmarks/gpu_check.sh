#!/usr/bin/env bash
# The one-command GPU check (benchmarks/README.md, "GPU check"): the GPU-only tests (`pytest -m gpu`), then
# benchmarks/gpu_check.py's throughput, MFU, data-time and projection figures. At most 8 minutes on one H100/H200;
# no internet, no dataset. `--dry-run`: the same code paths on the CPU in seconds (CI runs it).
# Usage: bash benchmarks/gpu_check.sh [--dry-run] OUT_DIR   -> OUT_DIR/gpu_check.json, OUT_DIR/gpu_tests.log
set -euo pipefail
usage="usage: bash benchmarks/gpu_check.sh [--dry-run] OUT_DIR"
dry_run="" out=""
for arg in "$@"; do
  case "$arg" in
    --dry-run) dry_run="--dry-run" ;;
    -*) echo "gpu_check.sh: unknown option $arg; $usage" >&2; exit 2 ;;
    *) [ -z "$out" ] || { echo "gpu_check.sh: one OUT_DIR only; $usage" >&2; exit 2; }; out="$arg" ;;
  esac
done
[ -n "$out" ] || { echo "gpu_check.sh: OUT_DIR missing; $usage" >&2; exit 2; }
mkdir -p "$out"
out="$(cd "$out" && pwd)"
cd "$(dirname "$0")/.."
python="${PYTHON:-python}"
[ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ] && python=.venv/bin/python
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 WANDB_MODE=offline

# 1. GPU-only tests (on the CPU they are collected and skipped). Only the files holding them are collected:
# collecting the whole suite composes every preset (tens of seconds).
mapfile -t gpu_test_files < <(grep -rlE "RunIf\(min_gpus|mark\.gpu" tests --include='*.py')
set +e
timeout "${GPU_TESTS_TIMEOUT_S:-150}" "$python" -m pytest -m gpu -q -p no:cacheprovider "${gpu_test_files[@]}" \
  > "$out/gpu_tests.log" 2>&1
tests_exit=$?
set -e
tests_summary="$(tail -n 1 "$out/gpu_tests.log")"
echo "pytest -m gpu: exit $tests_exit: $tests_summary (log: $out/gpu_tests.log)"

# 2. Throughput, MFU, data time, projection; its own budget stops it starting settings after ~4 minutes, and the
# timeout bounds a compilation that overruns it (the JSON is written after every setting).
timeout "${GPU_BENCH_TIMEOUT_S:-320}" "$python" benchmarks/gpu_check.py "$out" $dry_run \
  --gpu-tests-exit "$tests_exit" --gpu-tests-summary "$tests_summary"
