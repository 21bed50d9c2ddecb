"""Measured-vs-paper bar chart (matplotlib, Agg backend, PNG)."""
from __future__ import annotations

from pathlib import Path


def plot_delta(comparison, output: str | Path) -> Path:
    """One bar per (model, table, column): ours - paper in points, error bar = our 95% CI shifted by
    the paper value. Bars below zero are red, above green."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from uta_bench.paths import atomic_write_bytes

    df = comparison.reset_index(drop=True)
    labels = [f"{r.model}\nT{r.paper_table} {r.column}" for r in df.itertuples()]
    delta = (df.delta * 100).to_numpy()
    lo = [(r.value - r.ci_low) * 100 if r.ci_low is not None and r.ci_low == r.ci_low else 0.0
          for r in df.itertuples()]
    hi = [(r.ci_high - r.value) * 100 if r.ci_high is not None and r.ci_high == r.ci_high else 0.0
          for r in df.itertuples()]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.6 * len(df) + 2), 4.5))
    colors = ["#c0392b" if d < 0 else "#27ae60" for d in delta]
    ax.bar(range(len(df)), delta, color=colors, yerr=[lo, hi], capsize=3)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(df)), labels, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("measured - paper (points)")
    ax.set_title("uta-bench: measured vs paper (error bars: our 95% CI)")
    fig.tight_layout()
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    atomic_write_bytes(output, buf.getvalue())
    return Path(output)
