"""Build hook: ship the top-level task cards, recipes and paper rows inside the wheel.

``tasks/``, ``recipes/`` and ``results/paper/`` stay the source of truth in the checkout; at build time
they are copied to ``uta_bench/_data/`` in the wheel, where :func:`uta_bench.paths.repo_root` finds them
when the package is not run from a checkout. Everything else is in pyproject.toml.
"""
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

PACKAGE_DATA = ("tasks", "recipes", "results/paper")   # keep in sync with uta_bench.paths.PACKAGE_DATA
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", "*.sqlite", "*.sqlite-*")


class build_py_with_data(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):   # an editable install reads the checkout directly
            return
        here = Path(__file__).resolve().parent
        for rel in PACKAGE_DATA:
            src = here / rel
            if not src.is_dir():
                raise SystemExit(f"setup.py: {src} is missing; build from a full checkout or sdist")
            dst = Path(self.build_lib) / "uta_bench" / "_data" / rel
            if dst.exists():
                shutil.rmtree(dst)
            shutil.copytree(src, dst, ignore=SKIP)


setup(cmdclass={"build_py": build_py_with_data})
