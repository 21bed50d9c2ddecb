"""Which paper cell a measured row corresponds to (model card ``PaperRef`` + task card ``paper``).

The row comes from data only: the row a writer stored (``paper_row``), else the row the model card
declares for that table (:func:`card_paper_row`); nothing is derived from labels or descriptions.

See the package docstring for the task/metric names. :func:`paper_comparison` joins the latest
measured rows with the paper rows: one record per (model, paper table, paper cell) with the paper
value, our value, its 95% CI and delta; measured rows without a paper row are kept with
``paper_row = None`` (rendered as "no paper row", never matched to a guess).
"""
from __future__ import annotations

import logging

log = logging.getLogger(__name__)

from uta_bench.metricnames import METRIC_ALIASES, canonical_metric  # noqa: F401 - the one alias map


# Table 4's rows that are Table 1 models (their ImageNet ZS equals Table 1's IN-1K; checked by
# tests/test_paper_rows.py::test_table4_zero_shot_equals_table1). A paper fact for the tests; cards
# declare their Table 4 row themselves.
T1_TO_T4 = {"CLIP B/16@224 13B": "CLIP B", "UTA B/14@224 0B": "UTA B", "UTA B/16@224 2B": "UTA † B",
            "CLIP L/14@224 13B": "CLIP L", "UTA L/14@224 0B": "UTA L", "EVA-01-CLIP g/14@224 11B": "EVA-01-CLIP g"}


def _card_paper_tasks(task: str, paper, cards) -> set[str]:
    """Paper task names a measured task stands for: itself, plus its card's ``paper: {table, column}``."""
    out = {task}
    card = cards.get(task)
    ref = (card.paper or {}) if card is not None else {}
    if ref.get("table") is not None and ref.get("column"):
        t, col = str(ref["table"]), str(ref["column"])
        sub = paper[paper.paper_table == t]
        hit = sub[sub.column.map(lambda c: c == col or col in c.split("/"))]
        out.update(hit.task.unique())
    return out


def card_paper_row(model, table: str, overrides: dict | None = None) -> str | None:
    """The paper row a model IS in ``table``, as its card declares it (:class:`~uta_bench.modelcard.PaperRef`);
    None for no row, an unknown model or a card without paper rows. ``model`` is a name (``overrides``
    maps names to a PaperRef to use instead) or a ModelCard. The only place a model meets a paper row."""
    if isinstance(model, str):
        ref = (overrides or {}).get(model) if model in (overrides or {}) else _card_ref(model)
    else:
        ref = getattr(model, "paper", None)
    return None if ref is None else ref.row(str(table))


def _card_ref(model: str):
    from uta_bench.errors import UtaBenchError
    from uta_bench.registry import get_card, is_spec

    if is_spec(model):                   # cards made on the fly declare no paper row (and fetch nothing here)
        return None
    try:
        return get_card(model).paper
    except UtaBenchError:
        return None


def paper_comparison(measured, paper=None, tables=None, refs: dict | None = None):
    """Join measured rows (latest per model/task/metric) with paper cells.

    ``refs`` maps a measured model name to a PaperRef to use instead of its card's (e.g. a
    checkpoint registered under a test model gated against the UTA-B row). Returns a DataFrame with
    columns model, run_id, paper_table, paper_row, column, task, metric, paper_value, value, ci_low,
    ci_high, n, delta (value - paper_value; None without a paper row or value).
    """
    import pandas as pd

    from uta_bench.paper.rows import PAPER_TABLES, load_paper_rows
    from uta_bench.taskcards import all_cards

    paper = load_paper_rows() if paper is None else paper
    tables = [str(t) for t in (tables or PAPER_TABLES)]
    # measured rows that name their paper cell (store columns paper_table / paper_row) land only there
    refs = refs or {}
    try:
        cards = all_cards()
    except Exception as e:  # noqa: BLE001 - a broken card elsewhere must not hide the table
        log.warning("task cards unreadable (%s); measured rows map by task name only", e)
        cards = {}
    cols = ["model", "run_id", "paper_table", "paper_row", "column", "task", "metric", "paper_value", "value",
            "ci_low", "ci_high", "n", "delta"]
    out = []
    if measured is None or len(measured) == 0:
        return pd.DataFrame(out, columns=cols)
    for r in measured.itertuples(index=False):
        metric = canonical_metric(str(r.metric))
        tasks = _card_paper_tasks(str(r.task), paper, cards)
        for t in tables:
            cells = paper[(paper.paper_table == t) & paper.task.isin(tasks) & (paper.metric == metric)]
            if cells.empty:
                continue
            row = None
            own = getattr(r, "paper_row", None)
            own = own if isinstance(own, str) and own else None
            if own is not None and str(getattr(r, "paper_table", None)) != t:
                continue      # a row written for one paper cell (e.g. an ablation) stays out of other tables
            if own is not None and (cells.paper_row == own).any():
                row = own
            else:
                row = card_paper_row(str(r.model), t, refs)
                row = row if row is not None and (paper[paper.paper_table == t].paper_row == row).any() else None
            for column in cells.column.unique():
                pv = None
                if row is not None:
                    hit = cells[(cells.paper_row == row) & (cells.column == column)]
                    pv = float(hit.value.iloc[0]) if len(hit) else None
                ci_lo = getattr(r, "ci_low", None)
                ci_hi = getattr(r, "ci_high", None)
                out.append(dict(model=r.model, run_id=r.run_id, paper_table=t, paper_row=row, column=column,
                                task=r.task, metric=r.metric, paper_value=pv, value=float(r.value),
                                ci_low=None if ci_lo is None or ci_lo != ci_lo else float(ci_lo),
                                ci_high=None if ci_hi is None or ci_hi != ci_hi else float(ci_hi),
                                n=_int_or_none(getattr(r, "n", None)),
                                delta=None if pv is None else float(r.value) - pv))
    df = pd.DataFrame(out, columns=cols)
    # one value per (model, table, row, column): rows come in store order, keep the latest
    return df.drop_duplicates(["model", "paper_table", "paper_row", "column"], keep="last").reset_index(drop=True)


def _int_or_none(v):
    return None if v is None or v != v else int(v)


def latest_measured(store, models=None):
    """Latest measured row per (model, task, metric, paper cell named by the row) for the given
    models (all when None): an ablation row naming its Table 8 cell does not hide the zero-shot run.
    (:meth:`uta_bench.store.ResultsStore.latest`, the store's one "latest rows" query.)"""
    return store.latest(models=models)


def paper_cells(model: str, task: str, metric: str, ref=None) -> list[tuple[str, str, str]]:
    """The paper cells ``(table, paper_row, column)`` a measured (model, task, metric) lands in, e.g.
    ``paper_cells("uta_b16", "imagenet1k", "top1")`` -> ``[("1", "UTA B/16@224 2B", "IN-1K"),
    ("4", "UTA † B", "ImageNet/ZS")]``. For writers that want to store ``paper_row`` with their rows."""
    import pandas as pd

    one = pd.DataFrame([dict(model=model, run_id="", task=task, metric=metric, value=0.0, n=None, ci_low=None,
                             ci_high=None, paper_table=None, paper_row=None)])
    comp = paper_comparison(one, refs={model: ref} if ref is not None else None)
    comp = comp[comp.paper_row.notna()]
    return [(r.paper_table, r.paper_row, r.column) for r in comp.itertuples()]
