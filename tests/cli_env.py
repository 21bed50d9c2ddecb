"""Environment for the uta-bench CLI run in a subprocess: the same ``uta_bench`` this test process imports.

In CI that is the installed wheel (site-packages), in a checkout the working tree; a hard-coded checkout path
would make CI's subprocess tests run the checkout's code instead of the package under test."""
from __future__ import annotations

import os
from pathlib import Path


def cli_env(**extra: str) -> dict:
    import uta_bench

    root = Path(uta_bench.__file__).resolve().parents[1]
    return {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1", **extra}
