"""Rendering the paper rows reproduces the paper's tables cell for cell; all output formats parse back.

The independent source is the paper's own tab-separated table text (tests/data/paper_tables.tsv, a
verbatim copy of the lines of the shared paper; checked against the paper when it is present).
"""
from __future__ import annotations

import csv
import io
from html.parser import HTMLParser
from pathlib import Path

import pytest

from uta_bench.paper.grid import build_grid
from uta_bench.paper.render import render

DATA = Path(__file__).parent / "data" / "paper_tables.tsv"
PAPER_MD = Path("/work/shared/paper/uta_paper.md")
N_HEADER = {"1": 1, "2": 3, "3": 1, "4": 2, "5": 2, "6": 2, "7": 2, "8": 2}


def paper_blocks() -> dict[str, list[list[str]]]:
    blocks, cur = {}, None
    for line in DATA.read_text().splitlines():
        if line.startswith("# Table "):
            cur = blocks.setdefault(line.split()[2], [])
        elif cur is not None and "\t" in line:
            cur.append(line.split("\t"))
    return blocks


def normalise(cell: str) -> str:
    return cell.replace(" \\dagger", " †").replace(" \\ddagger", " ‡").replace(" ^{", " ").replace("}", "")


def expand(header_line):
    out = []
    for text, span in header_line:
        out += [text] + [""] * (span - 1)
    return out


def grid_lines(table: str):
    """(header lines, body lines) as lists of printed cells; Table 8 = 8a | 8b side by side."""
    if table != "8":
        g = build_grid(table)
        return [expand(h) for h in g.header], [cells for _, cells in g.rows]
    a, b = build_grid("8a"), build_grid("8b")
    head = [expand(ha) + expand(hb) for ha, hb in zip(a.header, b.header)]
    width_b = len(expand(b.header[0]))
    body = [ra + (b.rows[i][1] if i < len(b.rows) else [""] * width_b) for i, (_, ra) in enumerate(a.rows)]
    return head, body


def test_fixture_is_verbatim_from_the_paper():
    if not PAPER_MD.is_file():
        pytest.skip("shared paper text not present on this machine")
    paper_lines = set(PAPER_MD.read_text().splitlines())
    for line in DATA.read_text().splitlines():
        if "\t" in line:
            assert line in paper_lines, line


@pytest.mark.parametrize("table", ["1", "2"])
def test_table_1_and_2_reproduce_the_paper_cell_for_cell(table):
    block = paper_blocks()[table]
    n = N_HEADER[table]
    head, body = grid_lines(table)
    assert head == block[:n]                       # header lines incl. column groups, exactly
    assert body == block[n:]                       # every printed number, exactly, in the paper's order
    assert len(body) == {"1": 19, "2": 15}[table]


@pytest.mark.parametrize("table", ["3", "4", "5", "6", "7", "8"])
def test_other_tables_reproduce_the_paper_body(table):
    block = paper_blocks()[table]
    n = N_HEADER[table]
    head, body = grid_lines(table)
    assert body == [[normalise(c) for c in row] for row in block[n:]]
    assert [[normalise(c) for c in h] for h in head] == [[normalise(c) for c in h] for h in block[:n]]


def test_csv_output_parses_back_to_the_grid():
    g = build_grid("2")
    rows = list(csv.reader(io.StringIO(render([g], "csv"))))
    assert rows[0][:2] == ["table", "kind"] and rows[0][2:] == g.flat_columns
    assert [r[2:] for r in rows[1:]] == [cells for _, cells in g.rows]
    assert rows[0][5] == "Text Retrieval / Flickr30k / R@1" and rows[1][5] == "81.9"


def test_markdown_has_one_line_per_row():
    md = render([build_grid("1")], "markdown").splitlines()
    table = [ln for ln in md if ln.startswith("|")]
    assert len(table) == 2 + 19
    assert table[-1] == "| UTA | g/14@336 | 3B | 83.9 | 87.5 | 94.5 | 76.9 | 71.6 | 81.9 | 82.7 |"


def test_latex_is_booktabs_with_column_groups():
    tex = render([build_grid("2"), build_grid("4")], "latex")
    assert tex.count(r"\toprule") == 2 and tex.count(r"\bottomrule") == 2 and tex.count(r"\midrule") == 2
    assert r"\multicolumn{6}{c}{Text Retrieval}" in tex and r"\cmidrule(lr){4-9}" in tex
    assert r"UTA $^\dagger$ & B & 86M & 224 & 77.0 & 87.4 & 512 & 55.1 \\" in tex
    assert r"0.1 $^\ddagger$" in tex
    # every body line has as many cells as columns
    body = [ln for ln in tex.splitlines() if ln.endswith(r"\\") and "multicolumn" not in ln]
    assert all(ln.count(" & ") in (14, 7) for ln in body)


class _Cells(HTMLParser):
    def __init__(self):
        super().__init__()
        self.rows, self._row, self._in = [], None, False

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._in = True
            self._row.append(("", int(dict(attrs).get("colspan", 1))))

    def handle_endtag(self, tag):
        if tag == "tr":
            self.rows.append(self._row)
        elif tag in ("td", "th"):
            self._in = False

    def handle_data(self, data):
        if self._in:
            t, s = self._row[-1]
            self._row[-1] = (t + data, s)


def test_html_parses_back_to_the_paper_table():
    p = _Cells()
    p.feed(render([build_grid("2")], "html"))
    block = paper_blocks()["2"]
    assert [expand(r) for r in p.rows] == block


def test_cli_table_paper_writes_each_format(tmp_path):
    from typer.testing import CliRunner

    from uta_bench.cli.main import app, build

    build()
    for fmt, ext in (("markdown", "md"), ("csv", "csv"), ("latex", "tex"), ("html", "html"), ("rich", "txt")):
        out = tmp_path / f"t.{ext}"
        res = CliRunner().invoke(app, ["table", "--paper", "-t", "1", "-t", "8", "--format", fmt, "-o", str(out)])
        assert res.exit_code == 0, res.output
        text = out.read_text()
        assert "83.9" in text and "Block-R" in text
    res = CliRunner().invoke(app, ["table", "--paper", "--format", "pdf"])
    assert res.exit_code != 0
