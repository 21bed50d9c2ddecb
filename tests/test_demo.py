"""The offline mini-reproduction at reduced size: the paper's Table 6 direction, through the real runner.

Asserted (paper Sec. 5 / Table 6): UTA's zero-shot accuracy >= 0.8x the teacher's and above MIM's and
UTA+MIM's; UTA's training step cheaper than MIM's. Second stage (paper Sec. 3 / Table 1, 0B vs 2B rows):
UTA after contrastive fine-tuning on the captions beats UTA after pre-training alone. Zero-shot = held-out colour x shape compositions
never seen in any training image or caption, evaluated by `run_zeroshot` on PNG ImageFolders.

The two demo tests share one reduced run (~3.5 CPU-minutes) and are marked slow:
    python -m pytest tests/test_demo.py -m slow
"""
from pathlib import Path

import numpy as np
import pytest

from uta_bench.demo import world as W


def test_world_is_seeded_and_holds_out_compositions():
    a = W.render(64, W.seen_classes(), 32, seed=3)
    b = W.render(64, W.seen_classes(), 32, seed=3)
    assert np.array_equal(a.images, b.images) and a.captions == b.captions
    held = {W.class_names()[k] for k in W.held_out_classes()}
    assert len(held) == 12 and len(W.seen_classes()) == 36
    assert not any(h in c for c in W.render(2000, W.seen_classes(), 32, seed=0).captions for h in held)
    colours = {h.split()[0] for h in held}
    shapes = {h.split()[1] for h in held}
    assert colours == set(W.COLOURS) and shapes == set(W.SHAPES)   # every word is seen elsewhere
    # label, caption and pixels agree: the bright (object) pixels point towards the named colour
    names = list(W.COLOURS)
    for img, k, cap in zip(a.images, a.labels, a.captions):
        colour, shape = names[k // len(W.SHAPES)], W.SHAPES[k % len(W.SHAPES)]
        assert f"{colour} {shape}" in cap
        px = img.reshape(-1, 3).astype(float)
        obj = px[px.max(1) > 140].mean(0)
        cos = {c: obj @ np.array(v) / np.linalg.norm(obj) / np.linalg.norm(v) for c, v in W.COLOURS.items()}
        assert max(cos, key=cos.get) == colour   # hue (direction), as brightness is jittered


@pytest.fixture(scope="module")
def demo_result(tmp_path_factory):
    from uta_bench.demo.run import DemoConfig, run_demo

    out = tmp_path_factory.mktemp("demo")
    cfg = DemoConfig(out_dir=str(out / "out"), store=str(out / "store.sqlite"), n_train=2000, n_val=256,
                     n_test=240, teacher_steps=250, teacher_batch=128, student_steps=150, student_batch=128,
                     progress=False, fig3_masks=500)
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)   # one thread: no spin-waiting when the cores are shared; same result
    try:
        res = run_demo(cfg)
    finally:
        torch.set_num_threads(threads)
    for r in res.rows:         # shown with -s / on failure
        print({k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()})
    return cfg, res


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_demo_reproduces_table6_direction(demo_result):
    cfg, res = demo_result
    rows = {r["key"]: r for r in res.rows}
    assert set(rows) == {"teacher", "fd", "mim", "uta_mim", "uta", "uta_contrastive"}
    teacher, uta, mim, both = rows["teacher"], rows["uta"], rows["mim"], rows["uta_mim"]
    chance = 1 / 12
    assert teacher["zs_heldout"] > 3 * chance                    # the teacher learnt something transferable
    assert uta["zs_heldout"] >= 0.8 * teacher["zs_heldout"]
    assert uta["zs_heldout"] > mim["zs_heldout"]
    assert uta["zs_heldout"] > both["zs_heldout"]
    assert uta["step_s"] < mim["step_s"]
    assert rows["uta_contrastive"]["zs_heldout"] > uta["zs_heldout"]     # Table 1: 2B row > 0B row


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_demo_rows_and_figures(demo_result):
    cfg, res = demo_result
    from uta_bench.store import ResultsStore

    store = ResultsStore(cfg.store)
    table = store.df(run_id=res.run_ids["table"], task="demo_table6")
    assert len(table[table.metric == "zs_heldout_top1"]) == 6
    for key, run_id in res.run_ids.items():   # the zero-shot numbers are the runner's rows
        if key == "table":
            continue
        zs = store.df(run_id=run_id, task="demo_heldout")
        row = next(r for r in res.rows if r["key"] == key)
        assert zs[zs.metric == "top1"].value.iloc[0] == pytest.approx(row["zs_heldout"])
    curve = store.df(run_id=res.run_ids["table"], task="demo_pretrain_loss")
    assert len(curve) == 4 * cfg.student_steps
    from safetensors import safe_open

    with safe_open(str(Path(cfg.out_dir) / "contrastive" / "run" / "model.safetensors"), "pt") as f:
        meta = f.metadata()                       # provenance: the UTA student it started from
    assert meta["samples_seen"] == str(cfg.contrastive_steps * cfg.contrastive_batch)
    assert "student_uta.safetensors" in meta["vision_init"]
    for fig in res.figures.values():
        assert fig.stat().st_size > 10_000
