"""The pre-training loop, top to bottom. Single process, or ``torchrun`` DDP (gloo on CPU, nccl on GPU).

    torchrun --nproc_per_node 8 $(which uta-bench) train pretrain --recipe uta_b14 --data /data/in21k

One step: LR for this step -> this rank's slice of the global batch -> mask (a function of the step) ->
teacher tokens (no grad) -> student loss under autocast -> backward -> clip -> AdamW. Every line goes
to ``OUTPUT_DIR/train_log.jsonl`` (and TensorBoard when installed); every ``ckpt_every`` steps the full
state is saved atomically to ``OUTPUT_DIR/last.pt``; a non-finite loss stops the run before any update,
keeping the last good checkpoint. Plumbing (torchrun, schedule, state, precision, log) is
``uta_bench.training``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from uta_bench.errors import UtaBenchError
from uta_bench.pretrain.config import PretrainConfig
from uta_bench.pretrain.data import GlobalBatches
from uta_bench.pretrain.masking import MaskGenerator
from uta_bench.pretrain.objectives import USES_MASK_TOKEN, Student, pretrain_loss
from uta_bench.progress import progress_bar
from uta_bench.training import (TrainLogger, autocast, backward, grad_scaler, load_training_state, optimizer_step,
                                save_training_state, set_lr, setup_distributed, warmup_cosine_lr)

STATE = "last.pt"


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


def param_groups(model: torch.nn.Module, weight_decay: float):
    """No decay on biases, norms and token/position embeddings (the usual ViT recipe)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        skip = p.ndim <= 1 or name.endswith((".bias", "cls_token", "pos_embed", "mask_token"))
        (no_decay if skip else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def pretrain(cfg: PretrainConfig, dataset, teacher: torch.nn.Module, student: Student,
             val_dataset=None, resume: str | None = None, stop_after: int | None = None,
             progress: bool = True, on_log=None) -> PretrainResult:
    """Train ``student`` against ``teacher`` on ``dataset`` (items ``(epoch, index)`` -> (img, index)).

    ``resume``: a checkpoint path, or "auto" (``output_dir/last.pt`` when it exists).
    ``stop_after``: stop (as if interrupted) after this global step; used by tests and time-boxing.
    """
    env = setup_distributed(cfg.device)
    out = Path(cfg.output_dir)
    total, warmup = cfg.total_steps(len(dataset)), cfg.warmup(len(dataset))
    masks = MaskGenerator(cfg.mask_kind, student.visual.patch_embed.grid_size, cfg.mask_ratio, seed=cfg.seed)
    student, teacher, model = _place(cfg, student, teacher, env)
    opt = torch.optim.AdamW(param_groups(student, cfg.weight_decay), lr=cfg.lr, betas=tuple(cfg.betas))
    scaler = grad_scaler(env.device, cfg.precision)
    start, history, last_good = _resume(out, resume, student, opt, scaler)
    sampler = GlobalBatches(len(dataset), cfg.global_batch_size, total, start, cfg.seed, env.rank, env.world_size)
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler, num_workers=cfg.workers,
                                         generator=torch.Generator().manual_seed(cfg.seed))  # not the global RNG
    end = min(total, stop_after) if stop_after is not None else total
    step_times: list[float] = []
    with TrainLogger(out, enabled=env.is_main, start_step=start) as logger, \
            progress_bar(progress and env.is_main, end - start, f"pretrain {cfg.objective}", "step") as advance:
        model.train()
        for step, (images, indices) in zip(range(start, end), loader):
            t0 = time.perf_counter()
            lr = warmup_cosine_lr(step, base_lr=cfg.lr, total_steps=total, warmup_steps=warmup, min_lr=cfg.min_lr)
            set_lr(opt, lr)
            images, indices = images.to(env.device, non_blocking=True), indices.to(env.device)
            local = slice(env.rank * sampler.local, (env.rank + 1) * sampler.local)
            mask = masks.batch(step, cfg.global_batch_size)[local].to(env.device)
            with autocast(env.device, cfg.precision):
                with torch.no_grad():
                    targets = teacher(images, indices).float()
                loss = pretrain_loss(cfg.objective, model, images, targets, mask)
            mean_loss = _mean_across(loss.detach().float(), env.world_size)
            _stop_if_diverged(mean_loss, step, last_good)
            opt.zero_grad(set_to_none=True)
            backward(loss, scaler)
            optimizer_step(opt, student.parameters(), scaler=scaler, max_norm=cfg.grad_clip)
            step_times.append(time.perf_counter() - t0)
            row = {"step": step + 1, "epoch": sampler.epoch_of(step + 1), "lr": lr,
                   "train_loss": float(mean_loss), "step_s": step_times[-1]}
            if val_dataset is not None and _validation_due(cfg, step + 1, total):
                row["val_loss"] = validate(cfg, student, teacher, val_dataset, env.device, env.world_size, env.rank)
                model.train()
            history.append(row)
            logger.log(**row)
            if on_log and env.is_main and ((step + 1) % cfg.log_every == 0 or step + 1 == end):
                on_log(row)
            advance(1)
            if cfg.ckpt_every and (step + 1) % cfg.ckpt_every == 0 and step + 1 < total:
                last_good = _save(out, student, opt, scaler, step + 1, history, cfg, env)
    final = history[-1]["step"] if history else start
    if final == total or stop_after is not None:
        last_good = _save(out, student, opt, scaler, final, history, cfg, env)
    mean_s = sum(step_times[1:]) / (len(step_times) - 1) if len(step_times) > 1 else float("nan")
    return PretrainResult(history, final, last_good, mean_s, student, start)


