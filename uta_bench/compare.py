"""Paired comparison of two runs on per-sample predictions: McNemar and the paired bootstrap.

Both runs must have scored the same samples in the same order (checked through the saved
``target`` arrays when present). For a 0/1 per-sample outcome (``correct1`` etc.):

* **McNemar**: with b = #(A right, B wrong) and c = #(A wrong, B right), the exact two-sided
  binomial test ``p = min(1, 2 * P[X <= min(b, c)])``, X ~ Bin(b + c, 1/2), when b + c < 25 (the usual
  rule), else the continuity-corrected chi-square ``(|b - c| - 1)^2 / (b + c)`` on 1 df.
* **Paired bootstrap**: resample samples with replacement (the same indices for A and B), take the
  percentile 95% CI of delta = mean(B) - mean(A), and the two-sided p-value
  ``min(1, 2 * min(P*[delta* <= 0], P*[delta* >= 0]))`` (with +1 smoothing). For 0/1 outcomes the
  resampled delta only depends on how many discordant pairs of each kind are drawn, so it is drawn
  exactly as a multinomial on (b, c, rest): O(resamples), not O(n * resamples).

delta > 0 means B is better than A.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from uta_bench.errors import UtaBenchError

EXACT_BELOW = 25   # b + c below this -> exact binomial McNemar


def binom_cdf_half(k: int, n: int) -> float:
    """P[X <= k] for X ~ Binomial(n, 1/2), exactly (integer arithmetic)."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    return sum(math.comb(n, i) for i in range(k + 1)) / (1 << n)   # int / int: correctly rounded


def mcnemar(a, b, exact: bool | None = None) -> dict:
    """McNemar test on paired 0/1 outcomes; returns b (A only), c (B only), statistic, p, method."""
    a = np.asarray(a).astype(bool)
    bb = np.asarray(b).astype(bool)
    n01 = int(np.sum(a & ~bb))   # A right, B wrong
    n10 = int(np.sum(~a & bb))   # A wrong, B right
    n = n01 + n10
    if exact is None:
        exact = n < EXACT_BELOW
    if n == 0:
        return dict(b=n01, c=n10, statistic=0.0, p_value=1.0, method="mcnemar-exact")
    if exact:
        p = min(1.0, 2.0 * binom_cdf_half(min(n01, n10), n))
        return dict(b=n01, c=n10, statistic=float(min(n01, n10)), p_value=p, method="mcnemar-exact")
    stat = (abs(n01 - n10) - 1) ** 2 / n
    p = math.erfc(math.sqrt(stat / 2.0))    # chi-square(1) survival function
    return dict(b=n01, c=n10, statistic=float(stat), p_value=p, method="mcnemar-chi2-cc")


