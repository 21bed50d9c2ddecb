"""Render :class:`~uta_bench.paper.grid.Grid` s: rich (terminal), markdown, CSV, LaTeX booktabs, HTML."""
from __future__ import annotations

import csv
import html
import io

from uta_bench.errors import UtaBenchError
from uta_bench.paper.grid import Grid

FORMATS = ("rich", "markdown", "csv", "latex", "html")


def rich_tables(grids: list[Grid]):
    """(rich Table, notes) per grid; ``ours`` lines bold cyan, ``delta`` lines magenta."""
    from rich.table import Table

    for g in grids:
        t = Table(title=g.title, title_justify="left")
        for i, name in enumerate(g.flat_columns):
            t.add_column(name.replace(" / ", "\n"), justify="left" if i < g.n_stubs else "right")
        for kind, cells in g.rows:
            t.add_row(*cells, style={"ours": "bold cyan", "delta": "magenta"}.get(kind))
        yield t, g.notes


def print_rich(grids: list[Grid], console=None) -> None:
    from rich.console import Console

    if console is None:
        console = Console()
        if not console.is_terminal:       # piped / CI logs: do not squeeze 15 columns into 80
            console = Console(width=220)
    for t, notes in rich_tables(grids):
        console.print(t)
        for n in notes:
            console.print(f"[dim]note: {n}[/dim]")


def render_rich(grids: list[Grid], width: int | None = 250) -> str:
    """Plain-text (no colour codes) rich rendering, for files."""
    from rich.console import Console

    console = Console(width=width, force_terminal=False, color_system=None, file=io.StringIO())
    with console.capture() as cap:
        print_rich(grids, console)
    return cap.get()


def _md_escape(s: str) -> str:
    return s.replace("|", "\\|")


def render_markdown(grids: list[Grid]) -> str:
    out = []
    for g in grids:
        out.append(f"**{_md_escape(g.title)}**\n")
        cols = g.flat_columns
        out.append("| " + " | ".join(_md_escape(c) for c in cols) + " |")
        out.append("|" + "|".join(":---" if i < g.n_stubs else "---:" for i in range(len(cols))) + "|")
        for kind, cells in g.rows:
            cells = [f"*{c}*" if kind != "paper" and c else c for c in cells]
            out.append("| " + " | ".join(_md_escape(c) for c in cells) + " |")
        out.extend(f"\n_note: {_md_escape(n)}_" for n in g.notes)
        out.append("")
    return "\n".join(out)


def render_csv(grids: list[Grid]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["table", "kind"] + (grids[0].flat_columns if len(grids) == 1 else ["cells..."]))
    for g in grids:
        if len(grids) > 1:
            w.writerow([g.table, "header"] + g.flat_columns)
        for kind, cells in g.rows:
            w.writerow([g.table, kind] + cells)
    return buf.getvalue()


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
        "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "†": r"$^\dagger$",
        "‡": r"$^\ddagger$", "×": r"$\times$", "Δ": r"$\Delta$", "↳": r"$\hookrightarrow$"}


def tex(s: str) -> str:
    return "".join(_TEX.get(ch, ch) for ch in s)


def render_latex(grids: list[Grid]) -> str:
    """booktabs tables (``\\usepackage{booktabs}``), column groups as ``\\multicolumn`` + ``\\cmidrule``."""
    out = []
    for g in grids:
        ncol = len(g.flat_columns)
        out += [r"\begin{table}[t]", r"\centering", rf"\caption{{{tex(g.title)}}}",
                rf"\begin{{tabular}}{{{'l' * g.n_stubs}{'c' * (ncol - g.n_stubs)}}}", r"\toprule"]
        for li, line in enumerate(g.header):
            cells, rules, col = [], [], 1
            for text, span in line:
                cells.append(rf"\multicolumn{{{span}}}{{c}}{{{tex(text)}}}" if span > 1 else tex(text))
                if span > 1 and li < len(g.header) - 1:
                    rules.append(rf"\cmidrule(lr){{{col}-{col + span - 1}}}")
                col += span
            out.append(" & ".join(cells) + r" \\")
            if rules:
                out.append(" ".join(rules))
        out.append(r"\midrule")
        for kind, cells in g.rows:
            row = [tex(c) for c in cells]
            if kind != "paper":
                row = [rf"\textit{{{c}}}" if c else c for c in row]
            out.append(" & ".join(row) + r" \\")
        out += [r"\bottomrule", r"\end{tabular}"]
        out += [rf"\par\footnotesize{{{tex(n)}}}" for n in g.notes]
        out += [r"\end{table}", ""]
    return "\n".join(out)


def render_html(grids: list[Grid]) -> str:
    out = ["<!DOCTYPE html>", '<html><head><meta charset="utf-8"><title>uta-bench paper tables</title>',
           "<style>table{border-collapse:collapse;margin:1em 0}th,td{padding:2px 8px}"
           "thead tr:last-child th{border-bottom:1px solid #000}table{border-top:2px solid #000;"
           "border-bottom:2px solid #000}td.num{text-align:right}tr.ours{color:#036}tr.delta{color:#804}"
           "</style></head><body>"]
    for g in grids:
        out.append(f"<table><caption>{html.escape(g.title)}</caption><thead>")
        for line in g.header:
            out.append("<tr>" + "".join(f'<th colspan="{s}">{html.escape(t)}</th>' if s > 1 else
                                        f"<th>{html.escape(t)}</th>" for t, s in line) + "</tr>")
        out.append("</thead><tbody>")
        for kind, cells in g.rows:
            tds = "".join(f"<td>{html.escape(c)}</td>" if i < g.n_stubs else f'<td class="num">{html.escape(c)}</td>'
                          for i, c in enumerate(cells))
            out.append(f'<tr class="{kind}">{tds}</tr>')
        out.append("</tbody></table>")
        out += [f"<p><small>{html.escape(n)}</small></p>" for n in g.notes]
    out.append("</body></html>")
    return "\n".join(out)


def render(grids: list[Grid], fmt: str = "rich") -> str:
    if fmt not in FORMATS:
        raise UtaBenchError(f"unknown table format {fmt!r}; choose from {', '.join(FORMATS)}")
    if not grids:
        raise UtaBenchError("no table to render")
    return {"rich": render_rich, "markdown": render_markdown, "csv": render_csv, "latex": render_latex,
            "html": render_html}[fmt](grids)
