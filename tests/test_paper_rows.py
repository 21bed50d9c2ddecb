"""Paper rows (results/paper/*.csv) cross-checked against what the paper itself implies."""
from __future__ import annotations

import pytest

from uta_bench.paper.rows import PAPER_TABLES, load_paper_rows

SIX = ["IN-1K", "IN-A", "IN-R", "IN-V2", "IN-S", "ObjectNet"]


def cell(table, row, column) -> float:
    df = load_paper_rows(table)
    hit = df[(df.paper_row == row) & (df.column == column)]
    assert len(hit) == 1, (table, row, column)
    return round(float(hit.value.iloc[0]) * 100, 4)


def test_every_table_loads_with_expected_cell_counts():
    df = load_paper_rows()
    counts = df.groupby("paper_table").size().to_dict()
    # rows x printed numbers, minus the cells the paper prints as "-"
    assert counts == {"1": 19 * 7, "2": 15 * 12, "3": 8 * 4, "4": 12 * 6 - 8, "5": 8 * 5, "6": 4 * 8 - 1,
                      "7": 2 * 6, "8a": 4 * 6, "8b": 3 * 5}
    assert set(df.paper_table) == set(PAPER_TABLES)
    assert (df.source == "paper").all()


def test_table1_average_is_mean_of_six():
    p = load_paper_rows("1").pivot(index="paper_row", columns="column", values="value") * 100
    assert len(p) == 19
    diff = (p["Average"] - p[SIX].mean(axis=1)).abs()
    assert diff.max() <= 0.1 + 1e-9, diff.sort_values().tail(3)


def test_table1_row_attributes_parse_the_model_label():
    df = load_paper_rows("1").drop_duplicates("paper_row")
    for r in df.itertuples():
        assert r.model == f"{r.size}/{r.patch}@{r.resolution}"
        assert r.paper_row == f"{r.method} {r.model} {r.it_pairs}"


def test_table2_rows_exist_in_table1():
    t1 = load_paper_rows("1").drop_duplicates("paper_row")
    keys1 = set(zip(t1.method, t1["size"], t1.it_pairs))
    t2 = load_paper_rows("2").drop_duplicates("paper_row")
    missing = [r.paper_row for r in t2.itertuples() if (r.method, r.model, r.it_pairs) not in keys1]
    # Open-CLIP L is "32B" in Table 1 but "34B" in Table 2 (the paper's own inconsistency)
    assert missing == ["Open-CLIP L 34B"]


@pytest.mark.parametrize("t4_row,t1_row", [
    ("CLIP B", "CLIP B/16@224 13B"), ("UTA B", "UTA B/14@224 0B"), ("UTA † B", "UTA B/16@224 2B"),
    ("CLIP L", "CLIP L/14@224 13B"), ("UTA L", "UTA L/14@224 0B"), ("EVA-01-CLIP g", "EVA-01-CLIP g/14@224 11B"),
])
def test_table4_zero_shot_equals_table1(t4_row, t1_row):
    from uta_bench.paper.mapping import T1_TO_T4

    assert cell("4", t4_row, "ImageNet/ZS") == cell("1", t1_row, "IN-1K")
    assert T1_TO_T4[t1_row] == t4_row


def test_table7_teacher_zero_shot_equals_table1():
    assert cell("7", "CLIP-L/14", "ImageNet ZS") == cell("1", "CLIP L/14@224 13B", "IN-1K")
    assert cell("7", "EVA-01-CLIP-g/14", "ImageNet ZS") == cell("1", "EVA-01-CLIP g/14@224 11B", "IN-1K")


SHARED = ["ImageNet/ZS", "ImageNet/FT", "COCO/AP box", "COCO/AP mask", "ADE20K mIoU"]


def test_ablation_rows_that_describe_the_same_model_agree():
    # default ablation model (EVA-01-CLIP-g teacher, mask ratio 0.4) appears in Tables 6, 7 and 8 (left)
    for c in SHARED:
        assert cell("6", "UTA", c) == cell("7", "EVA-01-CLIP-g/14", c) == cell("8a", "ratio 0.4", c)
        # mask ratio 0.0 = plain feature distillation (Table 6 FD)
        assert cell("8a", "ratio 0.0", c) == cell("6", "FD", c)
        # the mask-type ablation runs at ratio 0.5 (Table 8 caption): Block-R is the ratio-0.5 row
        assert cell("8b", "mask Block-R", c) == cell("8a", "ratio 0.5", c)


def test_flops_follow_the_kept_token_fraction():
    df = load_paper_rows("8a")
    fl = df[df.metric == "flops_rel"]
    for r in fl.itertuples():
        ratio = float(r.config.split("=")[1])
        assert abs(r.value - (1 - ratio)) < 0.05 + 1e-9
    t6 = load_paper_rows("6")
    assert t6[(t6.paper_row == "UTA") & (t6.metric == "flops_rel")].value.iloc[0] == 0.6


