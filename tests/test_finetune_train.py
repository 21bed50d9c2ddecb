"""Fine-tuning on a generated ImageFolder: loss goes down, held-out accuracy above chance, the
checkpoint reloads through load_model and evaluates through the normal path (rows in the store)."""
from __future__ import annotations

import math

import pytest
import torch


@pytest.fixture(scope="module")
def ft_data(tmp_path_factory):
    from uta_bench.finetune.sample import make_finetune_sample

    return make_finetune_sample(tmp_path_factory.mktemp("ft") / "data", classes=4, train_per_class=12,
                                val_per_class=6)


@pytest.fixture(scope="module")
def trained(ft_data, tmp_path_factory):
    """One smoke-recipe run shared by the tests of this module."""
    from uta_bench.finetune.config import make_config
    from uta_bench.finetune.train import train

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as mp:  # module fixture: the autouse per-test home is not active yet
        mp.setenv("UTA_BENCH_HOME", str(tmp_path_factory.mktemp("home")))
        try:
            cfg = make_config("smoke", train_dir=str(ft_data / "train"),
                              out_dir=str(tmp_path_factory.mktemp("out")))
            res = train(cfg, progress=False)
        finally:
            torch.set_num_threads(n)
    return cfg, res


def binom_tail(k: int, n: int, p: float) -> float:
    """P[X >= k] for X ~ Binomial(n, p) (hand-computed, no scipy)."""
    return sum(math.comb(n, i) * p ** i * (1 - p) ** (n - i) for i in range(k, n + 1))


def test_loss_goes_down(trained):
    cfg, res = trained
    losses = res["losses"]
    assert res["step"] == res["total_steps"] == cfg.epochs * (48 // cfg.batch_size)
    assert all(math.isfinite(x) for x in losses)
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert first > 1.2                      # starts near ln(4) = 1.386 (head init scale 1e-3)
    assert last < first - 0.3, (first, last)
    assert len(res["exported"]) == 2        # model + EMA


def test_checkpoint_reloads_through_load_model(trained, one_thread):
    from uta_bench.finetune.model import head_path, load_finetuned, read_head
    from uta_bench.models.loader import load_model

    cfg, res = trained
    ckpt = res["exported"][0]
    loaded = load_model("uta_tiny", checkpoint=ckpt)        # strict official-layout load
    state = torch.load(f"{res['out_dir']}/last.pt", weights_only=True)["model"]
    vis = loaded.model.visual.state_dict()
    for k, v in state.items():
        if not k.startswith("head."):
            assert torch.equal(vis[k], v), k              # the fine-tuned trunk, exactly
    head, meta = read_head(ckpt)
    assert torch.equal(head["weight"], state["head.weight"]) and meta["classes"] == res["classes"]
    assert meta["trunk_sha256"] == loaded.weights_sha256
    _, clf, _ = load_finetuned("uta_tiny", ckpt)
    x = torch.randn(3, 3, 64, 64)
    from uta_bench.models.uta import build_visual

    direct = build_visual("uta_tiny_p16", num_classes=4).eval()
    direct.load_state_dict(state)
    with torch.no_grad():
        torch.testing.assert_close(clf(x), direct(x))
    assert head_path(ckpt).name == "finetuned.classifier.safetensors"


def test_eval_above_chance_and_rows_in_store(trained, ft_data, one_thread):
    from timm.utils import accuracy

    from uta_bench.finetune.evaluate import TASK, predict, run_finetune_eval
    from uta_bench.finetune.model import load_finetuned
    from uta_bench.data.imagefolder import image_folder
    from uta_bench.store import ResultsStore

    cfg, res = trained
    ckpt = res["exported"][0]
    run_id, metrics = run_finetune_eval("uta_tiny", ckpt, str(ft_data / "val"), progress=False)
    top1 = next(m for m in metrics if m.metric == "top1")
    n = top1.n
    assert n == 24
    k = round(top1.value * n)
    assert binom_tail(k, n, 0.25) < 0.01, f"top1 {top1.value} is not above chance (p={binom_tail(k, n, .25)})"
    # independent check: timm's own accuracy() on logits from the same checkpoint
    loaded, clf, _ = load_finetuned("uta_tiny", ckpt)
    logits, targets = predict(loaded, clf, image_folder(ft_data / "val", loaded.preprocess), progress=False)
    t1, t5 = accuracy(logits, targets, topk=(1, 4))
    assert abs(t1.item() / 100 - top1.value) < 1e-9
    df = ResultsStore().df(run_id=run_id)
    assert sorted(df.metric) == ["top1", "top5"] and set(df.task) == {TASK}
    assert df.weights_sha256.iloc[0] == loaded.weights_sha256
    assert df.paper_table.isna().all()      # uta_tiny has no paper row


def test_paper_mapping_for_table4():
    from uta_bench.finetune.evaluate import paper_row
    from uta_bench.registry import get_card

    assert paper_row(get_card("uta_b16")) == "UTA† B"     # released B/16 is the contrastively tuned one
    assert paper_row(get_card("uta_l14")) == "UTA† L"
    assert paper_row(get_card("uta_tiny")) is None


def test_layer_decay_groups_follow_timm(one_thread):
    """lr per group = lr * decay^(depth+1-layer), as EVA-02 / BEiT assign it (hand-computed for depth 2)."""
    from uta_bench.finetune.config import FinetuneConfig
    from uta_bench.finetune.train import build_optimizer
    from uta_bench.models.uta import build_visual
    from uta_bench.training import set_lr

    tower = build_visual("uta_tiny_p16", num_classes=3)
    cfg = FinetuneConfig(lr=1e-3, layer_decay=0.5, epochs=10, warmup_epochs=0)
    opt = build_optimizer(tower, cfg)
    set_lr(opt, cfg.lr)                     # the schedule's rate, times each group's lr_scale
    names = {id(p): n for n, p in tower.named_parameters()}
    want = {"cls_token": 0.125, "patch_embed.proj.weight": 0.125, "blocks.0.attn.proj.weight": 0.25,
            "blocks.1.mlp.fc2.weight": 0.5, "head.weight": 1.0,
            # timm's Eva.group_matcher merges the final norm into the last block's group (EVA-02's own
            # assigner gives it scale 1.0): one decay step lower lr on two vectors.
            "norm.weight": 0.5}
    seen = {}
    for g in opt.param_groups:
        for p in g["params"]:
            seen[names[id(p)]] = (g["lr"], g["weight_decay"])
    for n, scale in want.items():
        assert seen[n][0] == pytest.approx(1e-3 * scale), n
    assert seen["cls_token"][1] == 0.0 and seen["norm.weight"][1] == 0.0 and seen["head.weight"][1] == 0.05
