"""Optional dependencies: import one, or stop with a one-line error naming the extra that installs it."""
from __future__ import annotations

import importlib

from uta_bench.errors import UtaBenchError

# module -> (distribution, extra of uta-bench that installs it)
EXTRAS = {
    "pyarrow": ("pyarrow", "parquet"),
    "pycocotools": ("pycocotools", "coco"),
    "skimage": ("scikit-image", "samples"),
    "psycopg": ("psycopg", "postgres"),
}


class MissingExtraError(UtaBenchError):
    """An optional package is not installed."""


def require(module: str, what: str):
    """Import ``module`` (e.g. ``"skimage.data"``) for ``what`` (e.g. "the sample photos"), or raise a
    one-line :class:`MissingExtraError` saying which ``pip install 'uta-bench[extra]'`` provides it."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        top = module.split(".")[0]
        if e.name is None or e.name.split(".")[0] != top or top not in EXTRAS:
            raise
        dist, extra = EXTRAS[top]
        raise MissingExtraError(f"{what} needs {dist}, which is not installed: "
                                f"pip install 'uta-bench[{extra}]'") from e
