"""Step cost of the objectives, measured fairly on a shared machine.

One student forward + backward + AdamW step per measurement, every objective on the same batch and
teacher targets, with the objectives interleaved (A, B, C, A, B, C, ...) so that load from other
processes hits them alike. Two clocks per step: wall time and process CPU time (all threads); CPU
time is what the step costs and is not inflated while other processes hold the cores.
"""
from __future__ import annotations

import copy
import statistics
import time
from dataclasses import dataclass

import torch


@dataclass
class StepTime:
    label: str
    objective: str
    ratio: float
    tokens: int          # tokens the student processes ([CLS] included)
    cpu_s: float         # median
    wall_s: float        # median


def one_step(student, opt, images, targets, objective: str, mask) -> tuple[float, float]:
    from uta_bench.pretrain.objectives import pretrain_loss

    t0, c0 = time.perf_counter(), time.process_time()
    loss = pretrain_loss(objective, student, images, targets, mask)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return time.perf_counter() - t0, time.process_time() - c0


def interleaved_step_times(student, images: torch.Tensor, targets: torch.Tensor,
                           configs: list[tuple[str, str, float]], reps: int = 5, mask_kind: str = "block_reversed",
                           warmup: int = 1, advance=None) -> list[StepTime]:
    """``configs``: (label, objective, mask ratio). Each config trains its own copy of ``student``."""
    from uta_bench.pretrain.masking import MaskGenerator

    grid = student.visual.patch_embed.grid_size
    n = grid[0] * grid[1]
    runs = []
    for label, objective, ratio in configs:
        s = copy.deepcopy(student).train()
        opt = torch.optim.AdamW([p for p in s.parameters() if p.requires_grad], lr=1e-4, weight_decay=0.05)
        mask = MaskGenerator(mask_kind, grid, ratio, seed=0).batch(0, len(images))
        runs.append((label, objective, ratio, s, opt, mask, []))
    for rep in range(warmup + reps):
        for label, objective, ratio, s, opt, mask, times in runs:
            t = one_step(s, opt, images, targets, objective, mask)
            if rep >= warmup:
                times.append(t)
            if advance:
                advance(1)
    out = []
    for label, objective, ratio, s, opt, mask, times in runs:
        kept = n - int(mask[0].sum()) if objective == "uta" else n
        out.append(StepTime(label, objective, ratio, 1 + kept, statistics.median(t[1] for t in times),
                            statistics.median(t[0] for t in times)))
    return out
