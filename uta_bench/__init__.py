"""uta-bench: evaluation and benchmarking harness for UTA checkpoints.

Importing the package is cheap (no torch); heavy modules load on first use.
"""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "load_model", "list_models", "get_card"]


def __getattr__(name):  # PEP 562 lazy attributes keep `uta-bench --help` free of torch
    if name == "load_model":
        from uta_bench.models.loader import load_model
        return load_model
    if name in ("list_models", "get_card"):
        from uta_bench import registry
        return getattr(registry, name)
    raise AttributeError(name)
