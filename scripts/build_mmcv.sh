#!/usr/bin/env bash
# scripts/build_mmcv.sh -- build (once), verify, cache and install mmcv WITH compiled ops for uta-bench's
# optional `det` / `seg` extras (mmdet 3.3 / mmsegmentation 1.2 need mmcv.ops: NMS, RoIAlign).
#
# Why: PyPI has no mmcv 2.1.0 wheel for torch 2.14, and the sdist's setup.py forces -std=c++14/17
# while torch 2.14's headers need C++20. mmcv-lite (no ops) cannot run Cascade Mask R-CNN.
#
# Usage:
#   scripts/build_mmcv.sh [--extra det|seg|none] [--build-only] [--force]
#     --extra det   (default) after mmcv: pip install -e '.[det]'  (mmengine 0.10.x, mmdet 3.3.0, faster-coco-eval)
#     --extra seg   after mmcv: pip install -e '.[seg]'  (mmengine 0.10.x, mmsegmentation 1.2.x)
#     --extra none  install only the mmcv wheel (+ its runtime deps)
#     --build-only  build/verify/cache the wheel, install nothing
#     --force       rebuild even if a verified cached wheel exists
# Environment:
#   MMCV_WHEEL_CACHE  wheel cache dir (default: ${UTA_BENCH_HOME:-~/.cache/uta-bench}/wheels)
#   PYTHON            interpreter whose environment receives the wheel (default: python3)
#   MAX_JOBS          parallel compile jobs (default 2)
#   MMCV_DIST         PyPI distribution to build: mmcv (default) or onedl-mmcv (the maintained fork)
#   MMCV_VERSION      default 2.1.0 for mmcv, 2.3.6 for onedl-mmcv
#   MMCV_SDIST        build from this local sdist (.tar.gz) instead of downloading it
#   FORCE_CUDA=1      build the CUDA ops even where torch sees no GPU (needs nvcc and TORCH_CUDA_ARCH_LIST)
#   TORCH_CUDA_ARCH_LIST  CUDA archs to compile for (default on a CUDA machine: those of the visible GPUs)
# Ops flavour: CUDA ops when torch.cuda.is_available() or FORCE_CUDA=1 (and torch was built with CUDA),
# else CPU ops.
# Outputs:
#   $MMCV_WHEEL_CACHE/torch-<torch>-<python tag>-<ops>/<dist>-*.whl   the cached wheel, where <ops> is "cpu"
#        or "cu<CUDA version>-arch<TORCH_CUDA_ARCH_LIST>" (e.g. torch-2.14.1_cu130-cp311-cu130-arch8.0+9.0):
#        a CPU wheel is never reused on a GPU node, nor a wheel built for other GPU archs
#   <wheel>.verified   sha256 of the wheel, written only after the smoke test (import mmcv.ops, nms and
#        roi_align give the expected numbers, on CUDA too for a CUDA build) passed in a throw-away venv
#   $MMCV_WHEEL_CACHE/mmcv.READY   one line: absolute path of the wheel (written last, atomically)
#   $MMCV_WHEEL_CACHE/build-mmcv.log   compiler log of the last build
# A built wheel that fails the smoke test is never published to the cache; a cached wheel without a
# matching .verified stamp is smoke-tested again and discarded (then rebuilt) if it fails. Wheels of the
# older layout (torch-<torch>-<python tag>/, CPU ops) are verified and moved to the "-cpu" key, not rebuilt.
# Idempotent; concurrent runs are serialised with flock. The build uses a throw-away venv that sees the
# target environment's packages through a .pth, holding setuptools<70 for mmcv (its setup.py needs pkg_resources),
# setuptools>=80 for onedl-mmcv (its build-system).
# Exit status != 0 with a one-line "build_mmcv: ..." message on failure (2: bad arguments).
set -euo pipefail

EXTRA=det; BUILD_ONLY=0; FORCE=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --extra) EXTRA="${2:?--extra needs det|seg|none}"; shift 2 ;;
    --extra=*) EXTRA="${1#--extra=}"; shift ;;
    --build-only) BUILD_ONLY=1; shift ;;
    --force) FORCE=1; shift ;;
    -h|--help) sed -n '2,40p' "$0"; exit 0 ;;
    *) echo "build_mmcv: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
