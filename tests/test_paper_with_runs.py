"""`uta-bench table --paper --with-runs`: measured rows land in the right paper cells; missing stays missing."""
from __future__ import annotations

import pytest

from uta_bench.store import Metric, ResultsStore, RunInfo


def write(store, model, task, metrics, run_id, paper=None):
    run = RunInfo(run_id=run_id, model=model, started_at="2026-01-01T00:00:00")
    store.write_task(run, task, [Metric(m, v, n, lo, hi) for m, v, n, lo, hi in metrics], paper=paper)


@pytest.fixture
def store():
    s = ResultsStore()
    # UTA-B/16 (PaperRef UTA B/16@224 2B): IN-1K measured twice (latest wins), IN-A once; no others
    write(s, "uta_b16", "imagenet1k", [("top1", 0.70, 50000, 0.696, 0.704)], "r_old")
    write(s, "uta_b16", "imagenet1k", [("top1", 0.7650, 50000, 0.7613, 0.7687), ("top5", 0.93, 50000, None, None)],
          "r_new")
    write(s, "uta_b16", "imagenet_a", [("top1", 0.60, 7500, 0.589, 0.611)], "r_new")
    write(s, "uta_b16", "flickr30k", [("image_to_text_R@1", 0.905, 1000, 0.886, 0.922)], "r_new")
    write(s, "uta_tiny", "imagenet1k", [("top1", 0.001, 100, 0.0, 0.05)], "r_tiny")
    return s


def comparison(store, models=None, tables=None):
    from uta_bench.paper.mapping import latest_measured, paper_comparison

    return paper_comparison(latest_measured(store, models), tables=tables)


def test_latest_measured_value_maps_to_its_paper_cell(store):
    comp = comparison(store, ["uta_b16"])
    in1k = comp[(comp.paper_table == "1") & (comp.column == "IN-1K")].iloc[0]
    assert in1k.paper_row == "UTA B/16@224 2B" and in1k.run_id == "r_new"
    assert in1k.paper_value == pytest.approx(0.77) and in1k.delta == pytest.approx(0.765 - 0.77)
    # metric alias image_to_text_R@1 -> Table 2 Text Retrieval / Flickr30k / R@1 of "UTA B 2B"
    t2 = comp[comp.paper_table == "2"].iloc[0]
    assert (t2.paper_row, t2.column) == ("UTA B 2B", "Text Retrieval/Flickr30k/R@1")
    assert t2.paper_value == pytest.approx(0.913)
    # ImageNet ZS of Table 4 is the same measurement: uta_b16 is Table 4's "UTA † B" (77.0)
    t4 = comp[comp.paper_table == "4"]
    assert len(t4) == 1 and t4.paper_row.iloc[0] == "UTA † B" and t4.column.iloc[0] == "ImageNet/ZS"
    assert t4.paper_value.iloc[0] == pytest.approx(0.77)
    # a model without a Table 4 row (EVA-02-CLIP B/16) keeps paper_row None there
    write(store, "eva02_b16", "imagenet1k", [("top1", 0.746, 50000, 0.742, 0.750)], "r_eva")
    t4 = comparison(store, ["eva02_b16"], ["4"])
    assert len(t4) == 1 and t4.paper_row.isna().all() and t4.delta.isna().all()


def test_grid_with_runs_shows_ours_delta_and_missing(store):
    from uta_bench.paper.grid import MISSING, build_grid

    g = build_grid("1", comparison(store))
    kinds = [k for k, _ in g.rows]
    i = next(i for i, (k, c) in enumerate(g.rows) if k == "paper" and c[:3] == ["UTA", "B/16@224", "2B"])
    assert kinds[i + 1: i + 3] == ["ours", "delta"]
    ours, delta = g.rows[i + 1][1], g.rows[i + 2][1]
    assert ours[0] == "↳ ours: uta_b16" and ours[1] == "run r_new"
    assert ours[3] == "76.5 [76.1, 76.9]" and ours[4] == "60.0 [58.9, 61.1]"
    assert ours[5:] == [MISSING] * 5           # IN-R .. ObjectNet and the Average are not invented
    assert delta[3] == "-0.5" and delta[4] == "+0.2" and delta[5:] == [""] * 5
    # uta_tiny has no paper row: listed at the end, no delta line, with a note
    assert g.rows[-1][0] == "ours" and g.rows[-1][1][0] == "↳ ours: uta_tiny"
    assert any("uta_tiny" in n for n in g.notes)


def test_average_is_derived_only_when_all_six_are_measured(store):
    from uta_bench.paper.grid import build_grid

    vals = {"imagenet_r": 0.84, "imagenet_v2": 0.69, "imagenet_sketch": 0.60, "objectnet": 0.68}
    for task, v in vals.items():
        write(store, "uta_b16", task, [("top1", v, 1000, v - 0.01, v + 0.01)], "r_more")
    g = build_grid("1", comparison(store, ["uta_b16"]))
    ours = next(c for k, c in g.rows if k == "ours")
    delta = next(c for k, c in g.rows if k == "delta")
    mean = (0.765 + 0.60 + sum(vals.values())) / 6
    assert ours[-1] == f"{mean * 100:.1f}"
    assert delta[-1] == f"{(mean - 0.698) * 100:+.1f}"


