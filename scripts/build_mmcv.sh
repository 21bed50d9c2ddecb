#!/usr/bin/env bash
# scripts/build_mmcv.sh -- build (once), cache and install mmcv 2.1.0 WITH compiled ops (CPU) for
# uta-bench's optional `det` / `seg` extras (mmdet 3.3 / mmsegmentation 1.2 need mmcv.ops: NMS, RoIAlign).
#
# Why: PyPI has no mmcv 2.1.0 wheel for torch 2.14, and the sdist's setup.py forces -std=c++14/17
# while torch 2.14's headers need C++20. mmcv-lite (no ops) cannot run Cascade Mask R-CNN.
#
# Usage:
#   scripts/build_mmcv.sh [--extra det|seg|none] [--build-only] [--force]
#     --extra det   (default) after mmcv: pip install -e '.[det]'  (mmengine 0.10.x, mmdet 3.3.0, lvis)
#     --extra seg   after mmcv: pip install -e '.[seg]'  (mmengine 0.10.x, mmsegmentation 1.2.x)
#     --extra none  install only the mmcv wheel (+ its runtime deps)
#     --build-only  build/cache the wheel, install nothing
#     --force       rebuild even if a cached wheel exists
# Environment:
#   MMCV_WHEEL_CACHE  wheel cache dir (default: ${UTA_BENCH_HOME:-~/.cache/uta-bench}/wheels)
#   PYTHON            interpreter whose environment receives the wheel (default: python3)
#   MAX_JOBS          parallel compile jobs (default 2)
#   MMCV_VERSION      default 2.1.0
# Outputs:
#   $MMCV_WHEEL_CACHE/torch-<torch version>-<python tag>/mmcv-*.whl   the cached wheel (keyed by torch ABI)
#   $MMCV_WHEEL_CACHE/mmcv.READY   one line: absolute path of the wheel (written last, atomically)
#   $MMCV_WHEEL_CACHE/build-mmcv.log   compiler log of the last build
# Idempotent: a cached wheel for the same torch + python is reused (no rebuild); concurrent runs are
# serialised with flock. The build uses a throw-away venv (--system-site-packages, so it sees the installed
# torch) holding setuptools<70 (mmcv's setup.py needs pkg_resources); the runtime env keeps its setuptools.
# Exit status != 0 with a one-line "build_mmcv: ..." message on failure.
set -euo pipefail

EXTRA=det; BUILD_ONLY=0; FORCE=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --extra) EXTRA="${2:?--extra needs det|seg|none}"; shift 2 ;;
    --extra=*) EXTRA="${1#--extra=}"; shift ;;
    --build-only) BUILD_ONLY=1; shift ;;
    --force) FORCE=1; shift ;;
    -h|--help) sed -n '2,31p' "$0"; exit 0 ;;
    *) echo "build_mmcv: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
case "$EXTRA" in det|seg|none) ;; *) echo "build_mmcv: --extra must be det, seg or none (got '$EXTRA')" >&2; exit 2 ;; esac

die() { echo "build_mmcv: $*" >&2; exit 1; }
PY="${PYTHON:-python3}"
VER="${MMCV_VERSION:-2.1.0}"
JOBS="${MAX_JOBS:-2}"
HOME_DIR="${UTA_BENCH_HOME:-$HOME/.cache/uta-bench}"
CACHE="${MMCV_WHEEL_CACHE:-$HOME_DIR/wheels}"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mkdir -p "$CACHE"
CACHE="$(cd "$CACHE" && pwd)"

TORCH_VER="$("$PY" -c 'import torch; print(torch.__version__)' 2>/dev/null)" || die "torch is not importable with $PY; install uta-bench first (pip install -e .)"
PYTAG="$("$PY" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"
KEY_DIR="$CACHE/torch-${TORCH_VER//+/_}-$PYTAG"
MARKER="$CACHE/mmcv.READY"
LOG="$CACHE/build-mmcv.log"

exec 9>"$CACHE/.mmcv.lock"
flock 9   # another build (e.g. the seg developer) finishes first; we then reuse its wheel

find_wheel() { ls -1 "$KEY_DIR"/mmcv-"$VER"-*.whl 2>/dev/null | head -n 1; }
WHEEL="$(find_wheel || true)"
if [[ -n "$WHEEL" && "$FORCE" == 0 ]]; then
  echo "build_mmcv: reusing cached wheel $WHEEL"