case "$EXTRA" in det|seg|none) ;; *) echo "build_mmcv: --extra must be det, seg or none (got '$EXTRA')" >&2; exit 2 ;; esac
DIST="${MMCV_DIST:-mmcv}"
case "$DIST" in
  mmcv) VER="${MMCV_VERSION:-2.1.0}"; SETUPTOOLS='setuptools>=60,<70' ;;         # setup.py needs pkg_resources
  onedl-mmcv) VER="${MMCV_VERSION:-2.3.6}"; SETUPTOOLS='setuptools>=80' ;;      # its pyproject's build-system
  *) echo "build_mmcv: MMCV_DIST must be mmcv or onedl-mmcv (got '$DIST')" >&2; exit 2 ;;
esac

die() { echo "build_mmcv: $*" >&2; exit 1; }
PY="${PYTHON:-python3}"
JOBS="${MAX_JOBS:-2}"
HOME_DIR="${UTA_BENCH_HOME:-$HOME/.cache/uta-bench}"
CACHE="${MMCV_WHEEL_CACHE:-$HOME_DIR/wheels}"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mkdir -p "$CACHE"
CACHE="$(cd "$CACHE" && pwd)"
WHEEL_NAME="${DIST//-/_}"   # the wheel file name's distribution part

# --- cache key: torch, python tag, ops flavour (cpu | CUDA version + archs) ---------------------------
read -r TORCH_VER PYTAG TORCH_CUDA CUDA_OK GPU_ARCHS < <("$PY" - <<'EOF' 2>/dev/null
import sys, torch
cuda = torch.version.cuda or "none"
ok = int(torch.cuda.is_available())
archs = "+".join(sorted({"%d.%d" % torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())})) if ok else "none"
print(torch.__version__, f"cp{sys.version_info[0]}{sys.version_info[1]}", cuda, ok, archs or "none")
EOF
) || die "torch is not importable with $PY; install uta-bench first (pip install -e .)"
[[ -n "${TORCH_VER:-}" ]] || die "torch is not importable with $PY; install uta-bench first (pip install -e .)"
if [[ "$CUDA_OK" == 1 || "${FORCE_CUDA:-0}" == 1 ]]; then
  [[ "$TORCH_CUDA" != none ]] || die "FORCE_CUDA=1 but torch $TORCH_VER was built without CUDA; install a CUDA torch"
  ARCHS="${TORCH_CUDA_ARCH_LIST:-}"
  [[ -n "$ARCHS" || "$GPU_ARCHS" != none ]] || die "FORCE_CUDA=1 without a visible GPU: set TORCH_CUDA_ARCH_LIST (e.g. '8.0;9.0')"
  ARCHS="${ARCHS:-${GPU_ARCHS//+/;}}"
  export TORCH_CUDA_ARCH_LIST="$ARCHS" FORCE_CUDA=1
  ARCH_TAG="$(printf '%s' "$ARCHS" | tr ' ;' '++' | tr -cd 'A-Za-z0-9.+_')"
  OPS="cu${TORCH_CUDA//./}-arch$ARCH_TAG"
else
  OPS=cpu; export FORCE_CUDA=0
fi
KEY_DIR="$CACHE/torch-${TORCH_VER//+/_}-$PYTAG-$OPS"
LEGACY_DIR="$CACHE/torch-${TORCH_VER//+/_}-$PYTAG"   # layout before the ops flavour was part of the key (CPU)
echo "build_mmcv: cache key $(basename "$KEY_DIR") ($DIST $VER)"
MARKER="$CACHE/mmcv.READY"
LOG="$CACHE/build-mmcv.log"

exec 9>"$CACHE/.mmcv.lock"
flock 9   # another build (e.g. the seg developer) finishes first; we then reuse its wheel

WORK="$(mktemp -d "${TMPDIR:-/tmp}/mmcv-build.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

sha() { sha256sum "$1" | cut -d' ' -f1; }
find_wheel() { ls -1 "$1"/"$WHEEL_NAME"-"$VER"-*.whl 2>/dev/null | head -n 1; }
is_verified() { [[ -f "$1.verified" && "$(cat "$1.verified")" == "$(sha "$1")" ]]; }

