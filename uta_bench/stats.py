"""Confidence intervals for reported metrics."""
from __future__ import annotations

import math


def wilson_interval(successes: float, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (95% by default)."""
    if n <= 0:
        return (float("nan"), float("nan"))
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # at p = 0 (p = 1) the lower (upper) end is exactly 0 (1); rounding must not push it past the estimate
    lo = 0.0 if successes <= 0 else max(0.0, centre - half)
    hi = 1.0 if successes >= n else min(1.0, centre + half)
    return (lo, hi)


def mean_stderr(p: float, n: int) -> float:
    """Standard error of a mean of ``n`` 0/1 outcomes with mean ``p``, as lm-eval's ``mean_stderr`` computes it
    (sample standard deviation / sqrt(n)): sqrt(p (1 - p) / (n - 1)). 0 for n = 1 (no spread), nan for n = 0."""
    if n <= 0 or p != p:
        return float("nan")
    if n == 1:
        return 0.0
    return math.sqrt(max(0.0, p * (1 - p)) / (n - 1))
