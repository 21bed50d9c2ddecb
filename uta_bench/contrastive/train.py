"""``train contrastive``: the paper's second stage (Sec. 3, App. A.1), read top to bottom.

Set-up (process group, model, LAMB with layer decay, data streams, resume) is in :func:`setup`; the
loop in :func:`train_contrastive` is: lr for this step -> next global batch -> accumulated backward
(``loss.accumulated_backward``) -> clip -> step -> log -> save the resumable state now and then. At the
end the model is written in the released UTA layout (``OUTPUT_DIR/model.safetensors``).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch

from uta_bench.contrastive.config import ContrastiveConfig
from uta_bench.training import (TrainLogger, autocast, grad_scaler, load_training_state, optimizer_step,
                                save_training_state, set_lr, setup_distributed, teardown_distributed,
                                warmup_cosine_lr)

log = logging.getLogger(__name__)
STATE_NAME, MODEL_NAME = "last.pt", "model.safetensors"   # last.pt: the training core's state file


@dataclass
class Run:
    """Everything the loop needs; built once by :func:`setup`."""

    cfg: ContrastiveConfig
    env: object
    model: torch.nn.Module          # the UTAModel (what is saved)
    clip: torch.nn.Module           # ClipPair, DDP-wrapped when distributed (what is called)
    optimizer: torch.optim.Optimizer
    scaler: object
    data: object
    tokenizer: object
    loss_fn: object
    start_step: int = 0
    provenance: dict = field(default_factory=dict)


@dataclass
class Result:
    final_step: int
    losses: list = field(default_factory=list)
    exported: Path | None = None


def _resume_path(cfg: ContrastiveConfig, resume: str | None) -> Path | None:
    if resume in (None, "no"):
        return None
    if resume == "auto":
        p = Path(cfg.output_dir) / STATE_NAME
        return p if p.is_file() else None
    return Path(resume)


def setup(cfg: ContrastiveConfig, resume: str | None = "auto") -> Run:
    import open_clip

    from uta_bench.contrastive.data import ImageTextSample, PairStreams, expand_shards
    from uta_bench.contrastive.loss import make_clip_loss
    from uta_bench.contrastive.model import ClipPair, build_clip, param_groups
    from uta_bench.errors import UtaBenchError
    from uta_bench.models.uta import UTA_ARCHS, text_cfg
    from uta_bench.registry import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

    env = setup_distributed(cfg.device)
    cfg.check_world(env.world_size)
    if not cfg.data:
        raise UtaBenchError("no training data: set 'data' in the recipe or pass --data (webdataset shards)")
    expand_shards(cfg.data)           # a missing shard fails in seconds, before any model is built
    torch.manual_seed(cfg.seed)
    model, provenance = build_clip(cfg)
    model.to(env.device).train()
    groups = param_groups(model, weight_decay=cfg.weight_decay, layer_decay=cfg.layer_decay)
    from timm.optim import create_optimizer_v2

    optimizer = create_optimizer_v2(groups, opt=cfg.optimizer, lr=cfg.lr, weight_decay=cfg.weight_decay,
                                    betas=cfg.betas)
    scaler = grad_scaler(env.device, cfg.precision)
    start, position = 0, None
    state_path = _resume_path(cfg, resume)
    if state_path is not None:
        state = load_training_state(state_path, model=model, optimizer=optimizer, scaler=scaler)
        start, position = state.step, state.data_position
        log.info("resumed from %s at step %d", state_path, start)
    clip = ClipPair(model)
    if env.world_size > 1:
        clip = torch.nn.parallel.DistributedDataParallel(
            clip, device_ids=[env.device.index] if env.device.type == "cuda" else None)
    arch = UTA_ARCHS[cfg.arch]
    sample = ImageTextSample(arch["img_size"], OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, cfg.crop_scale,
                             cfg.image_key, cfg.text_key)
    data = PairStreams(cfg.data, n_streams=cfg.data_streams, global_batch=cfg.global_batch_size,
                       rank=env.rank, world_size=env.world_size, seed=cfg.seed, sample=sample, position=position,
                       decode_threads=cfg.decode_threads)
    tokenizer = open_clip.get_tokenizer("ViT-B-16", context_length=text_cfg(cfg.arch)["context_length"])
    return Run(cfg, env, model, clip, optimizer, scaler, data, tokenizer,
               make_clip_loss(env.rank, env.world_size), start, provenance)


def _micro_batches(run: Run, images: torch.Tensor, texts: list[str]) -> list[tuple]:
    tokens = run.tokenizer(texts)
    dev, m = run.env.device, run.cfg.micro_batch_size
    return [(images[i:i + m].to(dev, non_blocking=True), tokens[i:i + m].to(dev, non_blocking=True))
            for i in range(0, len(images), m)]


def _save_state(run: Run, step: int) -> None:
    from uta_bench.contrastive.data import global_position

    position = global_position(run.data.local_position(), run.env.world_size, run.cfg.data_streams)
    if run.env.is_main:
        save_training_state(Path(run.cfg.output_dir) / STATE_NAME, model=run.model, optimizer=run.optimizer,
                            step=step, data_position=position, scaler=run.scaler,
                            extra={"samples_seen": step * run.cfg.global_batch_size, "recipe": run.cfg.name})


def train_contrastive(cfg: ContrastiveConfig, *, resume: str | None = "auto", stop_after: int | None = None,
                      progress: bool = False, on_log=None) -> Result:
    """Train until ``cfg.samples`` are seen (or ``stop_after`` steps: state saved, resumable)."""
    from uta_bench.contrastive.loss import accumulated_backward
    from uta_bench.progress import progress_bar

    run = setup(cfg, resume)
    total, env = cfg.total_steps, run.env
    end = min(total, stop_after) if stop_after else total
    result = Result(final_step=run.start_step)
    logger = TrainLogger(cfg.output_dir, enabled=env.is_main, tensorboard=False, start_step=run.start_step)
    amp = lambda: autocast(env.device, cfg.precision)  # noqa: E731
    try:
        with progress_bar(progress and env.is_main, end - run.start_step, "contrastive", "step") as advance:
            for step in range(run.start_step, end):
                lr = warmup_cosine_lr(step, base_lr=cfg.lr, total_steps=total, warmup_steps=cfg.warmup_steps,
                                      min_lr=cfg.min_lr)
                set_lr(run.optimizer, lr)
                images, texts = run.data.next_batch()
                run.optimizer.zero_grad(set_to_none=True)
                loss = accumulated_backward(run.clip, run.loss_fn, _micro_batches(run, images, texts),
                                            logit_scale=1.0 / cfg.temperature, autocast=amp, scaler=run.scaler)
                optimizer_step(run.optimizer, run.model.parameters(), scaler=run.scaler,
                               max_norm=cfg.grad_clip or None)
                done = step + 1
                result.losses.append(loss)
                if done % cfg.log_every == 0 or done == end:
                    logger.log(done, loss=loss, lr=lr, samples_seen=done * cfg.global_batch_size)
                    if on_log and env.is_main:
                        on_log({"step": done, "loss": loss, "lr": lr})
                if (cfg.ckpt_every and done % cfg.ckpt_every == 0) or done == end:
                    _save_state(run, done)
                result.final_step = done
                advance(1)
        if result.final_step == total and env.is_main:
            result.exported = export_final(run, total)
    finally:
        logger.close()
        teardown_distributed(env)
    return result


def export_final(run: Run, step: int) -> Path:
    """The fine-tuned CLIP in the released UTA layout, provenance in the safetensors metadata."""
    from uta_bench.contrastive.model import export_checkpoint
    from uta_bench.provenance import versions

    cfg = run.cfg
    meta = {"format": "uta-bench-contrastive/1", "recipe": cfg.name, "arch": cfg.arch,
            "samples_seen": str(step * cfg.global_batch_size), "steps": str(step),
            "vision_init": run.provenance["vision_init"], "text_init": run.provenance["text_init"],
            "config": cfg.to_dict(), "versions": versions()}
    return export_checkpoint(Path(cfg.output_dir) / MODEL_NAME, run.model, cfg.arch, meta)
