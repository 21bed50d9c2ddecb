"""UTA vs MIM pre-training step cost for the same ViT-B/16 @ 224 (timm Eva, the paper's student), on CPU.

One student forward + backward + AdamW step per measurement, on the same batch and teacher targets
(the frozen teacher's forward is identical for both objectives, so it is left out). UTA drops the
masked tokens (mask 0.5 -> 98 of 196 patches, 0.4 -> 118); MIM processes all 196 with [MASK] tokens.
Steps of the three configurations are interleaved (MIM, UTA@0.5, UTA@0.4, MIM, ...) so that load
from other processes hits them alike, and the median is reported. Peak memory: each configuration
runs again in a fresh subprocess and reports its peak resident set size (ru_maxrss) and the growth
over the RSS before its first step (activations + optimiser state).

    python benchmarks/pretrain_step.py [--batch 8] [--reps 5] [--arch uta_base_p16]

The paper: UTA at mask 0.5 / 0.4 costs 0.5x / 0.6x the FLOPs of MIM. Target: <= 0.55x / <= 0.65x.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import statistics
import time


def _setup(arch: str, batch: int, seed: int = 0):
    import torch

    from uta_bench.models.uta import build_visual
    from uta_bench.pretrain.objectives import Student

    torch.manual_seed(seed)
    student = Student(build_visual(arch))
    n = student.visual.patch_embed.num_patches
    size = student.visual.patch_embed.img_size[0]
    images = torch.randn(batch, 3, size, size)
    targets = torch.randn(batch, 1 + n, student.visual.head.out_features)
    opt = torch.optim.AdamW(student.parameters(), lr=1e-4, weight_decay=0.05)
    return student, images, targets, opt


def _step(student, images, targets, opt, objective, mask) -> float:
    import torch

    from uta_bench.pretrain.objectives import pretrain_loss

    t0 = time.perf_counter()
    loss = pretrain_loss(objective, student, images, targets, mask)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return time.perf_counter() - t0


CONFIGS = [("MIM", "mim", 0.5), ("UTA mask 0.5", "uta", 0.5), ("UTA mask 0.4", "uta", 0.4)]


def _masks(ratio: float, batch: int, grid):
    from uta_bench.pretrain.masking import MaskGenerator

    return MaskGenerator("block_reversed", grid, ratio, seed=0).batch(0, batch)


def _memory_child(arch, batch, objective, ratio, q):
    student, images, targets, opt = _setup(arch, batch)
    mask = _masks(ratio, batch, student.visual.patch_embed.grid_size)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in range(2):
        _step(student, images, targets, opt, objective, mask)
    q.put((before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="uta_base_p16")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--no-memory", action="store_true")
    args = ap.parse_args()
    import os

    import torch

    student, images, targets, opt = _setup(args.arch, args.batch)
    grid = student.visual.patch_embed.grid_size
    masks = {c: _masks(c[2], args.batch, grid) for c in CONFIGS}
    print(f"{args.arch}: {sum(p.numel() for p in student.visual.parameters()) / 1e6:.1f}M params, "
          f"{grid[0]}x{grid[1]} patches, batch {args.batch}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}")
    for c in CONFIGS:  # warm-up (allocator, kernels)
        _step(student, images, targets, opt, c[1], masks[c])
    times = {c: [] for c in CONFIGS}
    for _ in range(args.reps):
        for c in CONFIGS:
            times[c].append(_step(student, images, targets, opt, c[1], masks[c]))
    med = {c: statistics.median(v) for c, v in times.items()}
    mem = {}
    if not args.no_memory:
        ctx = mp.get_context("spawn")
        for c in CONFIGS:
            q = ctx.Queue()
            p = ctx.Process(target=_memory_child, args=(args.arch, args.batch, c[1], c[2], q))
            p.start()
            mem[c] = q.get()
            p.join()
    mim = med[CONFIGS[0]]
    print(f"{'config':14s} {'tokens':>7s} {'step s (median)':>16s} {'min':>7s} {'max':>7s} {'vs MIM':>7s}"
          + ("" if args.no_memory else f" {'peak RSS MiB':>13s} {'growth MiB':>11s}"))
    n = grid[0] * grid[1]
    for c in CONFIGS:
        tokens = 1 + (n if c[1] == "mim" else n - int(round(c[2] * n)))
        line = (f"{c[0]:14s} {tokens:7d} {med[c]:16.3f} {min(times[c]):7.3f} {max(times[c]):7.3f} "
                f"{med[c] / mim:6.2f}x")
        if c in mem:
            line += f" {mem[c][1] / 1024:13.0f} {(mem[c][1] - mem[c][0]) / 1024:11.0f}"
        print(line)
    print(f"mask 0.5: UTA step {med[CONFIGS[1]] / mim:.2f}x MIM")
    print(f"mask 0.4: UTA step {med[CONFIGS[2]] / mim:.2f}x MIM")


if __name__ == "__main__":
    main()