# venv_for NAME: a plain venv (no --system-site-packages: from inside a venv that exposes the *base*
# interpreter's packages) that sees the target environment's site-packages through a .pth file, after
# its own (so what is installed in it wins). Prints its python.
venv_for() {
  local v="$WORK/$1"
  "$PY" -m venv "$v" >/dev/null || die "could not create a venv with $PY"
  "$PY" -c 'import site; print("\n".join(site.getsitepackages()))' \
    >"$("$v/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/target-env.pth"
  "$v/bin/python" -c 'import torch' 2>/dev/null || die "a venv on top of $PY's environment cannot import torch"
  echo "$v/bin/python"
}

# smoke_test PYTHON: mmcv.ops imports and nms / roi_align give the expected numbers (also on CUDA for a
# CUDA build).
smoke_test() {
  OPS="$OPS" "$1" - <<'EOF'
import os, torch
from mmcv.ops import nms, roi_align
devs = ["cpu"] + (["cuda"] if os.environ["OPS"] != "cpu" and torch.cuda.is_available() else [])
for d in devs:
    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 11., 11.], [50., 50., 60., 60.]], device=d)
    _, keep = nms(boxes, torch.tensor([0.9, 0.8, 0.7], device=d), 0.5)
    assert keep.tolist() == [0, 2], keep
    img = torch.arange(64, dtype=torch.float32, device=d).reshape(1, 1, 8, 8)
    # an autograd Function's apply: every argument positional (output_size, spatial_scale, sampling_ratio,
    # pool_mode, aligned)
    out = roi_align(img, torch.tensor([[0., 0., 0., 4., 4.]], device=d), (2, 2), 1.0, 1, "avg", True)
    # aligned box [-0.5, 3.5]^2, one bilinear sample at each bin centre (y, x in {0.5, 2.5}) of 8y + x
    ref = torch.tensor([[4.5, 6.5], [20.5, 22.5]])
    assert torch.allclose(out.cpu()[0, 0], ref), out
import mmcv; print(f"build_mmcv: mmcv {mmcv.__version__} ops OK (nms, roi_align on {', '.join(devs)})")
EOF
}

# verify WHEEL NAME: install the wheel into a throw-away venv over the target environment and smoke-test
# it there; on success write WHEEL.verified (its sha256).
verify() {
  local vpy; vpy="$(venv_for "$2")" || return 1
  # --ignore-installed: the target environment may hold an mmcv of the same version (seen through the .pth),
  # which pip would take as already satisfying the wheel; the second call adds the wheel's missing deps.
  { "$vpy" -m pip install -q --no-deps --ignore-installed "$1" && "$vpy" -m pip install -q "$1"; } >>"$LOG.verify" 2>&1 \
    || { echo "build_mmcv: pip install $1 failed; see $LOG.verify" >&2; return 1; }
  smoke_test "$vpy" >>"$LOG.verify" 2>&1 || { echo "build_mmcv: $1 failed the ops smoke test; see $LOG.verify" >&2; return 1; }
  sha "$1" >"$1.verified.tmp" && mv "$1.verified.tmp" "$1.verified"
}

discard() { echo "build_mmcv: discarding broken cached wheel $1" >&2; rm -f "$1" "$1.verified"; }

: >"$LOG.verify"
WHEEL="$(find_wheel "$KEY_DIR" || true)"
if [[ -z "$WHEEL" && "$OPS" == cpu && -n "$(find_wheel "$LEGACY_DIR" || true)" ]]; then
  OLD="$(find_wheel "$LEGACY_DIR")"   # migrate: verify once, then move under the new key
  if verify "$OLD" legacy; then
    mkdir -p "$KEY_DIR"
    mv "$OLD.verified" "$KEY_DIR/$(basename "$OLD").verified" && mv "$OLD" "$KEY_DIR/"
    WHEEL="$(find_wheel "$KEY_DIR")"
    echo "build_mmcv: moved verified wheel $OLD to $KEY_DIR"
  else
    discard "$OLD"
  fi
fi
if [[ -n "$WHEEL" && "$FORCE" == 0 ]] && ! is_verified "$WHEEL"; then
  verify "$WHEEL" cached || { discard "$WHEEL"; WHEEL=""; }
fi
if [[ -n "$WHEEL" && "$FORCE" == 0 ]]; then
  echo "build_mmcv: reusing cached wheel $WHEEL"