def test_params_consistent_across_tables():
    for t in ("4", "5"):
        df = load_paper_rows(t)
        p = df[df.metric == "params"]
        assert dict(zip(p["size"], p.value)) == {"B": 86e6, "L": 304e6, "g": 1011e6}


def test_table3_overall_is_close_to_category_mean():
    # LLaVA-Bench's overall is a ratio of summed scores, not the mean of the three ratios: close, not equal
    p = load_paper_rows("3").pivot(index="paper_row", columns="column", values="value") * 100
    cats = p[["Conversation", "Detail", "Reasoning"]]
    assert ((p.Overall - cats.mean(axis=1)).abs() < 0.5).all()
    assert ((p.Overall >= cats.min(axis=1)) & (p.Overall <= cats.max(axis=1))).all()


def test_claims_in_the_text_match_the_tables():
    d = lambda a, b: round(a - b, 1)  # noqa: E731
    # Sec. 1/4.1: L/14 4B 80.8 beats DataComp by 1.6 and EVA-02-CLIP by 1.0; average +1.1 over EVA-02-CLIP
    assert d(cell("1", "UTA L/14@224 4B", "IN-1K"), cell("1", "DataComp L/14@224 13B", "IN-1K")) == 1.6
    assert d(cell("1", "UTA L/14@224 4B", "IN-1K"), cell("1", "EVA-02-CLIP L/14@224 4B", "IN-1K")) == 1.0
    assert d(cell("1", "UTA L/14@224 4B", "IN-1K"), cell("1", "Open-CLIP L/14@224 32B", "IN-1K")) == 5.3
    assert d(cell("1", "UTA L/14@224 4B", "Average"), cell("1", "EVA-02-CLIP L/14@224 4B", "Average")) == 1.1
    # 336 fine-tuning: +1.8 average over the 224 model
    assert d(cell("1", "UTA L/14@336 4B", "Average"), cell("1", "UTA L/14@224 4B", "Average")) == 1.8
    # ObjectNet: B/16 beats EVA-02-CLIP by 6.0 (the text's 11.3 over Open-CLIP does not match: 12.3)
    assert d(cell("1", "UTA B/16@224 2B", "ObjectNet"), cell("1", "EVA-02-CLIP B/16@224 8B", "ObjectNet")) == 6.0
    # Sec. 4.2: LLaVA overall +2.2 over CLIP L, +1.4 over EVA-02 L
    assert d(cell("3", "UTA L/14", "Overall"), cell("3", "CLIP L/14", "Overall")) == 2.2
    assert d(cell("3", "UTA L/14", "Overall"), cell("3", "EVA-02 L/14", "Overall")) == 1.4
    # Sec. 4.3: LVIS AP box +2.0 (B) and +0.6 (L) over EVA-02; > 1 on COCO and ~6 on LVIS over ViTDet (MAE)
    assert d(cell("5", "UTA B", "LVIS/AP box"), cell("5", "EVA-02 B", "LVIS/AP box")) == 2.0
    assert d(cell("5", "UTA L", "LVIS/AP box"), cell("5", "EVA-02 L", "LVIS/AP box")) == 0.6
    assert d(cell("5", "UTA B", "COCO/AP box"), cell("5", "ViTDet B", "COCO/AP box")) > 1.0
    assert d(cell("5", "UTA B", "LVIS/AP box"), cell("5", "ViTDet B", "LVIS/AP box")) >= 6.0


def _r1_mean(row):
    cols = [f"{d}/{ds}/R@1" for d in ("Text Retrieval", "Image Retrieval") for ds in ("Flickr30k", "COCO")]
    return sum(cell("2", row, c) for c in cols) / 4


def test_table2_text_claims_average_top1_recall():
    # Sec. 4.1: base improves Open-CLIP and EVA-02-CLIP by ~4 points of R@1 averaged over both datasets
    # and directions; large by 3.4 and 1.8
    assert round(_r1_mean("UTA B 0B") - _r1_mean("Open-CLIP B 34B")) == 4
    assert round(_r1_mean("UTA B 0B") - _r1_mean("EVA-02-CLIP B 8B")) == 4
    assert abs(_r1_mean("UTA L 0B") - _r1_mean("Open-CLIP L 34B") - 3.4) < 0.05 + 1e-9
    assert abs(_r1_mean("UTA L 0B") - _r1_mean("EVA-02-CLIP L 4B") - 1.8) <= 0.05 + 1e-9


def test_bad_paper_csv_is_a_clear_error(tmp_path, monkeypatch):
    import shutil

    from uta_bench.errors import UtaBenchError
    from uta_bench.paper.rows import paper_dir

    for f in paper_dir().glob("table*.csv"):
        shutil.copy(f, tmp_path / f.name)
    text = (tmp_path / "table3.csv").read_text().replace(",0.745,%,", ",74.5,%,")
    (tmp_path / "table3.csv").write_text(text)
    with pytest.raises(UtaBenchError, match="fractions"):
        load_paper_rows(directory=tmp_path)