def test_task_card_paper_field_maps_a_differently_named_task(tmp_path, monkeypatch, store):
    cards = tmp_path / "cards"
    cards.mkdir()
    (cards / "in1k_local.yaml").write_text(
        "task: in1k_local\nversion: 1\ntype: classification\ndataset: {path: x}\n"
        "paper: {table: '1', column: IN-1K}\n")
    monkeypatch.setenv("UTA_BENCH_TASKS", str(cards))
    write(store, "openai_b16", "in1k_local", [("acc1", 0.681, 50000, 0.677, 0.685)], "r_clip")
    comp = comparison(store, ["openai_b16"], ["1"])
    assert len(comp) == 1
    r = comp.iloc[0]
    assert (r.paper_row, r.column) == ("CLIP B/16@224 13B", "IN-1K") and r.delta == pytest.approx(0.681 - 0.683)


def test_table2_rows_of_336_models_are_not_guessed():
    from uta_bench.paper.mapping import card_paper_row

    assert card_paper_row("uta_l14_336", "1") == "UTA L/14@336 4B"
    assert card_paper_row("uta_l14_336", "2") is None     # Table 2's UTA L 4B is the 224 px model
    assert card_paper_row("openai_l14", "2") == "CLIP L 13B"
    assert card_paper_row("openai_l14_336", "2") is None
    assert card_paper_row("openclip_l14", "2") == "Open-CLIP L 34B"  # 32B in Table 1


def test_metric_aliases():
    from uta_bench.paper.mapping import canonical_metric

    assert canonical_metric("i2t_R@5") == "text_retrieval_recall@5"
    assert canonical_metric("text_to_image_recall@10") == "image_retrieval_recall@10"
    assert canonical_metric("image_retrieval_recall@1") == "image_retrieval_recall@1"
    assert canonical_metric("coco/bbox_mAP") == "bbox_mAP"
    assert canonical_metric("acc1") == "top1"


def test_cli_with_runs_and_plot_delta(store, tmp_path, capsys):
    from typer.testing import CliRunner

    from uta_bench.cli.main import app, build

    build()
    out = tmp_path / "t.md"
    res = CliRunner().invoke(app, ["table", "--paper", "--with-runs", "-m", "uta_b16", "-f", "markdown",
                                   "-o", str(out)])
    assert res.exit_code == 0, res.output
    md = out.read_text()
    assert "*↳ ours: uta_b16*" in md and "Table 2" in md and "Table 3" not in md
    from uta_bench.cli.main import main

    with pytest.raises(SystemExit) as e:     # through main(): UtaBenchError -> "error: ..." and exit 2
        main(["table", "--paper", "--with-runs", "-m", "openai_b16"])
    assert e.value.code == 2
    assert "error: no measured rows of model(s) openai_b16" in capsys.readouterr().err
    png = tmp_path / "delta.png"
    res = CliRunner().invoke(app, ["plot", "delta", "-o", str(png)])
    assert res.exit_code == 0, res.output
    import matplotlib.image as mpimg

    img = mpimg.imread(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and img.shape[0] > 100 and img.shape[1] > 100


def test_rows_that_name_their_paper_cell_stay_in_that_table(store):
    # an ablation run (Table 8 left, mask ratio 0.4) of a UTA-B model: not a Table 1 / Table 4 number
    write(store, "uta_b16", "imagenet1k", [("top1", 0.748, 50000, 0.744, 0.752)], "r_abl",
          paper={"table": "8a", "row": "ratio 0.4"})
    write(store, "uta_b16", "coco", [("coco/bbox_mAP", 0.551, 5000, None, None)], "r_det",
          paper={"table": "5", "row": "UTA † B"})
    comp = comparison(store, ["uta_b16"])
    abl = comp[comp.run_id == "r_abl"]
    assert abl[["paper_table", "paper_row", "column"]].values.tolist() == [["8a", "ratio 0.4", "ImageNet/ZS"]]
    assert abl.delta.iloc[0] == pytest.approx(0.748 - 0.750)
    det = comp[comp.run_id == "r_det"]
    assert det[["paper_table", "paper_row", "column"]].values.tolist() == [["5", "UTA † B", "COCO/AP box"]]
    # Table 1's IN-1K cell still shows the zero-shot run, not the ablation written later
    t1 = comp[(comp.paper_table == "1") & (comp.column == "IN-1K")]
    assert t1.run_id.tolist() == ["r_new"]


def test_paper_cells_helper():
    from uta_bench.paper.mapping import paper_cells
    from uta_bench.registry import get_card

    assert paper_cells("uta_b16", "imagenet1k", "top1") == [("1", "UTA B/16@224 2B", "IN-1K"),
                                                            ("4", "UTA † B", "ImageNet/ZS")]
    assert paper_cells("openai_l14", "mscoco", "t2i_R@5") == [("2", "CLIP L 13B", "Image Retrieval/COCO/R@5")]
    assert paper_cells("uta_tiny", "imagenet1k", "top1") == []
    assert paper_cells("uta_tiny", "imagenet_r", "top1", ref=get_card("uta_g14_336").paper) == [
        ("1", "UTA g/14@336 3B", "IN-R")]
