"""`check --sequential` end to end on the demo world: a corrupted checkpoint is flagged early, the unchanged
one passes; the CS itself against an exhaustive Monte Carlo and a hand-worked case."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from uta_bench.cli.main import main
from uta_bench.sequential import SequentialTask, alpha_per_side, chunk_ends

N_TEST = 1200


def cli(capsys, *args) -> tuple[int, str]:
    with pytest.raises(SystemExit) as e:
        main(list(args))
    out = capsys.readouterr()
    return e.value.code, out.out + out.err


@pytest.fixture(scope="module")
def demo_env(tmp_path_factory):
    """A demo-architecture checkpoint, a generated task it predicts well above chance, and a corrupted copy.

    Training even the demo teacher takes minutes on a shared CPU, so the task is made to fit the model
    instead: generated images labelled with the model's own top-1 (10% relabelled at random), the classes
    being those it predicts. The corrupted copy has its patch-embedding rows shuffled."""
    import torch
    from PIL import Image
    from safetensors.torch import save_file

    from uta_bench.demo import world as W
    from uta_bench.demo.run import _task_card
    from uta_bench.models.loader import load_model
    from uta_bench.models.uta import UTAModel, internal_to_official
    from uta_bench.registry import get_card
    from uta_bench.zeroshot.classifier import build_classifier

    tmp = tmp_path_factory.mktemp("seq")
    arch = get_card("uta_demo").arch
    torch.manual_seed(0)
    model = UTAModel(arch)
    with torch.no_grad():       # timm's 1e-3 head init makes every image look alike; unit scale spreads them
        model.visual.head.weight.normal_(0, model.visual.head.weight.shape[1] ** -0.5)
    state = internal_to_official(model.state_dict(), arch)
    good = tmp / "good.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(good))
    key = next(k for k in state if k.endswith("patch_embed.proj.weight"))
    perm = torch.randperm(state[key].shape[0], generator=torch.Generator().manual_seed(1))
    bad = tmp / "bad.safetensors"
    save_file({k: (v[perm] if k == key else v).contiguous() for k, v in state.items()}, str(bad))

    names, seen = W.class_names(), W.seen_classes()
    world = W.render(N_TEST, seen, 32, seed=1000)
    loaded = load_model("uta_demo", checkpoint=str(good))
    clf = build_classifier(loaded, [names[k] for k in seen], W.CLASS_TEMPLATES, use_cache=False, progress=False)
    with torch.no_grad():
        x = torch.stack([loaded.preprocess(Image.fromarray(im)) for im in world.images])
        pred = np.asarray(seen)[clf.logits(loaded.encode_image(x)).argmax(1).numpy()]
    rng = np.random.default_rng(0)
    classes = sorted(set(pred.tolist()))
    assert len(classes) >= 3, f"the model predicts {len(classes)} classes only"
    flip = rng.random(N_TEST) < 0.1
    other = np.array([rng.choice([c for c in classes if c != p]) for p in pred])
    labels = np.where(flip, other, pred)
    W.write_imagefolder(W.World(world.images, labels, world.captions), tmp / "data", classes)
    cards = tmp / "cards"
    cards.mkdir()
    _task_card(cards / "seq_demo.yaml", "seq_demo", tmp / "data", N_TEST, [names[k] for k in classes])
    return tmp, cards, good, bad


def test_sequential_check_end_to_end(demo_env, capsys, monkeypatch):
    from uta_bench.store import ResultsStore

    tmp, cards, good, bad = demo_env
    monkeypatch.setenv("UTA_BENCH_TASKS", str(cards))
    store = f"sqlite:///{tmp / 'results.db'}"
    code, out = cli(capsys, "run", "zeroshot", "--model", "uta_demo", "--checkpoint", str(good), "--tasks",
                    "seq_demo", "--store", store)
    assert code in (0, None), out
    rows = ResultsStore(store).df(model="uta_demo")
    base_run, base_top1 = rows.run_id.iloc[0], float(rows[rows.metric == "top1"].value.iloc[0])
    assert base_top1 > 0.8, f"baseline top-1 {base_top1}: the task should fit the model"

    common = ("check", "--model", "uta_demo", "--against", base_run, "--tasks", "seq_demo", "--store", store,
              "--sequential", "--tolerance", "0.5")
    code, out = cli(capsys, *common, "--checkpoint", str(bad), "--json", str(tmp / "bad.json"),
                    "--junit", str(tmp / "bad.xml"))
    assert code == 1, out
    rep = json.loads((tmp / "bad.json").read_text())
    v = rep["verdicts"][0]
    assert v["status"] == "regression" and v["fraction_used"] <= 0.1, v
    assert v["ci_high"] < -0.005 and rep["sequential"]["seed"] == 0
    tc = ET.parse(tmp / "bad.xml").getroot().find(".//testcase")
    assert tc.find("failure") is not None
    assert float(tc.find("properties/property[@name='fraction_used']").get("value")) == pytest.approx(
        v["fraction_used"], abs=1e-6)
    # the saved order and outcomes are the run's record; the order is the seeded permutation
    from uta_bench.predictions import load_predictions
    from uta_bench.seqcheck import random_order

    saved = load_predictions(ResultsStore(store), rep["sequential"]["run_id"], "seq_demo")
    assert np.array_equal(saved["order"], random_order(N_TEST, 0)) and len(saved["correct1"]) == v["n_used"]

    code, out = cli(capsys, *common, "--checkpoint", str(good), "--json", str(tmp / "good.json"))
    assert code == 0, out
    v = json.loads((tmp / "good.json").read_text())["verdicts"][0]
    assert v["status"] == "pass" and 0 < v["fraction_used"] <= 1.0, v
    stored = ResultsStore(store).checks()              # both verdicts kept in the store, newest first
    assert [c["verdict"] for c in stored] == ["pass", "fail"] and stored[1]["sequential"]["run_id"] == \
        rep["sequential"]["run_id"]


def test_sequential_check_needs_a_run_baseline(demo_env, capsys, monkeypatch):
    tmp, cards, good, _ = demo_env
    monkeypatch.setenv("UTA_BENCH_TASKS", str(cards))
    code, out = cli(capsys, "check", "--model", "uta_demo", "--checkpoint", str(good), "--tasks", "seq_demo",
                    "--store", f"sqlite:///{tmp / 'other.db'}", "--sequential")
    assert code == 2 and "--against RUN_ID or MODEL" in out


def test_telescoped_capital_equals_the_per_sample_wor_martingale():
    """B_j - A_j m from chunk counts == sum_t lam_t (X_t - mu_t(m)) - penalties, written per sample from
    Waudby-Smith & Ramdas (2020): mu_t(m) = (N m - S_{t-1}) / (N - t + 1), lam_t = c_k / (N - t)."""
    from uta_bench.sequential import LAMBDAS, CSState, psi_e

    rng = np.random.default_rng(3)
    n = 400
    d = rng.choice([-1, 0, 1], size=n, p=[0.2, 0.7, 0.1])
    x = (d + 1) / 2
    st = CSState(n, 0.05)
    ends = chunk_ends(n)[:-1]
    lin = {m: np.zeros(len(LAMBDAS)) for m in (0.3, 0.45, 0.5)}
    pen = np.zeros(len(LAMBDAS))
    t0 = 0
    for end in ends:
        xhat = (0.5 + x[:t0].sum()) / (t0 + 1)
        g = LAMBDAS / xhat                       # lower side: bets g / h with h = xhat
        for t in range(t0 + 1, end + 1):         # 1-based sample index
            lam_t = g * (n - end) / (n - t)
            for m in lin:
                mu_t = (n * m - x[:t - 1].sum()) / (n - t + 1)
                lin[m] += lam_t * (x[t - 1] - mu_t)
            pen += psi_e(LAMBDAS) / xhat ** 2 * (x[t - 1] - xhat) ** 2
        c = x[t0:end]
        st.update(int((c == 1).sum()), int((c == 0.5).sum()), int((c == 0).sum()))
        t0 = end
    for m, lin_m in lin.items():
        np.testing.assert_allclose(st.b["lo"][0] - st.a["lo"][0] * m, lin_m - pen, rtol=1e-9, atol=1e-9)


def test_confidence_sequence_covers_at_its_level_whenever_it_stops():
    """Explicit random permutations of a small population (not the hypergeometric shortcut): the CS misses the
    full-set mean at SOME chunk in at most its level (per side), with a generous per-side level so a broken
    construction (e.g. no without-replacement correction, which over-covers, or a wrong sign) shows up."""
    rng = np.random.default_rng(7)
    n, reps, a_side = 300, 4000, 0.1
    pop = np.array([1] * 30 + [-1] * 60 + [0] * 210)
    mu = pop.mean()
    d = np.stack([rng.permutation(pop) for _ in range(reps)])
    task = SequentialTask(n, 0.005, a_side, reps)
    miss_lo = np.zeros(reps, bool)
    miss_hi = np.zeros(reps, bool)
    t = 0
    widths = []
    for end in chunk_ends(n)[:-1]:
        c = d[:, t:end]
        t = end
        task.observe((c == 1).sum(1), (c == 0).sum(1), (c == -1).sum(1))
        lo, hi = task.state.bounds()
        miss_lo |= lo > mu + 1e-12
        miss_hi |= hi < mu - 1e-12
        widths.append(float(np.mean(hi - lo)))
    assert miss_lo.mean() <= a_side and miss_hi.mean() <= a_side, (miss_lo.mean(), miss_hi.mean())
    assert widths[-1] < 0.5 * widths[0]          # and it does shrink
    assert alpha_per_side(0.05, 6, "bonferroni") == pytest.approx(0.05 / 12)
    assert alpha_per_side(0.05, 6) == pytest.approx(0.025)
