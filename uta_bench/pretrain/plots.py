"""The paper's Fig. 3 (masking probability per location) and Fig. 4 (train / val loss) as PNGs."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_masks(out: str | Path, grid: int = 14, ratio: float = 0.5, n: int = 5000, seed: int = 0,
               kinds=("block", "block_reversed"), progress: bool = False) -> tuple[Path, dict]:
    """Fig. 3: per-location masking probability over ``n`` masks; returns (png, {kind: probs})."""
    from uta_bench.pretrain.masking import mask_probability

    probs = {k: mask_probability(k, grid, ratio, n=n, seed=seed, progress=progress) for k in kinds}
    plt = _plt()
    fig, axes = plt.subplots(1, len(kinds), figsize=(4.2 * len(kinds) + 0.8, 4.2), layout="constrained")
    vmax = max(p.max() for p in probs.values())
    titles = {"block": "Block", "block_reversed": "Block-R (reversed)", "random": "Random"}
    for ax, (k, p) in zip(np.atleast_1d(axes), probs.items()):
        im = ax.imshow(p, vmin=0, vmax=vmax, cmap="viridis")
        ax.set_title(f"{titles.get(k, k)}\nmax/min = {p.max() / p.min():.2f}")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, ax=axes, shrink=0.85, label="masking probability")
    fig.suptitle(f"Masking probability per location ({n} masks, ratio {ratio}, {grid}x{grid} patches)")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out, probs


def plot_loss(curves: dict[str, list[dict]], out: str | Path, title: str = "Pre-training loss") -> Path:
    """Fig. 4: ``{label: history rows}`` (rows with step, train_loss, optional val_loss) -> PNG."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (label, rows) in enumerate(curves.items()):
        c = colours[i % len(colours)]
        steps = [r["step"] for r in rows]
        train = np.array([r["train_loss"] for r in rows], dtype=float)
        k = max(1, len(train) // 50)          # light smoothing for long curves
        smooth = np.convolve(train, np.ones(k) / k, mode="valid") if k > 1 else train
        ax.plot(steps[k - 1:], smooth, color=c, label=f"{label} train")
        val = [(r["step"], r["val_loss"]) for r in rows if r.get("val_loss") is not None]
        if val:
            ax.plot(*zip(*val), "o--", color=c, label=f"{label} val")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (negative cosine similarity)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