else
  command -v g++ >/dev/null || die "g++ not found; install a C++20 compiler (apt-get install g++)"
  T0=$(date +%s)
  WORK="$(mktemp -d "${TMPDIR:-/tmp}/mmcv-build.XXXXXX")"
  trap 'rm -rf "$WORK"' EXIT
  echo "build_mmcv: building mmcv $VER with ops for torch $TORCH_VER ($PYTAG), MAX_JOBS=$JOBS; log: $LOG"
  # A plain venv (no --system-site-packages: from inside a venv that would expose the *base*
  # interpreter's packages, not the target environment's torch) that sees the target environment's
  # site-packages through a .pth file, after its own (so its setuptools<70 wins).
  "$PY" -m venv "$WORK/venv"
  BPY="$WORK/venv/bin/python"
  "$PY" -c 'import site, sys; print("\n".join(site.getsitepackages()))' \
    >"$("$BPY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/target-env.pth"
  "$BPY" -c 'import torch' 2>/dev/null || die "the build venv cannot import torch from $PY's environment"
  "$BPY" -m pip install -q 'setuptools>=60,<70' wheel ninja >"$LOG" 2>&1 || die "could not install build tools (setuptools<70, wheel, ninja); see $LOG"
  "$BPY" -m pip download -q --no-deps --no-binary :all: "mmcv==$VER" -d "$WORK/sdist" >>"$LOG" 2>&1 \
    || die "could not download the mmcv $VER sdist from PyPI; see $LOG"
  tar -xzf "$WORK"/sdist/mmcv-"$VER".tar.gz -C "$WORK"
  SRC="$WORK/mmcv-$VER"
  [[ -f "$SRC/setup.py" ]] || die "unexpected sdist layout (no $SRC/setup.py)"
  # torch >= 2.10 headers need C++20; mmcv 2.1.0 hard-codes c++14 (CPU ops) / c++17.
  sed -i -e 's/-std=c++14/-std=c++20/g' -e 's/-std=c++17/-std=c++20/g' "$SRC/setup.py"
  grep -q 'std=c++20' "$SRC/setup.py" || die "could not patch the C++ standard in $SRC/setup.py"
  (cd "$SRC" && MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS="$JOBS" \
     "$BPY" -m pip wheel -v --no-deps --no-build-isolation . -w "$WORK/dist") >>"$LOG" 2>&1 \
    || die "mmcv build failed; last lines of $LOG: $(tail -n 3 "$LOG" | tr '\n' ' ')"
  BUILT="$(ls -1 "$WORK"/dist/mmcv-"$VER"-*.whl | head -n 1)"
  [[ -n "$BUILT" ]] || die "pip wheel produced no wheel; see $LOG"
  mkdir -p "$KEY_DIR"
  cp "$BUILT" "$KEY_DIR/.partial.whl"
  mv "$KEY_DIR/.partial.whl" "$KEY_DIR/$(basename "$BUILT")"   # atomic publish
  WHEEL="$(find_wheel)"
  echo "build_mmcv: built $WHEEL in $(( $(date +%s) - T0 )) s"
fi
printf '%s\n' "$WHEEL" >"$MARKER.tmp" && mv "$MARKER.tmp" "$MARKER"

[[ "$BUILD_ONLY" == 1 ]] && exit 0
# Runtime deps of mmcv come from PyPI; the wheel itself is our build.
"$PY" -m pip install -q "$WHEEL" || die "pip install $WHEEL failed"
"$PY" - <<'EOF' || die "installed mmcv has no working compiled ops"
import torch
from mmcv.ops import nms, roi_align
boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 11., 11.], [50., 50., 60., 60.]])
_, keep = nms(boxes, torch.tensor([0.9, 0.8, 0.7]), 0.5)
assert keep.tolist() == [0, 2], keep
out = roi_align(torch.ones(1, 1, 8, 8), torch.tensor([[0., 0., 0., 4., 4.]]), (2, 2), 1.0, 2)
assert out.shape == (1, 1, 2, 2)
import mmcv; print(f"build_mmcv: mmcv {mmcv.__version__} ops OK (nms, roi_align on CPU)")
EOF
if [[ "$EXTRA" != none ]]; then
  "$PY" -m pip install -q -e "$REPO[$EXTRA]" || die "pip install -e '.[$EXTRA]' failed"
  echo "build_mmcv: installed uta-bench[$EXTRA]"
fi
