"""No undeclared runtime dependencies: everything uta_bench imports must come from its own requirements.

A subprocess sees only the installed packages that uta-bench's requirements pull in (transitively): first
the core requirements (what `pip install uta-bench` gives), then core + the runtime extras installed here
(the ``test`` extra does not count). Every other installed top-level module is hidden -- importing it raises
ModuleNotFoundError, as in an environment holding exactly those requirements. The subprocess imports every
``uta_bench`` module (a module needing a package that only an extra declares may be skipped) and runs the
cheap real paths that import lazily: ImageNet metadata, class names/templates, `uta-bench tasks`, `models`,
`table --paper`, `info`, `results`, `plot masks`, and the error paths of `data check` and `compare`.
This is what catches `requests` imported through clip_benchmark's dataset builder (clip_benchmark is only
the tests' oracle; it does not declare `requests`).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path

import pytest

pytest.importorskip("packaging")
from packaging.requirements import Requirement  # noqa: E402

TEST_ONLY_EXTRAS = {"test"}

# Runs in a subprocess. argv[1]: JSON list of top-level modules to hide (installed, but owned only by
# distributions uta-bench does not require): importing one raises ModuleNotFoundError, as in an
# environment holding exactly uta-bench's requirements.
PROBE = textwrap.dedent(r"""
    import contextlib, importlib, importlib.abc, importlib.machinery, io, json, pkgutil, sys
    hidden, hits = set(json.loads(sys.argv[1])), []
    optional = set(json.loads(sys.argv[3]))   # hidden, but an extra of uta-bench declares it: a skip

    class Hidden(importlib.abc.Loader):   # find_spec succeeds (torch probes with find_spec), import fails
        def create_module(self, spec):
            hits.append(spec.name)
            raise ModuleNotFoundError(f"No module named {spec.name!r} (installed, but not required by "
                                      "uta-bench)", name=spec.name)

        def exec_module(self, module):
            pass

    class Hide:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in hidden:
                return importlib.machinery.ModuleSpec(name, Hidden())
            return None

    sys.meta_path.insert(0, Hide())
    import uta_bench
    skipped, failed = {}, {}

    def attempt(label, fn, exit_ok=False):
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                fn()
        except ModuleNotFoundError as e:
            top = (e.name or "").split(".")[0]
            (failed if top in hidden and top not in optional else skipped)[label] = str(e)
        except SystemExit as e:
            if e.code and not exit_ok:
                failed[label] = f"exit {e.code}"
        except Exception as e:
            failed[label] = f"{type(e).__name__}: {e}"

    for m in pkgutil.walk_packages(uta_bench.__path__, "uta_bench.", onerror=lambda n: None):
        if not m.name.startswith("uta_bench.__main__"):
            attempt(m.name, lambda: importlib.import_module(m.name))
    # the cheap real paths that import lazily
    def meta():
        from uta_bench.data.imagenet_meta import imagenet_wnids, subset_indices
        from uta_bench.data.classes import classnames
        from uta_bench.zeroshot.prompts import templates
        imagenet_wnids(); subset_indices("clip_benchmark:imagenet-a"); subset_indices("clip_benchmark:imagenet-r")
        classnames("clip_benchmark:imagenet1k"); templates("clip_benchmark:imagenet1k")
    attempt("imagenet metadata", meta)
    from uta_bench.cli.main import main
    tmp = sys.argv[2]
    must_pass = (["tasks"], ["models"], ["table", "--paper", "--format", "markdown"], ["info"], ["--help"],
                 ["results"], ["plot", "masks", "--n", "16", "--out", f"{tmp}/masks.png"])
    for argv in must_pass:
        attempt("uta-bench " + " ".join(argv), lambda: main(argv))
    # error paths (a one-line error and exit 1/2 is the expected outcome; an ImportError is not)
    for argv in (["data", "check", "imagenet1k", "--data-root", f"{tmp}/none"], ["compare", "run_a", "run_b"],
                 ["data", "check", "sample_photos", "--no-hash"]):
        attempt("uta-bench " + " ".join(argv), lambda: main(argv), exit_ok=True)
    print(json.dumps({"skipped": skipped, "failed": failed, "hidden_hits": sorted(set(hits))}))
""")

# packages that only an extra (or scripts/build_mmcv.sh, for mmcv) installs: a module needing one of them
# may be skipped when that extra is not installed
OPTIONAL_MODULES = {"mmcv", "mmdet", "mmseg", "mmengine", "lvis", "psycopg", "pyarrow", "pycocotools",
                    "skimage", "transformers", "gguf", "accelerate"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> tuple[list[Requirement], dict[str, list[Requirement]]]:
    """uta-bench's requirements: from the checkout's pyproject.toml when importing from a checkout,
    else from the installed distribution's metadata."""
    from uta_bench.paths import checkout_root

    root = checkout_root()
    if root is not None:
        import tomllib

        proj = tomllib.loads((root / "pyproject.toml").read_text())["project"]
        return ([Requirement(r) for r in proj["dependencies"]],
                {e: [Requirement(r) for r in rs] for e, rs in proj["optional-dependencies"].items()})
    core, extras = [], {}
    for raw in metadata.requires("uta-bench") or []:
        r = Requirement(raw)
        m = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", str(r.marker or ""))
        r.marker = None
        (extras.setdefault(m.group(1), []) if m else core).append(r)
    return core, extras


