"""Paper mapping is card data: every declared row exists, and `table --paper --with-runs` puts every
card's measured rows on exactly the row its card declares in every table (or on none)."""
from __future__ import annotations

import pytest

from uta_bench.paper.rows import PAPER_TABLES, load_paper_rows
from uta_bench.registry import cards, get_card
from uta_bench.store import Metric, ResultsStore, RunInfo

PAPER = load_paper_rows()
CARDS = sorted(cards())
# one measurable (%) cell per table: (task, metric, paper column)
PROBE = {}
for _t in PAPER_TABLES:
    _c = PAPER[(PAPER.paper_table == _t) & (PAPER.unit == "%")].iloc[0]
    PROBE[_t] = (_c.task, _c.metric, _c.column)


@pytest.mark.parametrize("name", CARDS)
def test_declared_paper_rows_exist(name):
    card = get_card(name)
    for table, row in (card.paper.rows() if card.paper else {}).items():
        assert table in PAPER_TABLES, f"{name}: unknown paper table {table!r}"
        labels = set(PAPER[PAPER.paper_table == table].paper_row)
        assert row in labels, f"{name}: Table {table} has no row {row!r} (rows: {sorted(labels)})"


def test_rows_from_the_issue():
    from uta_bench.det.evaluate import paper_row as det_row
    from uta_bench.finetune.evaluate import paper_row as ft_row
    from uta_bench.llava.bench import paper_row as llava_row

    # uta_l14_336 is contrastively tuned and 336 px: not Table 5's pre-trained 224 px "UTA L"
    assert det_row("uta_l14_336") is None and det_row("uta_b16") == "UTA † B"
    assert ft_row(get_card("uta_b16")) == "UTA † B"               # the paper's label, with the space
    # Table 3's EVA-02 rows are the MIM models; 336 px CLIP is not LLaVA's 224 px CLIP L/14
    assert llava_row(get_card("eva02_l14")) is None and llava_row(get_card("eva02_b16")) is None
    assert llava_row(get_card("openai_l14_336")) is None and llava_row(get_card("openai_l14")) == "CLIP L/14"
    # the paper's EVA-01-CLIP g/14 (79.3 IN-1K) is the g/14-plus model
    plus = get_card("eva01_g14_plus")
    assert (plus.arch, plus.weights.open_clip_pretrained) == ("EVA01-g-14-plus", "merged2b_s11b_b114k")
    assert plus.paper.t1 == "EVA-01-CLIP g/14@224 11B" and get_card("eva01_g14").paper.rows() == {}
    t1 = PAPER[(PAPER.paper_table == "1") & (PAPER.paper_row == plus.paper.t1) & (PAPER.column == "IN-1K")]
    assert t1.value.iloc[0] == pytest.approx(0.793)
    from uta_bench.pretrain.config import PretrainConfig, load_recipe

    assert PretrainConfig.__dataclass_fields__["teacher"].default == "eva01_g14_plus"
    assert load_recipe("uta_b14").teacher == "eva01_g14_plus"


def test_eva01_plus_text_tower_is_utas():
    import open_clip

    from uta_bench.models.uta import TEXT_CFGS

    text = open_clip.get_model_config("EVA01-g-14-plus")["text_cfg"]
    assert {k: TEXT_CFGS["default"][k] for k in ("width", "layers", "heads")} == \
        {k: text[k] for k in ("width", "layers", "heads")}


def test_every_card_lands_on_its_declared_row_in_every_table(tmp_path):
    """Every card x table: one measured probe cell per table, rendered by `table --paper --with-runs`."""
    from typer.testing import CliRunner

    from uta_bench.cli.main import app, build
    from uta_bench.cli.table import comparison_for

    store = ResultsStore(tmp_path / "s.sqlite")
    for i, name in enumerate(CARDS):
        for t, (task, metric, _col) in PROBE.items():
            run = RunInfo(run_id=f"r{i}_{t}", model=name)
            store.write_task(run, task, [Metric(metric, 0.5, 100, 0.4, 0.6)])
    comp = comparison_for(store.url, None, None)
    build()
    md = tmp_path / "t.md"
    res = CliRunner().invoke(app, ["table", "--paper", "--with-runs", "--store", store.url, "-f", "markdown",
                                   "-o", str(md)])
    assert res.exit_code == 0, res.output
    sections = _sections(md.read_text())
    for name in CARDS:
        card = get_card(name)
        for t, (task, metric, col) in PROBE.items():
            want = card.paper.row(t) if card.paper else None
            rec = comp[(comp.model == name) & (comp.paper_table == t) & (comp.column == col)]
            assert len(rec) == 1, (name, t)
            got = rec.paper_row.iloc[0]
            assert (None if got != got else got) == want, f"{name} Table {t}: {got!r}, card declares {want!r}"
            placed = sections[t].get(name)
            assert placed == (want or "no paper row"), f"{name} Table {t}: rendered under {placed!r}"


def _sections(md: str) -> dict:
    """{table: {model: paper row label it is rendered under, or 'no paper row'}} from the markdown output."""
    import re

    out, table, last = {}, None, None
    for line in md.splitlines():
        m = re.match(r"^\*\*Table (\w+)( \((left|right)\))?:", line)
        if m:
            table, last = m[1] + {"left": "a", "right": "b"}.get(m[3], ""), None
            out[table] = {}
        elif line.startswith("| *↳ ours: "):
            out[table][line.split("*↳ ours: ")[1].split("*")[0]] = last
        elif line.startswith("|") and not line.startswith(("|:", "| *")):
            last = _label(table, [c.strip() for c in line.strip().strip("|").split("|")]) or last
        elif "no paper row in Table" in line:
            out[table][line.split("_note: ")[1].split(":")[0]] = "no paper row"
    return out


def _label(table: str, cells: list[str]) -> str | None:
    """The paper_row whose rendered stub cells (the table layout's) are ``cells``' first ones."""
    from uta_bench.paper.layouts import get_layout

    lay = get_layout(table)
    for label, rows in PAPER[PAPER.paper_table == table].groupby("paper_row", sort=False):
        attrs = rows.iloc[0].to_dict()
        if [str(fn(attrs)) for _, fn in lay.stubs] == cells[:len(lay.stubs)]:
            return label
    return None