def _place(cfg: PretrainConfig, student: Student, teacher, env):
    """Move both models to this rank's device; the student is wrapped in DDP when there are several ranks."""
    student = student.to(env.device)
    student.mask_token.requires_grad_(USES_MASK_TOKEN[cfg.objective])   # DDP: no unused parameters
    teacher = teacher.to(env.device).eval()
    if cfg.grad_checkpointing:
        student.visual.set_grad_checkpointing(True)
    if env.world_size == 1:
        return student, teacher, student
    from torch.nn.parallel import DistributedDataParallel

    ddp = DistributedDataParallel(student, device_ids=[env.device.index] if env.device.type == "cuda" else None)
    return student, teacher, _DDPStudent(ddp)


class _DDPStudent(torch.nn.Module):
    """Lets ``pretrain_loss`` call the DDP wrapper like the bare student (gradients sync in DDP)."""

    def __init__(self, ddp):
        super().__init__()
        self.ddp = ddp

    def forward(self, *a, **kw):
        return self.ddp(*a, **kw)


def _resume(out: Path, resume: str | None, student, opt, scaler) -> tuple[int, list[dict], str | None]:
    """(start step, history so far, checkpoint path) — restored in place from ``resume`` when given."""
    path = resume
    if resume == "auto":
        path = str(out / STATE) if (out / STATE).is_file() else None
    if not path:
        return 0, [], None
    state = load_training_state(path, model=student, optimizer=opt, scaler=scaler)
    return state.step, list(state.extra["history"]), path


def _validation_due(cfg: PretrainConfig, done: int, total: int) -> bool:
    return done == total or bool(cfg.val_every and done % cfg.val_every == 0)


def _stop_if_diverged(loss: torch.Tensor, step: int, last_good: str | None) -> None:
    if not torch.isfinite(loss):
        keep = f"the last good checkpoint is {last_good}" if last_good else "no checkpoint was written yet"
        raise DivergedError(f"loss is {loss.item()} at step {step}: stopped before updating; {keep}. "
                            "Lower lr, raise warm-up or use fp32/bf16")


def _mean_across(value: torch.Tensor, world: int) -> torch.Tensor:
    if world > 1:
        import torch.distributed as dist

        value = value.detach().clone()
        dist.all_reduce(value)
        value /= world
    return value


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


def _save(out: Path, student, opt, scaler, step: int, history: list[dict], cfg: PretrainConfig, env) -> str:
    """The full state to ``out/last.pt`` on rank 0 (the step is the data position); all ranks wait for it."""
    path = out / STATE
    if env.is_main:
        save_training_state(path, model=student, optimizer=opt, step=step, data_position=step, scaler=scaler,
                            extra={"history": history, "config": cfg.to_dict()})
    if env.world_size > 1:
        torch.distributed.barrier()
    return str(path)
