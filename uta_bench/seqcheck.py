"""`uta-bench check --sequential`: gate each task on a growing random subset of its images.

Per classification task (the statistics are in :mod:`uta_bench.sequential`):

1. The baseline run's saved per-sample predictions (``index``, ``target``, ``correct1``) fix the set.
2. A seeded uniformly random order of that set (sampling without replacement, which is what the
   confidence sequence assumes) is read in chunks (:func:`uta_bench.sequential.chunk_ends`); the
   candidate model encodes only the chunk's images and its top-1 is paired with the baseline's.
3. After each chunk the CS of mean(candidate - baseline) decides ``regression`` / ``pass`` /
   continue; a task that reaches its full set gets today's verdict (:func:`full_set_verdict`).

The order, the seed and the per-sample outcomes read are saved as predictions of a new run id
(``seq-...``) under the store's predictions folder; nothing is written to the results table (a
partial-set top-1 is not a result). Retrieval tasks are not gated sequentially (their per-sample
outcomes are per caption and per image; use the plain check for them).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from uta_bench.errors import UtaBenchError

log = logging.getLogger(__name__)


@dataclass
class SeqInfo:
    """What the sequential gate did on one task (reported next to the verdict)."""
    n_total: int
    n_used: int
    stopped: str                 # regression | pass | full
    seed: int
    run_id: str = ""

    @property
    def fraction(self) -> float:
        return self.n_used / self.n_total if self.n_total else float("nan")


def full_set_verdict(task: str, base, cand, tol: float, baseline_ref: str = "", candidate_run: str = ""):
    """Today's `check` verdict on complete paired 0/1 arrays (paired bootstrap, McNemar, `decide`)."""
    from uta_bench.compare import compare_arrays
    from uta_bench.gate import Verdict, decide

    pr = compare_arrays(task, "correct1", base, cand, n_boot=5000, seed=0)
    v = Verdict(task, "top1", pr.value_a, pr.value_b, baseline_ref=baseline_ref, candidate_run=candidate_run)
    v.ci_low, v.ci_high, v.p_value, v.noise = pr.ci_low, pr.ci_high, pr.p_value, "paired-bootstrap"
    return decide(v, tol)


def counts(d: np.ndarray) -> tuple[int, int, int]:
    """(#D = +1, #D = 0, #D = -1) of paired differences D = candidate - baseline."""
    return int(np.sum(d == 1)), int(np.sum(d == 0)), int(np.sum(d == -1))


def random_order(n: int, seed: int) -> np.ndarray:
    """The seeded uniformly random order (positions 0..n-1) in which a task's samples are read."""
    return np.random.default_rng(seed).permutation(n)
