"""UTA vs MIM pre-training step cost for the same ViT-B/16 @ 224 (timm Eva, the paper's student), on CPU.

One student forward + backward + AdamW step per measurement, on the same batch and teacher targets
(the frozen teacher's forward is identical for both objectives, so it is left out). UTA drops the
masked tokens (mask 0.5 -> 98 of 196 patches, 0.4 -> 118); MIM processes all 196 with [MASK] tokens.
Steps of the three configurations are interleaved (MIM, UTA@0.5, UTA@0.4, MIM, ...) so that load
from other processes hits them alike, and medians are reported. Two clocks: wall time, and the
process CPU time of the step (all threads) -- the latter is what the step costs this machine and is
not inflated when other processes share the cores; the closing ratio lines use CPU time (the table
shows both). Peak memory: each configuration runs again in a fresh subprocess whose resident set
size is sampled every 2 ms during two steps; reported are the peak RSS and its growth over the RSS
before the first step (activations + gradients + AdamW state, which is the same for all three).

    python benchmarks/pretrain_step.py [--batch 8] [--reps 5] [--threads 1] [--arch uta_base_p16]

The paper: UTA at mask 0.5 / 0.4 costs 0.5x / 0.6x the FLOPs of MIM. Target: <= 0.55x / <= 0.65x.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
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


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


CONFIGS = [("MIM", "mim", 0.5), ("UTA mask 0.5", "uta", 0.5), ("UTA mask 0.4", "uta", 0.4)]


def _masks(ratio: float, batch: int, grid):
    from uta_bench.pretrain.masking import MaskGenerator

    return MaskGenerator("block_reversed", grid, ratio, seed=0).batch(0, batch)


def _memory_child(arch, batch, objective, ratio, threads, q):
    import threading

    import torch

    from uta_bench.pretrain.timing import one_step

    torch.set_num_threads(threads)
    student, images, targets, opt = _setup(arch, batch)
    mask = _masks(ratio, batch, student.visual.patch_embed.grid_size)
    before, peak, done = _rss_mib(), [0.0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _rss_mib())
            time.sleep(0.002)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    for _ in range(2):
        one_step(student, opt, images, targets, objective, mask)
    done.set()
    t.join()
    q.put((before, max(peak[0], _rss_mib())))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="uta_base_p16")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: least noise on a shared CPU)")
    ap.add_argument("--no-memory", action="store_true")
    args = ap.parse_args()
    import os

    import torch

    torch.set_num_threads(args.threads)

    from uta_bench.pretrain.timing import interleaved_step_times

    student, images, targets, _ = _setup(args.arch, args.batch)
    grid = student.visual.patch_embed.grid_size
    print(f"{args.arch}: {sum(p.numel() for p in student.visual.parameters()) / 1e6:.1f}M params, "
          f"{grid[0]}x{grid[1]} patches, batch {args.batch}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}", flush=True)
    res = dict(zip(CONFIGS, interleaved_step_times(student, images, targets, CONFIGS, reps=args.reps)))
    med = {c: r.cpu_s for c, r in res.items()}
    wall = {c: r.wall_s for c, r in res.items()}
    mem = {}
    if not args.no_memory:
        ctx = mp.get_context("spawn")
        for c in CONFIGS:
            q = ctx.Queue()
            p = ctx.Process(target=_memory_child, args=(args.arch, args.batch, c[1], c[2], args.threads, q))
            p.start()
            mem[c] = q.get()
            p.join()
    mim = med[CONFIGS[0]]
    print(f"{'config':14s} {'tokens':>7s} {'CPU s/step':>11s} {'vs MIM':>7s} {'wall s/step':>12s} {'vs MIM':>7s}"
          + ("" if args.no_memory else f" {'peak RSS MiB':>13s} {'growth MiB':>11s}"))
    for c in CONFIGS:
        tokens = res[c].tokens
        line = (f"{c[0]:14s} {tokens:7d} {med[c]:11.3f} {med[c] / mim:6.2f}x {wall[c]:12.3f} "
                f"{wall[c] / wall[CONFIGS[0]]:6.2f}x")
        if c in mem:
            line += f" {mem[c][1]:13.0f} {mem[c][1] - mem[c][0]:11.0f}"
        print(line)
    print(f"load average now {os.getloadavg()[0]:.1f}; ratios below: median CPU time per step")
    print(f"mask 0.5: UTA step {med[CONFIGS[1]] / mim:.2f}x MIM")
    print(f"mask 0.4: UTA step {med[CONFIGS[2]] / mim:.2f}x MIM")


if __name__ == "__main__":
    main()
