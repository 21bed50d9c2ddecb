"""Simulation of `uta-bench check --sequential` on suites of the paper's zero-shot set sizes.

Each cell (discordance rate, true difference) builds, per task, a finite population of paired
differences D = candidate - baseline in {-1, 0, 1} with exactly round(delta * N) net difference and
round(disc * N) discordant pairs (the true difference is the full-set delta `check` reports; a
discordance below |delta| is impossible and is raised to |delta|, marked *). Every replicate reads
the population in a fresh uniformly random order, chunk by chunk, through the gate's own code:
:class:`uta_bench.sequential.SequentialTask` (chunk counts drawn exactly: hypergeometric given what is
left) and, at the full set, :func:`uta_bench.seqcheck.full_set_verdict` (paired bootstrap + gate.decide).

Reported: false regressions = share of suites with ANY task flagged (delta 0, -0.4: within tolerance);
detected = share of task runs flagged as regression (every task has the drop); images used = images
read / full suite; each averaged over the three discordance rates.

    python benchmarks/gate_sequential.py [--reps 1000] [--alpha 0.05] [--sharing per-task]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from uta_bench.seqcheck import full_set_verdict
from uta_bench.sequential import SHARING, SequentialTask, alpha_per_side, chunk_ends

SIZES = (50000, 7500, 30000, 10000, 50889, 18574)    # IN-1K, IN-A, IN-R, IN-V2, IN-Sketch, ObjectNet
DISCORDANCE = (0.05, 0.10, 0.20)
DELTAS = (0.0, -0.4, -1.0, -2.0, -5.0, -20.0)            # points
TOL = 0.5                                                 # points


def population(n: int, disc: float, delta: float) -> tuple[int, int, int]:
    """(#D = +1, #D = 0, #D = -1) with net difference delta and discordance disc (fractions)."""
    disc = max(disc, abs(delta))
    net, n_disc = round(delta * n), round(disc * n)
    n_minus = (n_disc - net) // 2
    n_plus = n_disc - n_minus
    return n_plus, n - n_plus - n_minus, n_minus


def full_verdict(pop: tuple[int, int, int]) -> str:
    """Today's full-set verdict for a population (depends on the counts only; bootstrap seed is fixed)."""
    n_plus, n_zero, n_minus = pop
    base = np.concatenate([np.zeros(n_plus), np.ones(n_minus), np.ones(n_zero)]).astype(np.int8)
    cand = np.concatenate([np.ones(n_plus), np.zeros(n_minus), np.ones(n_zero)]).astype(np.int8)
    return full_set_verdict("sim", base, cand, TOL / 100).status


def simulate_task(pop, reps: int, alpha_side: float, rng) -> tuple[np.ndarray, np.ndarray]:
    """(verdict per replicate, images read per replicate) for one task population."""
    n = sum(pop)
    task = SequentialTask(n, TOL / 100, alpha_side, reps)
    left = [np.full(reps, k, dtype=np.int64) for k in pop]         # +1, 0, -1 not yet read
    t = 0
    for end in chunk_ends(n):
        m, t = end - t, end
        n_disc = rng.hypergeometric(left[0] + left[2], left[1], np.full(reps, m))
        n_plus = rng.hypergeometric(left[0], left[2], n_disc)
        got = (n_plus, m - n_disc, n_disc - n_plus)
        for k in range(3):
            left[k] -= got[k]
        task.observe(*got)
        if not task.running.any():
            break
    verdict = task.verdict.copy()
    full = verdict == "full"
    if full.any():
        verdict[full] = full_verdict(pop)
    return verdict, task.used


def run_cell(disc: float, delta: float, reps: int, alpha_side: float, rng) -> dict:
    flagged_suite = np.zeros(reps, dtype=bool)
    flagged_tasks, used = 0, np.zeros(reps)
    for n in SIZES:
        verdict, n_used = simulate_task(population(n, disc, delta / 100), reps, alpha_side, rng)
        reg = verdict == "regression"
        flagged_suite |= reg
        flagged_tasks += int(reg.sum())
        used += n_used
    return dict(suite_flagged=flagged_suite.mean(), task_flagged=flagged_tasks / (reps * len(SIZES)),
                used=used.mean() / sum(SIZES))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=1000)
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--sharing", choices=SHARING, default="per-task")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    a_side = alpha_per_side(args.alpha, len(SIZES), args.sharing)
    print(f"suite sizes {SIZES} ({sum(SIZES)} images), tolerance {TOL} points, {args.reps} replicates per cell, "
          f"alpha {args.alpha} ({args.sharing}: {a_side:.4g} per side per task), chunks "
          f"{chunk_ends(SIZES[0])[:6]}... (first sizes)")
    print(f"{'disc':>5} {'delta':>6} | {'suite flagged':>13} {'task flagged':>12} {'images used':>11} | seconds")
    res, t_all = {}, time.perf_counter()
    for delta in DELTAS:
        for disc in DISCORDANCE:
            t0 = time.perf_counter()
            r = res[(disc, delta)] = run_cell(disc, delta, args.reps, a_side, rng)
            mark = "*" if abs(delta) / 100 > disc else " "
            print(f"{100 * disc:4.0f}%{mark}{delta:6.1f} | {100 * r['suite_flagged']:12.1f}% "
                  f"{100 * r['task_flagged']:11.1f}% {r['used']:10.4f}x | {time.perf_counter() - t0:6.1f}",
                  flush=True)
    print(f"(* discordance raised to |delta|; total {time.perf_counter() - t_all:.0f} s)")

    def mean(key, delta):
        return float(np.mean([res[(d, delta)][key] for d in DISCORDANCE]))

    print(f"false regressions at delta 0: {100 * mean('suite_flagged', 0.0):.1f}%")
    print(f"false regressions at delta -0.4: {100 * mean('suite_flagged', -0.4):.1f}%")
    print(f"detected at delta -2: {100 * mean('task_flagged', -2.0):.1f}%")
    print(f"detected at delta -5: {100 * mean('task_flagged', -5.0):.1f}%")
    print(f"images used at delta -5: {mean('used', -5.0):.4f}x full suite")
    print(f"images used at delta -20: {mean('used', -20.0):.4f}x full suite")
    print(f"images used at delta 0, 10% discordance: {res[(0.10, 0.0)]['used']:.2f}x full suite")


if __name__ == "__main__":
    main()