def paired_bootstrap(a, b, n_boot: int = 10000, seed: int = 0, alpha: float = 0.05) -> dict:
    """Paired bootstrap of mean(b) - mean(a): percentile CI and two-sided p-value."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    n = len(a)
    rng = np.random.default_rng(seed)
    binary = np.isin(a, (0.0, 1.0)).all() and np.isin(b, (0.0, 1.0)).all()
    if binary:
        n01 = int(np.sum((a == 1) & (b == 0)))
        n10 = int(np.sum((a == 0) & (b == 1)))
        draws = rng.multinomial(n, [n01 / n, n10 / n, (n - n01 - n10) / n], size=n_boot)
        deltas = (draws[:, 1] - draws[:, 0]) / n
    else:
        d = b - a
        deltas = np.empty(n_boot)
        chunk = max(1, int(2e7 // max(n, 1)))
        for s in range(0, n_boot, chunk):
            m = min(chunk, n_boot - s)
            idx = rng.integers(0, n, size=(m, n))
            deltas[s:s + m] = d[idx].mean(axis=1)
    lo, hi = np.quantile(deltas, [alpha / 2, 1 - alpha / 2], method="inverted_cdf")   # attainable values
    p = min(1.0, 2 * min((np.sum(deltas <= 0) + 1) / (n_boot + 1), (np.sum(deltas >= 0) + 1) / (n_boot + 1)))
    return dict(delta=float(b.mean() - a.mean()), ci_low=float(lo), ci_high=float(hi), p_value=float(p),
                n_boot=n_boot, seed=seed)


@dataclass
class PairedResult:
    task: str
    key: str                 # per-sample array compared (correct1, correct5, ...)
    n: int
    value_a: float
    value_b: float
    delta: float             # value_b - value_a
    ci_low: float            # paired-bootstrap 95% CI of delta
    ci_high: float
    p_value: float           # McNemar for 0/1 outcomes, bootstrap otherwise (or when method=bootstrap)
    test: str
    b_only_a: int | None = None   # discordant counts (0/1 outcomes)
    c_only_b: int | None = None
    p_bootstrap: float | None = None

    @property
    def significant(self) -> bool:
        return self.p_value < 0.05

    def to_dict(self) -> dict:
        return asdict(self)


def compare_arrays(task: str, key: str, a, b, method: str = "both", n_boot: int = 10000,
                   seed: int = 0) -> PairedResult:
    if method not in ("both", "mcnemar", "bootstrap"):
        raise UtaBenchError(f"unknown method {method!r}; use mcnemar, bootstrap or both")
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape or a.ndim != 1:
        raise UtaBenchError(f"task {task}: per-sample '{key}' arrays differ in shape ({a.shape} vs {b.shape}); "
                            "the runs did not score the same samples")
    if len(a) == 0:
        raise UtaBenchError(f"task {task}: no samples to compare")
    boot = paired_bootstrap(a, b, n_boot=n_boot, seed=seed)
    binary = np.isin(a, (0, 1)).all() and np.isin(b, (0, 1)).all()
    res = PairedResult(task, key, len(a), float(a.mean()), float(b.mean()), boot["delta"], boot["ci_low"],
                       boot["ci_high"], boot["p_value"], "paired-bootstrap", p_bootstrap=boot["p_value"])
    if binary and method != "bootstrap":
        mc = mcnemar(a, b)
        res.p_value, res.test, res.b_only_a, res.c_only_b = mc["p_value"], mc["method"], mc["b"], mc["c"]
    return res


def _per_sample(preds: dict) -> dict:
    """0/1 (or float) per-sample outcome arrays in a predictions dict.

    Classification: ``correct1`` (saved), ``correct5`` (from ``top5`` + ``target``). Retrieval (ranks
    saved by the zero-shot runner, 0 = positive first): ``image_retrieval_recall@k`` = t2i_rank < k per
    caption, ``text_retrieval_recall@k`` = i2t_rank < k per image, for k = 1, 5, 10.
    """
    out = {k: preds[k] for k in preds if (k.startswith("correct") or k.startswith("hit")) and preds[k].ndim == 1}
    if "correct5" not in out and "top5" in preds and "target" in preds and preds["top5"].ndim == 2:
        out["correct5"] = (preds["top5"] == preds["target"][:, None]).any(axis=1).astype(np.int8)
    for rank_key, metric in (("t2i_rank", "image_retrieval_recall"), ("i2t_rank", "text_retrieval_recall")):
        if rank_key in preds:
            for k in (1, 5, 10):
                out[f"{metric}@{k}"] = (preds[rank_key] < k).astype(np.int8)
    return out


def _same_samples(task: str, pa: dict, pb: dict) -> None:
    for key in ("target", "index", "text_image"):
        if key in pa and key in pb and not np.array_equal(pa[key], pb[key]):
            raise UtaBenchError(f"task {task}: the two runs have different {key}s (different data, order or "
                                "--limit); a paired comparison needs the same samples")


def compare_runs(store, run_a: str, run_b: str, tasks=None, keys=None, method: str = "both",
                 n_boot: int = 10000, seed: int = 0) -> list[PairedResult]:
    """Compare two runs task by task on the per-sample predictions saved by the runner."""
    from uta_bench.predictions import load_predictions, run_tasks

    def tasks_of(run):
        got = run_tasks(store, run)
        if not got:
            raise UtaBenchError(f"run {run!r} has no saved per-sample predictions in {store.display_url}; "
                                "re-run it with this version (predictions are saved per task)")
        return got

    ta, tb = tasks_of(run_a), tasks_of(run_b)
    common = sorted(set(ta) & set(tb))
    if tasks:
        names = {t.replace("/", "_").replace(":", "_"): t for t in tasks}
        missing = [t for s, t in names.items() if s not in common]
        if missing:
            raise UtaBenchError(f"task {missing[0]!r} is not in both runs' predictions "
                                f"(common tasks: {', '.join(ta[s] for s in common) or 'none'})")
        common = [s for s in common if s in names]
    if not common:
        raise UtaBenchError(f"runs {run_a} and {run_b} share no task with saved predictions")
    results = []
    for stem in common:
        task = ta[stem]
        pa, pb = load_predictions(store, run_a, task), load_predictions(store, run_b, tb[stem])
        _same_samples(task, pa, pb)
        sa, sb = _per_sample(pa), _per_sample(pb)
        for key in sorted(set(sa) & set(sb)):
            if keys and key not in keys:
                continue
            results.append(compare_arrays(task, key, sa[key], sb[key], method=method, n_boot=n_boot, seed=seed))
    if not results:
        raise UtaBenchError("no per-sample outcome arrays (correct1, ...) in common between the two runs")
    return results
