"""A paper table as a grid of printed cells, optionally with our measured rows under the paper's.

``build_grid(table)`` reproduces the paper's cells from the paper rows. With ``comparison`` (from
:func:`uta_bench.paper.mapping.paper_comparison`) each paper row matched by a model is followed by
an ``ours`` line (value and 95% CI, in the paper's units) and a ``delta`` line (ours - paper, in
points); cells we have not measured print as ``missing``. Models with rows for the table's tasks
but no paper row are listed at the end without deltas.
"""
from __future__ import annotations

from dataclasses import dataclass, field

MISSING = "missing"


@dataclass
class Grid:
    table: str
    title: str
    header: list                 # header lines of (text, colspan)
    n_stubs: int
    rows: list = field(default_factory=list)    # (kind, [cell text]) with kind paper|ours|delta
    notes: list = field(default_factory=list)
    # parallel to ``rows``: None for a paper line; for ours/delta lines one record per data column (None
    # where not measured) with the comparison's fields (run_id, model, task, metric, value, ci, delta),
    # so renderers can attach provenance and colour deltas without parsing cell text
    meta: list = field(default_factory=list)

    def add(self, kind: str, cells: list, meta: list | None = None) -> None:
        self.rows.append((kind, cells))
        self.meta.append(meta)

    @property
    def flat_columns(self) -> list[str]:
        """One name per column (header levels joined by ' / '), for CSV/markdown."""
        n = sum(span for _, span in self.header[0])
        names = [[] for _ in range(n)]
        for line in self.header:
            i = 0
            for text, span in line:
                for k in range(i, i + span):
                    if text:
                        names[k].append(text)
                i += span
        return [" / ".join(p) for p in names]


def _fmt_pct(v: float) -> str:
    return f"{v * 100:.1f}"


def _ours_cell(rec, unit: str) -> str:
    if unit != "%":
        from uta_bench.paper.rows import format_value

        return format_value(rec["value"], unit)
    s = _fmt_pct(rec["value"])
    if rec.get("ci_low") is not None and rec.get("ci_high") is not None:
        s += f" [{_fmt_pct(rec['ci_low'])}, {_fmt_pct(rec['ci_high'])}]"
    return s


def _delta_cell(d) -> str:
    return "" if d is None else f"{d * 100:+.1f}"


def build_grid(table: str, comparison=None, paper=None) -> Grid:
    from uta_bench.paper.layouts import get_layout
    from uta_bench.paper.rows import format_value, load_paper_rows

    lay = get_layout(table)
    paper = load_paper_rows(lay.table) if paper is None else paper[paper.paper_table == lay.table]
    grid = Grid(lay.table, lay.title, lay.header_rows(), len(lay.stubs))
    units = dict(zip(paper.column, paper.unit))
    comp = None
    if comparison is not None and len(comparison):
        comp = comparison[comparison.paper_table == lay.table]
    for label, cells in paper.groupby("paper_row", sort=False):
        attrs = cells.iloc[0].to_dict()
        by_col = {c.column: c for c in cells.itertuples()}
        stub = [fn(attrs) for _, fn in lay.stubs]
        vals = [format_value(by_col[c].value, by_col[c].unit, by_col[c].note) if c in by_col else "-"
                for c in lay.columns]
        grid.add("paper", stub + vals)
        if comp is not None:
            for model, recs in comp[comp.paper_row == label].groupby("model", sort=False):
                _add_ours(grid, lay, model, recs, units, paper_vals={c: by_col[c].value for c in by_col})
    if comp is not None:
        for model, recs in comp[comp.paper_row.isna()].groupby("model", sort=False):
            _add_ours(grid, lay, model, recs, units, paper_vals=None)
            grid.notes.append(f"{model}: no paper row in Table {lay.table} (its model card declares none)")
    return grid


def _add_ours(grid: Grid, lay, model: str, recs, units: dict, paper_vals: dict | None) -> None:
    by_col = {r["column"]: r for r in recs.to_dict("records")}
    if lay.average:
        avg_col, members = lay.average
        if all(m in by_col for m in members):      # derived from our six numbers, never from the paper's
            v = sum(by_col[m]["value"] for m in members) / len(members)
            pv = (paper_vals or {}).get(avg_col)
            by_col[avg_col] = dict(value=v, ci_low=None, ci_high=None, delta=None if pv is None else v - pv,
                                   model=model, derived_from=[by_col[m] for m in members])
        else:
            by_col.pop(avg_col, None)
    runs = sorted({str(r.get("run_id")) for r in by_col.values() if r.get("run_id")})
    stub = [f"↳ ours: {model}"] + ([f"run {', '.join(runs)}"] if grid.n_stubs > 1 else [])
    stub += [""] * (grid.n_stubs - len(stub))
    # input sizes, parameter counts and FLOPs are settings, not measurements: blank, not "missing"
    cells = [_ours_cell(by_col[c], units.get(c, "%")) if c in by_col else
             (MISSING if units.get(c, "%") == "%" else "") for c in lay.columns]
    meta = [by_col.get(c) for c in lay.columns]
    grid.add("ours", stub[:grid.n_stubs] + cells, meta)
    if paper_vals is not None:
        deltas = [_delta_cell(by_col[c].get("delta")) if c in by_col else "" for c in lay.columns]
        grid.add("delta", ["↳ Δ (points)"] + [""] * (grid.n_stubs - 1) + deltas, meta)


def paper_tables_with_runs(comparison) -> list[str]:
    """Tables in which the comparison has at least one record."""
    from uta_bench.paper.rows import PAPER_TABLES

    have = set(comparison.paper_table) if comparison is not None and len(comparison) else set()
    return [t for t in PAPER_TABLES if t in have]
