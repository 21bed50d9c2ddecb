"""The report's figures: matplotlib (Agg) PNGs returned as ``data:image/png;base64`` URIs."""
from __future__ import annotations

import base64
import io

GREEN, RED, GREY = "#1e8449", "#c0392b", "#7f8c8d"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def data_uri(fig) -> str:
    plt = _pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def colour(delta_points: float, band: float) -> str:
    return GREY if abs(delta_points) <= band else (GREEN if delta_points > 0 else RED)


def delta_figure(task: str, recs, band: float, against: str) -> str:
    """One bar per record of ``task``: delta in points with its 95% CI as error bars."""
    plt = _pyplot()
    delta = (recs.delta * 100).to_numpy()
    err = [(recs.err_low * 100).to_numpy(), (recs.err_high * 100).to_numpy()]
    fig, ax = plt.subplots(figsize=(max(4.0, 1.0 * len(recs) + 2.5), 3.4))
    x = range(len(recs))
    ax.bar(x, delta, color=[colour(d, band) for d in delta], yerr=err, capsize=4, width=0.6)
    ax.axhline(0, color="black", linewidth=0.8)
    if band > 0:
        ax.axhspan(-band, band, color=GREY, alpha=0.15, linewidth=0)
    ax.set_xticks(list(x), list(recs.label), fontsize=7)
    ax.set_ylabel(f"ours − {against} (points)")
    ax.set_title(f"{task}: Δ ± 95% CI", fontsize=10)
    fig.tight_layout()
    return data_uri(fig)


def delta_figures(deltas, band: float, against: str) -> list[tuple[str, str]]:
    """(task, data URI) per task of a deltas frame (see :mod:`uta_bench.report.collect`)."""
    if deltas is None or len(deltas) == 0:
        return []
    return [(task, delta_figure(task, recs.reset_index(drop=True), band, against))
            for task, recs in deltas.groupby("task", sort=False)]


def class_figure(task: str, rows: list[tuple[str, int, float]]) -> str:
    """Horizontal bars: accuracy per class, worst at the top; ``rows`` as ClassAccuracy.rows (a selection)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 0.28 * len(rows) + 1.2))
    names = [r[0] if len(r[0]) <= 32 else r[0][:31] + "…" for r in rows]
    acc = [r[2] * 100 for r in rows]
    y = range(len(rows))
    ax.barh(list(y), acc, color=[RED if a < 50 else GREEN for a in acc])
    ax.set_yticks(list(y), names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("top-1 accuracy (%)")
    ax.set_title(f"{task}: per-class top-1", fontsize=10)
    fig.tight_layout()
    return data_uri(fig)
