"""Anytime-valid confidence sequence (CS) for a paired accuracy difference over a finite test set.

Setting. A task has N samples; the per-sample paired difference is D_i = c_i - b_i in {-1, 0, 1}
(candidate correct minus baseline correct). The quantity gated is the full-set difference
mu = mean(D) -- exactly the delta `uta-bench check` reports on the whole set. The gate reads D in a
uniformly random order (a seeded permutation, i.e. sampling WITHOUT replacement) in chunks
t_0 = 0 < t_1 < t_2 < ... and after each chunk asks whether mu is surely below or above -tolerance.

Construction (derived for this gate from two published results; nothing here is copied):

* Waudby-Smith & Ramdas, "Confidence sequences for sampling without replacement", NeurIPS 2020:
  with X_t = (D_t + 1) / 2 in [0, 1] and S_t = X_1 + ... + X_t, the conditional mean of the next
  draw is the mean of the items not yet drawn, mu_t(m) = (N m - S_{t-1}) / (N - t + 1) when the
  population mean (X scale) is m; so X_t - mu_t(m) is a martingale difference, and the paper's
  empirical-Bernstein (EB) capital process
      K_t(m) = prod_i exp( lam_i (X_i - mu_i(m)) - psi_E(lam_i) (X_i - Xhat_{i-1})^2 ),
      psi_E(l) = -log(1 - l) - l,   lam_i in [0, 1) and Xhat_{i-1} in [0, 1] predictable,
  is a nonnegative supermartingale at the true m (the EB inequality is Howard, Ramdas, McAuliffe &
  Sekhon, Ann. Statist. 2021, Thm. 4 / Fan et al. 2015), so by Ville's inequality
  P(exists t: K_t(m) >= 1/a) <= a, and {m : K_t(m) < 1/a} is a (1 - a) CS (a lower bound; the upper
  bound is the same construction on 1 - X).
* Chunked bets (this module's choice, so the CS depends only on per-chunk counts): the remaining
  mean R_t(m) = (N m - S_t) / (N - t) satisfies X_t - mu_t(m) = -(N - t) (R_t - R_{t-1}). Betting
  lam_t = c_k / (N - t) inside chunk k (c_k fixed from the data before the chunk) telescopes the
  linear term to c_k (R_{t_{k-1}}(m) - R_{t_k}(m)), a function of S at the chunk ends only. Xhat is
  fixed within a chunk (smoothed mean of the earlier chunks), so sum (X - Xhat)^2 over a chunk
  depends on its counts of D = +1, 0, -1 only.
* Range scaling: the EB inequality only needs (X - Xhat) / h >= -1 for a predictable h; X >= 0 gives
  h = Xhat (and h = 1 - Xhat for the upper side on 1 - X). Bets are lam = g / h with g in [0, 1) and
  penalty psi_E(g) (X - Xhat)^2 / h^2 -- about twice the bet range of h = 1 when D is mostly 0.
  Inside a chunk lam_t = c_k / (N - t) <= g / h, and charging psi_E(g) / h^2 (psi_E increases) for
  every sample only lowers the process below the supermartingale, so Ville still applies.
* Mixture over bet sizes: one process per g in :data:`LAMBDAS` (constant over time), averaged with
  equal weights (an average of supermartingales is one). Each log-capital is linear in m,
  log K_j(m) = B_j - A_j m with A_j > 0, so the mixture falls in m and the lower bound
  inf {m : mean_j K_j(m) < 1/a} is found by bisection. Bounds are intersected over chunks (running
  max / min), valid because the guarantee is uniform in time.

Decision (per task): CS entirely below -tolerance -> ``regression``; entirely above -> ``pass``;
otherwise read the next chunk. At the full set the CS is not used: mu is then known exactly and the
task gets the verdict `uta-bench check` gives today (paired bootstrap + :func:`uta_bench.gate.decide`).

Error control and how the level is shared. Each task's two-sided CS has level ``alpha`` (alpha / 2 per
side): P(a task ever stops as ``regression`` while its full-set drop is within tolerance) <= alpha / 2,
whenever it stops, and the same for a false early ``pass``. ``sharing="per-task"`` (the default)
gives every task this level, so for a suite of K tasks the chance of any false regression is at most
K alpha / 2 by the union bound; ``sharing="bonferroni"`` gives each task alpha / K, so the whole
suite's CSs hold simultaneously with probability >= 1 - alpha (it costs more images before a stop).
The full-set stage adds no false regression (delta is exact there and `decide` needs delta < -tol).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

LAMBDAS = np.geomspace(0.01, 0.9, 12)   # bet sizes mixed with equal weight


def psi_e(lam):
    """psi_E(l) = -log(1 - l) - l (the empirical-Bernstein CGF bound, scale 1)."""
    return -np.log1p(-lam) - lam


def chunk_ends(n: int, first: int = 32, growth: float = 1.25, min_left: int = 16) -> list[int]:
    """Cumulative sample counts after each chunk, ending at ``n``.

    Chunks start at ``first`` samples and grow by ``growth``; no chunk takes more than half of what is
    left, so the ends also approach n geometrically (where sampling without replacement pins mu
    down). The last end is n (the full set, decided exactly)."""
    ends, t, size = [], 0, float(first)
    while n - t > min_left:
        step = max(1, min(int(round(size)), (n - t) // 2))
        t += step
        ends.append(t)
        size *= growth
    if not ends or ends[-1] != n:
        ends.append(n)
    return ends


@dataclass
class CSState:
    """Running EB confidence-sequence state for R parallel replicates (arrays of shape [R]).

    One capital process per bet size in :data:`LAMBDAS` (each constant over time) and side; the CS
    inverts their average (a mixture of supermartingales is one). Kept in the X = (D + 1) / 2 scale;
    :meth:`bounds` returns the D scale."""
    n_total: int
    alpha_side: float                 # level per side for this task (see alpha_per_side)
    reps: int = 1
    t: int = 0

    def __post_init__(self):
        R, J = self.reps, len(LAMBDAS)
        self.s = np.zeros(R)                       # S_t = sum of X
        self.a = {side: np.zeros((R, J)) for side in ("lo", "hi")}   # log K_j(m) = B_j - A_j m
        self.b = {side: np.zeros((R, J)) for side in ("lo", "hi")}
        self.lo, self.hi = np.full(R, -1.0), np.full(R, 1.0)          # running CS, D scale

    def update(self, n_plus, n_zero, n_minus) -> None:
        """Add one chunk: counts of D = +1, 0, -1 in it (arrays of shape [R] or scalars)."""
        n_plus, n_zero, n_minus = (np.broadcast_to(np.asarray(x, dtype=np.float64), (self.reps,))
                                   for x in (n_plus, n_zero, n_minus))
        n = n_plus + n_zero + n_minus
        m = int(n[0])
        if not np.all(n == m):
            raise ValueError("every replicate must read the same chunk size")
        t0, t1, N = self.t, self.t + m, self.n_total
        if t1 > N:
            raise ValueError(f"chunk passes the end of the set ({t1} > {N})")
        xhat = ((0.5 + self.s) / (t0 + 1))[:, None]              # predictable centre (smoothed mean)
        s0 = self.s
        s1 = s0 + n_plus + 0.5 * n_zero
        self.s, self.t = s1, t1
        if t1 >= N:                     # full set: decided exactly, not by the CS
            return
        # the same bets on X (lower bound) and on 1 - X (upper bound); (1-X) - (1-xhat) = -(X - xhat)
        v = n_plus[:, None] * (1 - xhat) ** 2 + n_zero[:, None] * (0.5 - xhat) ** 2 + n_minus[:, None] * xhat ** 2
        for side, s0_, s1_, h in (("lo", s0, s1, xhat), ("hi", t0 - s0, t1 - s1, 1 - xhat)):
            # X - xhat >= -h (X >= 0): scaled bets g / h with g in LAMBDAS, penalty psi_E(g) / h^2
            lam = LAMBDAS[None, :] / h
            c = lam * (N - t1)          # lam_t = c / (N - t) <= lam inside the chunk
            self.a[side] = self.a[side] + c * N * (1.0 / (N - t1) - 1.0 / (N - t0))
            self.b[side] = (self.b[side] + c * (s1_[:, None] / (N - t1) - s0_[:, None] / (N - t0))
                            - psi_e(LAMBDAS[None, :]) / h ** 2 * v)
        lo_x = self._bound("lo")
        hi_x = 1 - self._bound("hi")
        self.lo = np.maximum(self.lo, 2 * lo_x - 1)
        self.hi = np.minimum(self.hi, 2 * hi_x - 1)

    def _bound(self, side: str, iters: int = 40) -> np.ndarray:
        """inf {m in [0, 1]: mean_j exp(B_j - A_j m) < 1/alpha_side}, by bisection (the mixture falls in m)."""
        a, b = self.a[side], self.b[side]
        target = math.log(1 / self.alpha_side) + math.log(a.shape[1])

        def rejects(m):
            z = b - a * m[:, None]
            zmax = z.max(axis=1)
            return zmax + np.log(np.exp(z - zmax[:, None]).sum(axis=1)) >= target

        lo, hi = np.zeros(self.reps), np.ones(self.reps)
        done = ~rejects(lo)             # m = 0 not rejected: the bound is 0
        hi[done] = 0.0
        for _ in range(iters):
            mid = 0.5 * (lo + hi)
            r = rejects(mid)
            lo = np.where(r, mid, lo)
            hi = np.where(r, hi, mid)
        return lo                        # every m below lo is rejected: lo is a valid lower bound

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) of the CS for mu = mean(D), D scale."""
        return self.lo, self.hi


