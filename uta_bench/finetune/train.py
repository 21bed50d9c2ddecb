"""Full fine-tuning of a registered vision tower, assembled from timm's own components.

* layer-wise lr decay: ``timm.optim.param_groups_layer_decay`` (uses ``Eva.group_matcher``), AdamW;
* warm-up + cosine per update: ``timm.scheduler.CosineLRScheduler`` (applies each group's ``lr_scale``);
* drop-path: the tower is rebuilt with ``drop_path_rate`` and the trunk copied exactly;
* mixup / cutmix / label smoothing: ``timm.data.Mixup`` + ``SoftTargetCrossEntropy`` (or
  ``LabelSmoothingCrossEntropy`` without mixing); RandAugment via ``timm.data.create_transform``;
* EMA: ``timm.utils.ModelEmaV3``; bf16: ``torch.autocast``; multi-process: torchrun + DDP;
* exact resume: ``<out>/last.pt`` holds model/optimizer/EMA/step, and all randomness is a function of
  (seed, step) or (seed, epoch, sample), so resumed runs reproduce uninterrupted ones bit for bit.
"""
from __future__ import annotations

import json
import os
from contextlib import nullcontext
from pathlib import Path

import torch

from uta_bench.errors import UtaBenchError
from uta_bench.finetune.config import FinetuneConfig
from uta_bench.finetune.data import EpochIndices, SeededDataset, batch_seed, rng_scope, train_transform

STATE = "last.pt"


def dist_env(device: str) -> tuple[int, int, torch.device]:
    """(world, rank, device); initialises the process group under torchrun."""
    import torch.distributed as dist

    world, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
    dev = torch.device(device)
    if world > 1:
        if dev.type == "cuda":
            dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(dev)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return world, rank, dev


def build_optimizer(tower, cfg: FinetuneConfig):
    from timm.optim import param_groups_layer_decay

    groups = param_groups_layer_decay(tower, weight_decay=cfg.weight_decay,
                                      no_weight_decay_list=tuple(tower.no_weight_decay()),
                                      layer_decay=cfg.layer_decay)
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps)


def build_scheduler(opt, cfg: FinetuneConfig, total: int):
    from timm.scheduler import CosineLRScheduler

    warm = min(int(round(cfg.warmup_epochs * total / cfg.epochs)), total - 1)
    return CosineLRScheduler(opt, t_initial=max(total - warm, 1), lr_min=cfg.min_lr, warmup_t=warm,
                             warmup_lr_init=cfg.warmup_lr, warmup_prefix=True, t_in_epochs=False)


def build_loss(cfg: FinetuneConfig, num_classes: int):
    from timm.data import Mixup
    from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy

    if cfg.mixup > 0 or cfg.cutmix > 0:
        mix = Mixup(mixup_alpha=cfg.mixup, cutmix_alpha=cfg.cutmix, prob=cfg.mixup_prob,
                    switch_prob=cfg.mixup_switch_prob, label_smoothing=cfg.smoothing, num_classes=num_classes)
        return mix, SoftTargetCrossEntropy()
    if cfg.smoothing > 0:
        return None, LabelSmoothingCrossEntropy(smoothing=cfg.smoothing)
    return None, torch.nn.CrossEntropyLoss()


def _save_state(path: Path, tower, opt, ema, step: int, meta: dict) -> None:
    state = {"model": tower.state_dict(), "optimizer": opt.state_dict(), "step": step, **meta}
    if ema is not None:
        state["ema"] = ema.module.state_dict()
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def _load_state(path: Path, tower, opt, ema, meta: dict) -> int:
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("classes", "steps_per_epoch", "global_batch", "model_name"):
        if state.get(key) != meta[key]:
            raise UtaBenchError(f"cannot resume from {path}: {key} was {state.get(key)!r}, now {meta[key]!r}; "
                                "use the same settings or a new --out directory")
    if (ema is None) != ("ema" not in state):
        raise UtaBenchError(f"cannot resume from {path}: EMA was {'on' if 'ema' in state else 'off'}")
    tower.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    if ema is not None:
        ema.module.load_state_dict(state["ema"])
    return int(state["step"])


def _trim_log(log: Path, step: int) -> None:
    if log.is_file():
        keep = [ln for ln in log.read_text().splitlines() if ln and json.loads(ln)["step"] <= step]
        log.write_text("".join(ln + "\n" for ln in keep))


