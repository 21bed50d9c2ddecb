"""Load and validate the paper rows (results/paper/*.csv)."""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from uta_bench.errors import UtaBenchError

PAPER_TABLES = ("1", "2", "3", "4", "5", "6", "7", "8a", "8b")
FIELDS = ("source", "paper_table", "paper_row", "method", "model", "size", "patch", "resolution", "it_pairs",
          "params", "config", "column", "task", "metric", "value", "unit", "note")
UNITS = ("%", "px", "M", "x")


def paper_dir() -> Path:
    """``$UTA_BENCH_PAPER_DIR`` or ``results/paper`` of the checkout."""
    env = os.environ.get("UTA_BENCH_PAPER_DIR")
    if env:
        return Path(env)
    from uta_bench.paths import repo_root

    root = repo_root()
    if root is None:
        raise UtaBenchError("paper rows not found: set UTA_BENCH_PAPER_DIR to the results/paper directory")
    return root / "results" / "paper"


def _validate(df, path: Path) -> None:
    missing = [f for f in FIELDS if f not in df.columns]
    if missing:
        raise UtaBenchError(f"paper rows {path}: column '{missing[0]}' is missing")
    bad = df[~df.unit.isin(UNITS)]
    if len(bad):
        raise UtaBenchError(f"paper rows {path}: unknown unit {bad.unit.iloc[0]!r} (use one of {', '.join(UNITS)})")
    if df.value.isna().any():
        raise UtaBenchError(f"paper rows {path}: a row has no value (cells printed as '-' get no row)")
    pct = df[df.unit == "%"]
    if ((pct.value < 0) | (pct.value > 1)).any():
        raise UtaBenchError(f"paper rows {path}: percentages must be fractions in [0, 1]")
    dup = df.duplicated(["paper_table", "paper_row", "column"])
    if dup.any():
        r = df[dup].iloc[0]
        raise UtaBenchError(f"paper rows {path}: cell ({r.paper_row!r}, {r.column!r}) appears twice")


@lru_cache(maxsize=4)
def _load(directory: str):
    import pandas as pd

    d = Path(directory)
    frames = []
    for t in PAPER_TABLES:
        path = d / f"table{t}.csv"
        if not path.is_file():
            raise UtaBenchError(f"paper rows: {path} is missing")
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
        df["value"] = pd.to_numeric(df["value"], errors="coerce")
        _validate(df, path)
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def load_paper_rows(table: str | None = None, directory: str | os.PathLike | None = None):
    """All paper rows (a pandas DataFrame, file order kept), optionally one table only."""
    df = _load(str(directory or paper_dir())).copy()
    if table is not None:
        table = str(table)
        if table not in PAPER_TABLES:
            raise UtaBenchError(f"unknown paper table {table!r}; choose from {', '.join(PAPER_TABLES)}")
        df = df[df.paper_table == table].reset_index(drop=True)
    return df


def format_value(value: float, unit: str, note: str = "") -> str:
    """The paper's printed text for a value (``0.77``/% -> ``77.0``; ``0.001``/% with the ddagger note
    -> ``0.1 ‡``; 86e6/M -> ``86M``; 224/px -> ``224``; 0.6/x -> ``0.6×``)."""
    if unit == "%":
        s = f"{value * 100:.1f}"
    elif unit == "px":
        s = f"{value:.0f}"
    elif unit == "M":
        s = f"{value / 1e6:.0f}M"
    elif unit == "x":
        s = f"{value:.1f}×"
    else:
        s = f"{value:g}"
    if note.startswith("ddagger"):
        s += " ‡"
    return s
