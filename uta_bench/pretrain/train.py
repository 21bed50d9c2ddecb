"""The pre-training loop, top to bottom. Single process, or ``torchrun`` DDP (gloo on CPU, nccl on GPU).

    torchrun --nproc_per_node 8 $(which uta-bench) train pretrain --recipe uta_b14 --data /data/in21k

One step: this rank's slice of the global batch -> mask (a function of the step) -> teacher tokens
(no grad) -> student loss under autocast -> backward -> clip -> AdamW -> LR schedule. Every
``ckpt_every`` steps the full state is saved atomically; a non-finite loss stops the run before any
update, keeping the last good checkpoint.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from uta_bench.errors import UtaBenchError
from uta_bench.pretrain.checkpointing import load_checkpoint, save_checkpoint, write_loss_csv
from uta_bench.pretrain.config import PretrainConfig
from uta_bench.pretrain.data import GlobalBatches
from uta_bench.pretrain.masking import MaskGenerator
from uta_bench.pretrain.objectives import USES_MASK_TOKEN, Student, pretrain_loss


class DivergedError(UtaBenchError):
    """The loss became NaN/inf."""


@dataclass
class PretrainResult:
    history: list[dict] = field(default_factory=list)   # {step, epoch, lr, train_loss, val_loss?, step_s}
    final_step: int = 0
    checkpoint: str | None = None
    mean_step_s: float = float("nan")
    student: Student | None = None
    start_step: int = 0                                   # > 0 when this invocation resumed


def lr_lambda(total: int, warmup: int, lr: float, min_lr: float):
    """Linear warm-up to ``lr`` over ``warmup`` steps, then cosine to ``min_lr`` (as a factor of lr)."""
    floor = min_lr / lr

    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        t = (step - warmup) / max(1, total - warmup)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))
    return f


def param_groups(model: torch.nn.Module, weight_decay: float):
    """No decay on biases, norms and token/position embeddings (the usual ViT recipe)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        skip = p.ndim <= 1 or name.endswith((".bias", "cls_token", "pos_embed", "mask_token"))
        (no_decay if skip else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def dist_info() -> tuple[int, int]:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            backend = "nccl" if torch.cuda.is_available() else "gloo"
            dist.init_process_group(backend)
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _mean_across(value: torch.Tensor, world: int) -> torch.Tensor:
    if world > 1:
        import torch.distributed as dist

        value = value.detach().clone()
        dist.all_reduce(value)
        value /= world
    return value


def pretrain(cfg: PretrainConfig, dataset, teacher: torch.nn.Module, student: Student,
             val_dataset=None, resume: str | None = None, stop_after: int | None = None,
             progress: bool = True, on_log=None) -> PretrainResult:
    """Train ``student`` against ``teacher`` on ``dataset`` (items ``(epoch, index)`` -> (img, index)).

    ``resume``: a checkpoint path, or "auto" (``output_dir/last.pt`` when it exists).
    ``stop_after``: stop (as if interrupted) after this global step; used by tests and time-boxing.
    """
    rank, world = dist_info()
    device = torch.device(_device(cfg.device, rank))
    out = Path(cfg.output_dir)
    # ---- setup: sizes, masks, model, optimiser, schedule
    total = cfg.total_steps(len(dataset))
    warmup = cfg.warmup(len(dataset))
    grid = student.visual.patch_embed.grid_size
    masks = MaskGenerator(cfg.mask_kind, grid, cfg.mask_ratio, seed=cfg.seed)
    student = student.to(device)
    student.mask_token.requires_grad_(USES_MASK_TOKEN[cfg.objective])   # DDP: no unused parameters
    teacher = teacher.to(device).eval()
    if cfg.grad_checkpointing:
        student.visual.set_grad_checkpointing(True)
    model = student
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(student, device_ids=[device.index] if device.type == "cuda" else None)
    opt = torch.optim.AdamW(param_groups(student, cfg.weight_decay), lr=cfg.lr, betas=tuple(cfg.betas))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(total, warmup, cfg.lr, cfg.min_lr))
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}[cfg.precision]
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.precision == "fp16")
    # ---- resume: model/optimiser/scheduler/scaler/RNG + data position (= step)
    history: list[dict] = []
    start = 0
    ckpt_path = resume
    if resume == "auto":
        ckpt_path = str(out / "last.pt") if (out / "last.pt").is_file() else None
    if ckpt_path:
        start, history = load_checkpoint(ckpt_path, student, opt, sched, scaler)
    sampler = GlobalBatches(len(dataset), cfg.global_batch_size, total, start, cfg.seed, rank, world)
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler, num_workers=cfg.workers,
                                         persistent_workers=False,
                                         generator=torch.Generator().manual_seed(cfg.seed))  # not the global RNG
    last_good = ckpt_path
    step_times: list[float] = []
    end = min(total, stop_after) if stop_after is not None else total
    from uta_bench.progress import progress_bar

    with progress_bar(progress and rank == 0, end - start, f"pretrain {cfg.objective}", "step") as advance:
        model.train()
        for step, (images, indices) in zip(range(start, end), loader):
            t0 = time.perf_counter()
            images = images.to(device, non_blocking=True)
            global_masks = masks.batch(step, cfg.global_batch_size)
            local = global_masks[rank * sampler.local:(rank + 1) * sampler.local].to(device)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                with torch.no_grad():
                    targets = teacher(images, indices.to(device)).float()
                loss = pretrain_loss(cfg.objective, model if world == 1 else _DDPStudent(model),
                                     images, targets, local)
            logged = _mean_across(loss.detach().float(), world)
            if not torch.isfinite(logged):
                keep = f"the last good checkpoint is {last_good}" if last_good else "no checkpoint was written yet"
                raise DivergedError(f"loss is {logged.item()} at step {step}: stopped before updating; {keep}. "
                                    "Lower lr, raise warm-up or use fp32/bf16")
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(student.parameters(), cfg.grad_clip)
            scaler.step(opt)
            scaler.update()
            lr = opt.param_groups[0]["lr"]
            sched.step()
            step_times.append(time.perf_counter() - t0)
            row = {"step": step + 1, "epoch": sampler.epoch_of(step + 1), "lr": lr,
                   "train_loss": float(logged), "step_s": step_times[-1]}
            if val_dataset is not None and cfg.val_every and (step + 1) % cfg.val_every == 0:
                row["val_loss"] = validate(cfg, student, teacher, val_dataset, device, world, rank)
                model.train()
            history.append(row)
            if on_log and rank == 0 and ((step + 1) % cfg.log_every == 0 or step + 1 == end):
                on_log(row)
            advance(1)
            if cfg.ckpt_every and (step + 1) % cfg.ckpt_every == 0 and step + 1 < total:
                last_good = _save(out, student, opt, sched, scaler, step + 1, history, cfg, rank, world)
    final = history[-1]["step"] if history else start
    if val_dataset is not None and final == total and (not history or "val_loss" not in history[-1]):
        history[-1]["val_loss"] = validate(cfg, student, teacher, val_dataset, device, world, rank)
    if final == total or stop_after is not None:
        last_good = _save(out, student, opt, sched, scaler, final, history, cfg, rank, world)
    mean_s = sum(step_times[1:]) / max(1, len(step_times) - 1) if len(step_times) > 1 else float("nan")
    return PretrainResult(history, final, last_good, mean_s, student, start)