def train(cfg: FinetuneConfig, progress: bool = True, resume: bool = True) -> dict:
    """Fine-tune; returns {"out_dir", "step", "total_steps", "losses", "exported": [...]}."""
    from torch.utils.data import DataLoader

    from uta_bench.data.imagefolder import image_folder
    from uta_bench.finetune.model import check_card, finetune_tower, require_eva, save_finetuned
    from uta_bench.models.loader import load_model
    from uta_bench.progress import make_progress

    cfg.validate()
    check_card(cfg.model)
    world, rank, dev = dist_env(cfg.device)
    per_dev, rem = divmod(cfg.batch_size, world * cfg.accum_steps)
    if rem or per_dev < 1:
        raise UtaBenchError(f"batch size {cfg.batch_size} is not divisible by world size {world} x "
                            f"accum_steps {cfg.accum_steps}")
    base = image_folder(cfg.train_dir)
    classes = list(base.classes)
    if len(classes) < 2:
        raise UtaBenchError(f"{cfg.train_dir} has {len(classes)} class folder(s); fine-tuning needs >= 2")
    if (cfg.mixup > 0 or cfg.cutmix > 0) and per_dev % 2:
        raise UtaBenchError(f"mixup/cutmix need an even per-device batch (got {per_dev})")
    torch.manual_seed(cfg.seed)
    loaded = load_model(cfg.model, checkpoint=cfg.checkpoint, device=str(dev),
                        trust_checkpoint=cfg.trust_checkpoint, pretrained=cfg.pretrained)
    require_eva(loaded)
    ds = SeededDataset(base, train_transform(cfg, loaded.card.image_size, loaded.card.mean, loaded.card.std),
                       seed=cfg.seed)
    steps_per_epoch = len(EpochIndices(ds, world, rank, cfg.seed, 0)) // (per_dev * cfg.accum_steps)
    if steps_per_epoch < 1:
        raise UtaBenchError(f"{cfg.train_dir} has {len(ds)} images, fewer than one global batch of "
                            f"{cfg.batch_size}; lower --batch-size")
    total = cfg.epochs * steps_per_epoch
    tower = finetune_tower(loaded, len(classes), cfg.drop_path)
    opt = build_optimizer(tower, cfg)
    sched = build_scheduler(opt, cfg, total)
    mixup, criterion = build_loss(cfg, len(classes))
    ema = None
    if cfg.ema:
        from timm.utils import ModelEmaV3

        ema = ModelEmaV3(tower, decay=cfg.ema_decay)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    log, state_path = out / "log.jsonl", out / STATE
    meta = {"classes": classes, "steps_per_epoch": steps_per_epoch, "global_batch": cfg.batch_size,
            "model_name": cfg.model, "config": {k: v for k, v in cfg.to_dict().items() if k != "extra"}}
    step = 0
    if state_path.is_file():
        if not resume:
            raise UtaBenchError(f"{state_path} exists; pass --resume to continue it or use another --out")
        step = _load_state(state_path, tower, opt, ema, meta)
        if rank == 0:
            _trim_log(log, step)
    elif rank == 0 and log.is_file():
        log.unlink()
    sched.step_update(step)
    model = tower
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(tower, device_ids=[dev.index] if dev.type == "cuda" else None)
    amp = (torch.autocast(device_type=dev.type, dtype=torch.bfloat16) if cfg.precision == "bf16"
           else nullcontext())
    stop = min(total, cfg.stop_after or total)
    losses: list[float] = []
    bar = make_progress("step") if progress and rank == 0 else None
    with (bar or nullcontext()):
        task = bar.add_task("fine-tune", total=total, completed=step) if bar else None
        while step < stop:
            epoch, pos = divmod(step, steps_per_epoch)
            ds.set_epoch(epoch)
            sampler = EpochIndices(ds, world, rank, cfg.seed, epoch, start=pos * per_dev * cfg.accum_steps)
            loader = DataLoader(ds, batch_size=per_dev, sampler=sampler, num_workers=cfg.workers,
                                drop_last=True, pin_memory=dev.type == "cuda")
            batches = iter(loader)
            for _ in range(pos, steps_per_epoch):
                if step >= stop:
                    break
                model.train()
                opt.zero_grad(set_to_none=True)
                step_loss = 0.0
                for micro in range(cfg.accum_steps):
                    x, y = next(batches)
                    x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
                    sync = (model.no_sync() if world > 1 and micro < cfg.accum_steps - 1 else nullcontext())
                    with rng_scope(batch_seed(cfg.seed, step, micro, rank)), sync:
                        if mixup is not None:
                            x, y = mixup(x, y)
                        with amp:
                            loss = criterion(model(x).float(), y) / cfg.accum_steps
                        loss.backward()
                    step_loss += float(loss.detach())
                if not torch.isfinite(torch.tensor(step_loss)):
                    raise UtaBenchError(f"loss is {step_loss} at update {step}; lower --lr or use fp32")
                if cfg.clip_grad:
                    torch.nn.utils.clip_grad_norm_(tower.parameters(), cfg.clip_grad)
                opt.step()
                step += 1
                sched.step_update(step)
                if ema is not None:
                    ema.update(tower, step=step)
                losses.append(step_loss)
                if rank == 0:
                    with log.open("a") as f:
                        f.write(json.dumps({"step": step, "epoch": epoch, "loss": step_loss,
                                            "lr": opt.param_groups[-1]["lr"]}) + "\n")
                    if step % cfg.save_every == 0 or step == stop:
                        _save_state(state_path, tower, opt, ema, step, meta)
                if bar:
                    bar.update(task, completed=step, description=f"fine-tune loss {step_loss:.3f}")
    exported = []
    if step >= total and rank == 0:
        info = {"steps": step, "recipe": cfg.recipe, "image_size": loaded.card.image_size}
        exported.append(save_finetuned(out / "finetuned.safetensors", loaded, tower, classes,
                                       {**info, "weights": "model"})[0])
        if ema is not None:
            exported.append(save_finetuned(out / "finetuned_ema.safetensors", loaded, ema.module, classes,
                                           {**info, "weights": "ema"})[0])
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
    return {"out_dir": str(out), "step": step, "total_steps": total, "losses": losses, "rank": rank,
            "exported": [str(p) for p in exported], "classes": classes}
