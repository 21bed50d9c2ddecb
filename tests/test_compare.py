"""Paired comparison: McNemar / paired bootstrap on generated predictions with known ground truth."""
from __future__ import annotations

import json

import numpy as np
import pytest

from uta_bench.compare import binom_cdf_half, compare_arrays, mcnemar, paired_bootstrap


def simulate(n, lift, seed):
    """Ground truth + two classifiers: per-sample difficulty p_i; B is right with p_i + lift."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n)
    p = rng.beta(4, 2, n)
    a_right = rng.random(n) < p
    b_right = rng.random(n) < np.clip(p + lift, 0, 1)
    wrong = (y + 1 + rng.integers(0, 9, n)) % 10          # a wrong label, never y
    pred_a = np.where(a_right, y, wrong)
    pred_b = np.where(b_right, y, (wrong + 1 + (wrong + 1 == y)) % 10)
    return y, pred_a, pred_b


def test_exact_mcnemar_hand_worked():
    # b=1, c=9: p = 2 * P[X <= 1], X ~ Bin(10, 1/2) = 2 * (1 + 10) / 1024
    a = np.array([1] * 1 + [0] * 9 + [1] * 5)
    b = np.array([0] * 1 + [1] * 9 + [1] * 5)
    r = mcnemar(a, b)
    assert (r["b"], r["c"], r["method"]) == (1, 9, "mcnemar-exact")
    assert r["p_value"] == 22 / 1024
    assert binom_cdf_half(0, 3) == 1 / 8 and binom_cdf_half(3, 3) == 1.0
    assert mcnemar(a, a)["p_value"] == 1.0


def test_mcnemar_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    for b, c in [(0, 5), (3, 9), (12, 12), (7, 17), (30, 55), (400, 460)]:
        a = np.array([1] * b + [0] * c + [1] * 50 + [0] * 20)
        bb = np.array([0] * b + [1] * c + [1] * 50 + [0] * 20)
        r = mcnemar(a, bb)
        if b + c < 25:
            ref = stats.binomtest(min(b, c), b + c, 0.5).pvalue
        else:
            ref = stats.chi2.sf((abs(b - c) - 1) ** 2 / (b + c), 1)
        assert r["p_value"] == pytest.approx(ref, rel=1e-9, abs=1e-15), (b, c)


def test_flags_a_real_difference():
    y, pa, pb = simulate(3000, 0.06, seed=1)
    r = compare_arrays("gen", "correct1", (pa == y).astype(np.int8), (pb == y).astype(np.int8))
    true_delta = float(np.mean(pb == y) - np.mean(pa == y))
    assert r.delta == pytest.approx(true_delta)
    assert r.p_value < 1e-3 and r.significant
    assert r.ci_low > 0 and r.ci_low < true_delta < r.ci_high
    assert r.test == "mcnemar-chi2-cc" and r.c_only_b > r.b_only_a


def test_does_not_flag_a_null_difference():
    y, pa, pb = simulate(3000, 0.0, seed=2)
    r = compare_arrays("gen", "correct1", (pa == y).astype(np.int8), (pb == y).astype(np.int8))
    assert r.p_value > 0.05 and not r.significant
    assert r.ci_low < 0 < r.ci_high


def test_false_positive_rate_and_power_over_many_datasets():
    fp = sum(mcnemar(*(lambda y, a, b: ((a == y), (b == y)))(*simulate(1000, 0.0, s)))["p_value"] < 0.05
             for s in range(200))
    assert fp <= 16            # nominal 5% of 200 = 10; McNemar with continuity correction is conservative
    power = sum(mcnemar(*(lambda y, a, b: ((a == y), (b == y)))(*simulate(1000, 0.08, s)))["p_value"] < 0.05
                for s in range(20))
    assert power >= 18


def test_binary_bootstrap_shortcut_matches_index_resampling():
    y, pa, pb = simulate(1500, 0.03, seed=3)
    a, b = (pa == y).astype(float), (pb == y).astype(float)
    fast = paired_bootstrap(a, b, n_boot=4000, seed=0)
    slow = paired_bootstrap(a + 0.5, b + 0.5, n_boot=4000, seed=0)   # non-binary -> index resampling
    assert fast["delta"] == pytest.approx(slow["delta"])
    assert fast["ci_low"] == pytest.approx(slow["ci_low"], abs=0.004)
    assert fast["ci_high"] == pytest.approx(slow["ci_high"], abs=0.004)
    # percentile CI ~ normal approximation of the paired difference
    d = b - a
    se = d.std(ddof=1) / np.sqrt(len(d))
    assert fast["ci_low"] == pytest.approx(d.mean() - 1.96 * se, abs=0.004)


def _save_run(store, run_id, y, pred):
    from uta_bench.predictions import save_predictions

    top5 = np.stack([pred] + [(pred + k) % 10 for k in range(1, 5)], axis=1)
    save_predictions(store, run_id, "gen_task", {"target": y, "top5": top5,
                                                 "correct1": (pred == y).astype(np.int8)})


def test_compare_runs_and_cli(tmp_path, capsys):
    from uta_bench.cli.main import main
    from uta_bench.compare import compare_runs
    from uta_bench.store import ResultsStore

    store = ResultsStore()
    y, pa, pb = simulate(2000, 0.05, seed=4)
    _save_run(store, "run_a", y, pa)
    _save_run(store, "run_b", y, pb)
    res = compare_runs(store, "run_a", "run_b")
    assert [(r.task, r.key) for r in res] == [("gen_task", "correct1"), ("gen_task", "correct5")]
    assert res[0].significant and res[0].delta > 0
    out = tmp_path / "cmp.json"
    with pytest.raises(SystemExit) as e:
        main(["compare", "run_a", "run_b", "--json", str(out), "--bootstrap", "2000"])
    assert e.value.code == 0
    data = json.loads(out.read_text())
    assert data["results"][0]["delta"] == pytest.approx(np.mean(pb == y) - np.mean(pa == y))
    # different targets: not the same samples -> clear error, exit 2
    _save_run(store, "run_c", np.roll(y, 1), pb)
    with pytest.raises(SystemExit) as e:
        main(["compare", "run_a", "run_c"])
    assert e.value.code == 2 and "different targets" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["compare", "run_a", "nope"])
    assert e.value.code == 2 and "no saved per-sample predictions" in capsys.readouterr().err


def test_retrieval_runs_compare_per_query_hits_from_saved_ranks():
    """Ranks as the zero-shot runner saves them: per-query hits reproduce each run's recall@k exactly."""
    from uta_bench.compare import compare_runs
    from uta_bench.predictions import save_predictions
    from uta_bench.store import ResultsStore

    store = ResultsStore()
    rng = np.random.default_rng(5)
    n_img, caps = 400, 5
    text_image = np.repeat(np.arange(n_img), caps)
    t2i_a = rng.geometric(0.45, n_img * caps) - 1                  # 0 = the right image ranked first
    t2i_b = np.maximum(0, t2i_a - (rng.random(n_img * caps) < 0.25))   # B ranks some positives higher
    i2t_a = rng.geometric(0.6, n_img) - 1
    for run, t2i, i2t in (("ra", t2i_a, i2t_a), ("rb", t2i_b, i2t_a)):
        save_predictions(store, run, "flickr30k", {"index": np.arange(n_img), "t2i_rank": t2i, "i2t_rank": i2t,
                                                   "text_image": text_image})
    res = {r.key: r for r in compare_runs(store, "ra", "rb", n_boot=2000)}
    assert set(res) == {f"{d}_retrieval_recall@{k}" for d in ("image", "text") for k in (1, 5, 10)}
    r1 = res["image_retrieval_recall@1"]
    assert r1.n == n_img * caps
    assert r1.value_a == pytest.approx(np.mean(t2i_a < 1)) and r1.value_b == pytest.approx(np.mean(t2i_b < 1))
    assert r1.delta > 0 and r1.significant and r1.b_only_a == 0     # B never ranks a positive lower
    same = res["text_retrieval_recall@5"]                            # identical i2t ranks: no difference
    assert same.delta == 0 and same.p_value == 1.0