else
  command -v g++ >/dev/null || die "g++ not found; install a C++20 compiler (apt-get install g++)"
  [[ "$OPS" == cpu ]] || command -v nvcc >/dev/null || [[ -x "${CUDA_HOME:-/usr/local/cuda}/bin/nvcc" ]] \
    || die "building CUDA ops needs nvcc (set CUDA_HOME, or FORCE_CUDA=0 on a machine without GPUs)"
  T0=$(date +%s)
  echo "build_mmcv: building $DIST $VER with $OPS ops for torch $TORCH_VER ($PYTAG), MAX_JOBS=$JOBS; log: $LOG"
  BPY="$(venv_for build)"
  "$BPY" -m pip install -q "$SETUPTOOLS" wheel ninja 'packaging>=24.2' >"$LOG" 2>&1 \
    || die "could not install build tools ($SETUPTOOLS, wheel, ninja); see $LOG"
  mkdir -p "$WORK/sdist"
  if [[ -n "${MMCV_SDIST:-}" ]]; then
    cp "$MMCV_SDIST" "$WORK/sdist/" || die "cannot read MMCV_SDIST=$MMCV_SDIST"
  else
    "$BPY" -m pip download -q --no-deps --no-binary :all: "$DIST==$VER" -d "$WORK/sdist" >>"$LOG" 2>&1 \
      || die "could not download the $DIST $VER sdist from PyPI; see $LOG"
  fi
  tar -xzf "$WORK"/sdist/*.tar.gz -C "$WORK/sdist" || die "cannot unpack the $DIST sdist"
  SRC="$(dirname "$(ls -1 "$WORK"/sdist/*/setup.py 2>/dev/null | head -n 1)")"
  [[ -f "$SRC/setup.py" ]] || die "unexpected sdist layout (no setup.py in $WORK/sdist/*/)"
  # torch >= 2.10 headers need C++20; mmcv 2.1.0 hard-codes c++14 (CPU ops) / c++17.
  sed -i -e 's/-std=c++14/-std=c++20/g' -e 's/-std=c++17/-std=c++20/g' "$SRC/setup.py"
  grep -q 'std=c++20' "$SRC/setup.py" || die "could not patch the C++ standard in $SRC/setup.py"
  (cd "$SRC" && MMCV_WITH_OPS=1 MAX_JOBS="$JOBS" \
     "$BPY" -m pip wheel -v --no-deps --no-build-isolation . -w "$WORK/dist") >>"$LOG" 2>&1 \
    || die "$DIST build failed; last lines of $LOG: $(tail -n 3 "$LOG" | tr '\n' ' ')"
  BUILT="$(ls -1 "$WORK"/dist/"$WHEEL_NAME"-"$VER"-*.whl 2>/dev/null | head -n 1)"
  [[ -n "$BUILT" ]] || die "pip wheel produced no $WHEEL_NAME-$VER wheel; see $LOG"
  verify "$BUILT" smoke || die "the freshly built wheel has no working ops; NOT cached (build log: $LOG)"
  mkdir -p "$KEY_DIR"
  cp "$BUILT" "$KEY_DIR/.partial.whl"
  cp "$BUILT.verified" "$KEY_DIR/$(basename "$BUILT").verified"
  mv "$KEY_DIR/.partial.whl" "$KEY_DIR/$(basename "$BUILT")"   # atomic publish, after its stamp
  WHEEL="$(find_wheel "$KEY_DIR")"
  echo "build_mmcv: built and verified $WHEEL in $(( $(date +%s) - T0 )) s"
fi
printf '%s\n' "$WHEEL" >"$MARKER.tmp" && mv "$MARKER.tmp" "$MARKER"

[[ "$BUILD_ONLY" == 1 ]] && exit 0
# Runtime deps of mmcv come from PyPI; the wheel itself is our build.
"$PY" -m pip install -q "$WHEEL" || die "pip install $WHEEL failed"
if ! smoke_test "$PY"; then
  rm -f "$WHEEL.verified"   # the next run re-verifies the wheel in isolation before reusing it
  die "installed mmcv has no working compiled ops in $PY's environment (the wheel passed in isolation: check for a second mmcv or mismatched torch there)"
fi
if [[ "$EXTRA" != none ]]; then
  "$PY" -m pip install -q -e "$REPO[$EXTRA]" || die "pip install -e '.[$EXTRA]' failed"
  echo "build_mmcv: installed uta-bench[$EXTRA]"
fi
