#!/usr/bin/env bash
# The installed `uta-bench` run as a user would, from an empty folder outside the checkout (stage 6 of
# scripts/test.sh): info, tasks, models, table --paper, data check, run zeroshot and report on a small generated
# ImageNet-layout folder, results, and a wrong --data-root (one-line error, exit != 0, no traceback).
#
#   bash scripts/smoke_installed.sh VENV      # VENV: a virtualenv with uta-bench installed (non-editable)
set -euo pipefail
VENV="${1:?usage: smoke_installed.sh VENV}"
REPO="$(cd "$(dirname "$0")/.." && pwd)"
UB="$VENV/bin/uta-bench"
[[ -x "$UB" ]] || { echo "smoke: $UB not found" >&2; exit 1; }
unset PYTHONPATH UTA_BENCH_HOME UTA_BENCH_STORE UTA_BENCH_DATA UTA_BENCH_TASKS UTA_BENCH_PAPER_DIR
W="$(mktemp -d "${TMPDIR:-/tmp}/uta-bench-smoke.XXXXXX")"
trap 'rm -rf "$W"' EXIT
mkdir -p "$W/cwd" "$W/data"
export XDG_CACHE_HOME="$W/xdg-cache" XDG_DATA_HOME="$W/xdg-data" HF_HUB_OFFLINE=1 OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
cd "$W/cwd"
fail() { echo "smoke: FAILED: $*" >&2; exit 1; }
run() { echo "+ uta-bench $*"; "$UB" "$@" >"$W/out" 2>"$W/err" || { cat "$W/out" "$W/err"; fail "uta-bench $* exited $?"; }; }
has() { grep -q -- "$1" "$W/out" || { cat "$W/out"; fail "'$1' not in the output of the last command"; }; }

run info
cat "$W/out"
has "package (non-editable)"; has "$W/xdg-data/uta-bench/results/store.sqlite"; has "$W/xdg-cache/uta-bench"
grep -q -- "$REPO" "$W/out" && fail "uta-bench info points into the checkout $REPO"

COLUMNS=80 run tasks
for t in imagenet1k imagenet_a imagenet_r imagenet_v2 imagenet_sketch objectnet flickr30k mscoco; do has " $t "; done
COLUMNS=80 run models
has uta_g14_336
run table --paper --format markdown
for n in 1 2 3 4 5 6 7 8; do has "Table $n"; done

"$VENV/bin/python" - "$W/data/imagenet1k/val" <<'EOF'
import sys
from uta_bench.data.imagenet_meta import imagenet_wnids
from uta_bench.data.synthetic import make_imagefolder
make_imagefolder(sys.argv[1], imagenet_wnids()[:4], per_class=2)   # 8 JPEGs in 4 real synset folders
EOF
echo "+ uta-bench data check imagenet1k --data-root $W/data  (8 of 50,000 images: expected 'not ready', exit 2: a data error)"
rc=0; "$UB" data check imagenet1k --data-root "$W/data" >"$W/out" 2>"$W/err" || rc=$?
[[ $rc == 2 ]] && grep -q "imagenet1k: 8 images, expected 50000" "$W/err" || { cat "$W/out" "$W/err"; fail "data check on the generated folder: rc=$rc"; }
run run zeroshot --model uta_tiny --random-init --tasks imagenet1k --data-root "$W/data" --no-progress
has "imagenet1k (n=8): top1="
run_id="$(grep -o 'run [0-9T]*-[0-9a-f]*' "$W/out" | head -n1 | cut -d' ' -f2)"
[[ -f "$W/xdg-data/uta-bench/results/store.sqlite" ]] || fail "no results store under the user data folder"
COLUMNS=80 run results
has "$run_id"
run report -o "$W/report.html"
grep -q "Per-class accuracy of run $run_id" "$W/report.html" && grep -q 'src="data:image/png;base64,' "$W/report.html" \
    || fail "report.html lacks the run's per-class section or its inline plot"

echo "+ uta-bench data check imagenet1k --data-root $W/nowhere  (expected: one-line error, exit 2)"
rc=0; "$UB" data check imagenet1k --data-root "$W/nowhere" >"$W/out" 2>"$W/err" || rc=$?
cat "$W/err"
[[ $rc == 2 ]] || fail "data check on a wrong folder exited $rc (a data error is 2)"
[[ "$(wc -l <"$W/err")" == 1 ]] && grep -q '^error: ' "$W/err" || fail "expected one 'error: ...' line on stderr"
grep -q Traceback "$W/out" "$W/err" && fail "traceback printed"

HF_HUB_OFFLINE=1 run data get zeroshot --dry-run --data-root "$W/hub"     # offline: the plan from the shipped cards
has "clip-benchmark/wds_mscoco_captions @ main (not resolved)"
[[ ! -e "$W/hub" ]] || fail "data get --dry-run wrote into the data root"
echo "smoke: installed CLI OK (run $run_id)"