def _installed(name: str) -> bool:
    try:
        metadata.distribution(name)
        return True
    except metadata.PackageNotFoundError:
        return False


def _closure(reqs: list[Requirement], extras: dict[str, list[Requirement]]) -> set[str]:
    """Normalised names of the installed distributions that ``reqs`` pull in, transitively."""
    seen: set[str] = set()
    todo = list(reqs)
    while todo:
        r = todo.pop()
        if _norm(r.name) == "uta-bench":          # self-reference: uta-bench[coco,samples]
            for e in r.extras:
                todo.extend(extras.get(e, []))
            continue
        if r.marker is not None and not r.marker.evaluate({"extra": ""}):
            continue
        if _norm(r.name) in seen or not _installed(r.name):
            continue
        seen.add(_norm(r.name))
        for raw in metadata.requires(r.name) or []:
            sub = Requirement(raw)
            env_extras = [""] + sorted(r.extras)
            if sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in env_extras):
                sub.marker = None
                todo.append(sub)
    return seen


def _installed_runtime_extras(extras: dict[str, list[Requirement]]) -> list[str]:
    def ok(e, depth=0):
        for r in extras[e]:
            if _norm(r.name) == "uta-bench":
                if depth > 3 or not all(ok(x, depth + 1) for x in r.extras if x in extras):
                    return False
            elif not _installed(r.name):
                return False
        return True
    return [e for e in extras if e not in TEST_ONLY_EXTRAS and ok(e)]


def allowed_distributions() -> tuple[set[str], list[str]]:
    core, extras = _declared()
    installed = _installed_runtime_extras(extras)
    return _closure(core + [r for e in installed for r in extras[e]], extras) | {"uta-bench"}, installed


def hidden_modules(allowed: set[str]) -> list[str]:
    """Installed top-level modules that no allowed distribution provides (stdlib and uta_bench excluded)."""
    return sorted(mod for mod, owners in metadata.packages_distributions().items()
                  if mod not in sys.stdlib_module_names and mod != "uta_bench"
                  and not {_norm(d) for d in owners} & allowed)


def probe(hidden: list[str], tmp: Path) -> dict:
    _, extras = _declared()
    extra_dists = {_norm(r.name) for e, rs in extras.items() if e not in TEST_ONLY_EXTRAS for r in rs}
    optional = sorted(OPTIONAL_MODULES | {m for m, owners in metadata.packages_distributions().items()
                                          if {_norm(d) for d in owners} & extra_dists})
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "120", "MPLBACKEND": "Agg",
           "UTA_BENCH_STORE": str(tmp / "store.sqlite"), "UTA_BENCH_HOME": str(tmp / "home")}
    r = subprocess.run([sys.executable, "-c", PROBE, json.dumps(hidden), str(tmp), json.dumps(optional)], capture_output=True,
                       text=True, env=env, timeout=900, cwd=tmp)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("scope", ["core", "installed extras"])
def test_runtime_imports_are_declared(scope, tmp_path):
    """With only what uta-bench requires visible -- its core requirements (what `pip install uta-bench`
    gives), then core + the runtime extras installed here -- every module imports (or is skipped for a
    missing optional package) and the cheap CLI paths work."""
    if scope == "core":
        core, extras = _declared()
        allowed, installed = _closure(core, extras) | {"uta-bench"}, []
    else:
        allowed, installed = allowed_distributions()
    found = probe(hidden_modules(allowed), tmp_path)
    assert not found["failed"], (f"needs packages uta-bench does not require (core + extras {installed}), "
                                 f"or failed: {found['failed']}")
    for name, err in found["skipped"].items():   # only for a package an extra (not visible here) provides
        missing = err.split("'")[1].split(".")[0] if "'" in err else err
        assert missing in OPTIONAL_MODULES, f"{name}: {err}; no extra of uta-bench declares it"


def test_checker_hides_what_is_not_required():
    """The checker itself, for a core-only install: clip_benchmark (the tests' oracle), `requests` (what
    its dataset builder imports) and pytest are hidden from the probe; what uta-bench requires is not."""
    core, extras = _declared()
    hidden = hidden_modules(_closure(core, extras) | {"uta-bench"})
    assert "_pytest" in hidden and "torch" not in hidden and "yaml" not in hidden and "timm" not in hidden
    for mod in ("requests", "clip_benchmark"):
        if mod in metadata.packages_distributions():
            assert mod in hidden