class _DDPStudent(torch.nn.Module):
    """Lets ``pretrain_loss`` call the DDP wrapper like the bare student (gradients sync in DDP)."""

    def __init__(self, ddp):
        super().__init__()
        self.ddp = ddp

    def forward(self, *a, **kw):
        return self.ddp(*a, **kw)


@torch.no_grad()
def validate(cfg: PretrainConfig, student: Student, teacher, dataset, device, world=1, rank=0) -> float:
    """Mean loss over the first ``val_samples`` validation images, random masks at ``val_mask_ratio``."""
    student.eval()
    n = min(len(dataset), cfg.val_samples)
    gen = MaskGenerator("random", student.visual.patch_embed.grid_size, cfg.val_mask_ratio, seed=cfg.seed + 1)
    total, count, bs = 0.0, 0, max(1, cfg.global_batch_size // world)
    for b, first in enumerate(range(rank * bs, n, bs * world)):
        items = [dataset[(0, i)] for i in range(first, min(first + bs, n))]
        images = torch.stack([x for x, _ in items]).to(device)
        idx = torch.tensor([i for _, i in items], device=device)
        mask = gen.batch(b * world + rank, len(items)).to(device)
        loss = pretrain_loss(cfg.objective, student, images, teacher(images, idx), mask)
        total, count = total + float(loss) * len(items), count + len(items)
    stats = _mean_across(torch.tensor([total, count], dtype=torch.float64), world) * world
    return float(stats[0] / stats[1])


def _save(out: Path, student, opt, sched, scaler, step, history, cfg, rank, world) -> str:
    path = out / "last.pt"
    if rank == 0:
        save_checkpoint(path, student, opt, sched, scaler, step, history, cfg.to_dict())
        write_loss_csv(out / "loss.csv", history)
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
    return str(path)


def _device(spec: str, rank: int) -> str:
    if spec == "auto":
        return f"cuda:{rank % torch.cuda.device_count()}" if torch.cuda.is_available() else "cpu"
    return spec