def sequential_verdict(lo, hi, tol: float) -> np.ndarray:
    """'regression' when the CS is entirely below -tol, 'pass' when entirely above, else 'continue'."""
    lo, hi = np.asarray(lo), np.asarray(hi)
    out = np.full(lo.shape, "continue", dtype=object)
    out[hi < -tol] = "regression"
    out[lo > -tol] = "pass"
    return out


SHARING = ("per-task", "bonferroni")


def alpha_per_side(alpha: float, n_tasks: int, sharing: str = "per-task") -> float:
    """Level of one side of one task's CS: alpha / 2 per task, or alpha / (2K) with Bonferroni over K tasks."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if sharing not in SHARING:
        raise ValueError(f"unknown alpha sharing {sharing!r}; use one of {', '.join(SHARING)}")
    return alpha / 2 / (max(1, n_tasks) if sharing == "bonferroni" else 1)


class SequentialTask:
    """The gate's per-task stopping rule, for one real task (reps=1) or many simulated replicates.

    Call :meth:`observe` with each chunk's counts of D = +1, 0, -1 (chunks as :func:`chunk_ends`);
    a replicate stops at the first chunk whose CS clears -tol (``regression`` / ``pass``) and keeps
    the fraction of the set read and the CS at that point. At the full set, :meth:`observe` returns
    'full' for the replicates still running: the caller applies today's full-set verdict."""

    def __init__(self, n_total: int, tol: float, alpha_side: float, reps: int = 1):
        self.state = CSState(n_total, alpha_side, reps)
        self.tol = tol
        self.verdict = np.full(reps, "continue", dtype=object)
        self.used = np.zeros(reps, dtype=np.int64)
        self.lo = np.full(reps, np.nan)
        self.hi = np.full(reps, np.nan)

    @property
    def running(self) -> np.ndarray:
        return self.verdict == "continue"

    def observe(self, n_plus, n_zero, n_minus) -> np.ndarray:
        st = self.state
        st.update(n_plus, n_zero, n_minus)
        run = self.running
        if st.t >= st.n_total:
            now = np.where(run, "full", "continue")
        else:
            now = np.where(run, sequential_verdict(*st.bounds(), self.tol), "continue")
        stop = run & (now != "continue")
        self.verdict[stop] = now[stop]
        self.used[stop] = st.t
        lo, hi = st.bounds()
        self.lo[stop], self.hi[stop] = lo[stop], hi[stop]
        return self.verdict
