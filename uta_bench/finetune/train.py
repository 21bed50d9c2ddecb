"""Full fine-tuning of a registered vision tower, assembled from timm's own components.

* layer-wise lr decay: ``timm.optim.param_groups_layer_decay`` (uses ``Eva.group_matcher``), AdamW;
  each group's ``lr_scale`` is applied by ``training.set_lr``;
* warm-up + cosine per update: ``training.warmup_cosine_lr`` (its convention is stated there);
* drop-path: the tower is rebuilt with ``drop_path_rate`` and the trunk copied exactly;
* mixup / cutmix / label smoothing: ``timm.data.Mixup`` + ``SoftTargetCrossEntropy`` (or
  ``LabelSmoothingCrossEntropy`` without mixing); RandAugment via ``timm.data.create_transform``;
* EMA: ``timm.utils.ModelEmaV3``; bf16: ``training.autocast``; multi-process: torchrun + DDP;
* exact resume: ``<out>/last.pt`` (``training.save_training_state``) holds model/optimizer/step with the
  EMA weights and the run's settings as extras; all randomness is a function of (seed, step) or
  (seed, epoch, sample), so resumed runs reproduce uninterrupted ones bit for bit;
* log: ``<out>/train_log.jsonl`` (+ TensorBoard when installed), one line per update.
"""
from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import torch

from uta_bench.errors import UtaBenchError
from uta_bench.finetune.config import FinetuneConfig, resolve_resources
from uta_bench.finetune.data import EpochIndices, SeededDataset, batch_seed, rng_scope, train_transform
from uta_bench.progress import progress_bar
from uta_bench.training import (TrainLogger, autocast, backward, grad_scaler, load_training_state, optimizer_step,
                                save_training_state, set_lr, setup_distributed, warmup_cosine_lr)
from uta_bench.training.state import read_training_state

STATE = "last.pt"
MATCH = ("classes", "steps_per_epoch", "global_batch", "model_name")   # must not change across a resume


def build_optimizer(tower, cfg: FinetuneConfig):
    from timm.optim import param_groups_layer_decay

    groups = param_groups_layer_decay(tower, weight_decay=cfg.weight_decay,
                                      no_weight_decay_list=tuple(tower.no_weight_decay()),
                                      layer_decay=cfg.layer_decay)
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps)


def warmup_updates(cfg: FinetuneConfig, total: int) -> int:
    """``warmup_epochs`` as a number of updates (at least one update is left for the cosine)."""
    return min(int(round(cfg.warmup_epochs * total / cfg.epochs)), total - 1)


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


def train(cfg: FinetuneConfig, progress: bool = True, resume: bool = True) -> dict:
    """Fine-tune; returns {"out_dir", "step", "total_steps", "losses", "exported": [...], ...}."""
    from uta_bench.finetune.model import check_card, finetune_tower

    cfg.validate()
    cfg = resolve_resources(cfg)            # "auto" device / workers (a config made without make_config)
    check_card(cfg.model)
    env = setup_distributed(cfg.device)
    per_dev = _per_device_batch(cfg, env.world_size)
    loaded, ds, classes = _load(cfg, env)
    steps_per_epoch = _steps_per_epoch(cfg, ds, env, per_dev)
    total = cfg.epochs * steps_per_epoch
    tower = finetune_tower(loaded, len(classes), cfg.drop_path)
    opt, scaler = build_optimizer(tower, cfg), grad_scaler(env.device, cfg.precision)
    mixup, criterion = build_loss(cfg, len(classes))
    ema = _ema(tower, cfg)
    out = Path(cfg.out_dir)
    meta = {"classes": classes, "steps_per_epoch": steps_per_epoch, "global_batch": cfg.batch_size,
            "model_name": cfg.model, "config": {k: v for k, v in cfg.to_dict().items() if k != "extra"}}
    step = _resume(out / STATE, resume, tower, opt, scaler, ema, meta)
    model = _ddp(tower, env)
    warmup, stop, losses = warmup_updates(cfg, total), min(total, cfg.stop_after or total), []
    with TrainLogger(out, enabled=env.is_main, start_step=step) as logger, \
            progress_bar(progress and env.is_main, stop - step, "fine-tune", "step") as advance:
        while step < stop:
            epoch, pos = divmod(step, steps_per_epoch)
            batches = _epoch_batches(ds, cfg, env, epoch, pos, per_dev)
            for _ in range(pos, steps_per_epoch):
                if step >= stop:
                    break
                lr = warmup_cosine_lr(step, base_lr=cfg.lr, total_steps=total, warmup_steps=warmup,
                                      min_lr=cfg.min_lr)
                set_lr(opt, lr)
                loss = _update(model, tower, opt, scaler, batches, mixup, criterion, cfg, env, step)
                step += 1
                if ema is not None:
                    ema.update(tower, step=step)
                losses.append(loss)
                logger.log(step, epoch=epoch, loss=loss, lr=lr)
                if env.is_main and (step % cfg.save_every == 0 or step == stop):
                    save_training_state(out / STATE, model=tower, optimizer=opt, step=step, data_position=step,
                                        scaler=scaler, extra=_extras(meta, ema))
                advance(1)
    exported = _export(out, cfg, loaded, tower, ema, classes, step) if step >= total and env.is_main else []
    if env.world_size > 1:
        torch.distributed.barrier()
    return {"out_dir": str(out), "step": step, "total_steps": total, "losses": losses, "rank": env.rank,
            "exported": [str(p) for p in exported], "classes": classes}


def _update(model, tower, opt, scaler, batches, mixup, criterion, cfg: FinetuneConfig, env, step: int) -> float:
    """One optimizer update from ``accum_steps`` micro-batches; returns the update's loss."""
    model.train()
    opt.zero_grad(set_to_none=True)
    step_loss = 0.0
    for micro in range(cfg.accum_steps):
        x, y = next(batches)
        x, y = x.to(env.device, non_blocking=True), y.to(env.device, non_blocking=True)
        last = micro == cfg.accum_steps - 1
        sync = model.no_sync() if env.world_size > 1 and not last else nullcontext()   # all-reduce once
        with rng_scope(batch_seed(cfg.seed, step, micro, env.rank)), sync:
            if mixup is not None:
                x, y = mixup(x, y)
            with autocast(env.device, cfg.precision):
                loss = criterion(model(x).float(), y) / cfg.accum_steps
            backward(loss, scaler)
        step_loss += float(loss.detach())
    if not torch.isfinite(torch.tensor(step_loss)):
        raise UtaBenchError(f"loss is {step_loss} at update {step}; lower --lr or use fp32")
    optimizer_step(opt, tower.parameters(), scaler=scaler, max_norm=cfg.clip_grad)
    return step_loss


def _per_device_batch(cfg: FinetuneConfig, world: int) -> int:
    per_dev, rem = divmod(cfg.batch_size, world * cfg.accum_steps)
    if rem or per_dev < 1:
        raise UtaBenchError(f"batch size {cfg.batch_size} is not divisible by world size {world} x "
                            f"accum_steps {cfg.accum_steps}")
    if (cfg.mixup > 0 or cfg.cutmix > 0) and per_dev % 2:
        raise UtaBenchError(f"mixup/cutmix need an even per-device batch (got {per_dev})")
    return per_dev


def _load(cfg: FinetuneConfig, env):
    """(LoadedModel, augmented training set, class names); bad data fails before the model load."""
    from uta_bench.data.imagefolder import image_folder
    from uta_bench.finetune.model import require_eva
    from uta_bench.models.loader import load_model

    base = image_folder(cfg.train_dir)
    classes = list(base.classes)
    if len(classes) < 2:
        raise UtaBenchError(f"{cfg.train_dir} has {len(classes)} class folder(s); fine-tuning needs >= 2")
    torch.manual_seed(cfg.seed)
    loaded = load_model(cfg.model, checkpoint=cfg.checkpoint, device=str(env.device),
                        trust_checkpoint=cfg.trust_checkpoint, pretrained=cfg.pretrained)
    require_eva(loaded)
    transform = train_transform(cfg, loaded.card.image_size, loaded.card.mean, loaded.card.std)
    return loaded, SeededDataset(base, transform, seed=cfg.seed), classes


def _steps_per_epoch(cfg: FinetuneConfig, ds, env, per_dev: int) -> int:
    n = len(EpochIndices(ds, env.world_size, env.rank, cfg.seed, 0)) // (per_dev * cfg.accum_steps)
    if n < 1:
        raise UtaBenchError(f"{cfg.train_dir} has {len(ds)} images, fewer than one global batch of "
                            f"{cfg.batch_size}; lower --batch-size")
    return n


def _ema(tower, cfg: FinetuneConfig):
    if not cfg.ema:
        return None
    from timm.utils import ModelEmaV3

    return ModelEmaV3(tower, decay=cfg.ema_decay)


def _extras(meta: dict, ema) -> dict:
    return {**meta, "ema": ema.module.state_dict()} if ema is not None else dict(meta)


def _resume(path: Path, resume: bool, tower, opt, scaler, ema, meta: dict) -> int:
    """The update count to start from: 0 for a new run, else restored in place from ``path``."""
    if not path.is_file():
        return 0
    if not resume:
        raise UtaBenchError(f"{path} exists; pass --resume to continue it or use another --out")
    blob = read_training_state(path)
    saved = blob["extra"]
    for key in MATCH:
        if saved.get(key) != meta[key]:
            raise UtaBenchError(f"cannot resume from {path}: {key} was {saved.get(key)!r}, now {meta[key]!r}; "
                                "use the same settings or a new --out directory")
    if (ema is None) != ("ema" not in saved):
        raise UtaBenchError(f"cannot resume from {path}: EMA was {'on' if 'ema' in saved else 'off'}")
    state = load_training_state(path, model=tower, optimizer=opt, scaler=scaler, blob=blob)
    if ema is not None:
        ema.module.load_state_dict(saved["ema"])
    return state.step


def _ddp(tower, env):
    if env.world_size == 1:
        return tower
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(tower, device_ids=[env.device.index] if env.device.type == "cuda" else None)


def _epoch_batches(ds, cfg: FinetuneConfig, env, epoch: int, pos: int, per_dev: int):
    """This rank's batches of ``epoch`` from update ``pos`` on (the epoch's order is a function of the seed)."""
    from torch.utils.data import DataLoader

    ds.set_epoch(epoch)
    sampler = EpochIndices(ds, env.world_size, env.rank, cfg.seed, epoch, start=pos * per_dev * cfg.accum_steps)
    return iter(DataLoader(ds, batch_size=per_dev, sampler=sampler, num_workers=cfg.workers, drop_last=True,
                           pin_memory=env.device.type == "cuda"))


def _export(out: Path, cfg: FinetuneConfig, loaded, tower, ema, classes: list[str], step: int) -> list:
    """``finetuned.safetensors`` (and ``finetuned_ema.safetensors``) in the registered reload layout."""
    from uta_bench.finetune.model import save_finetuned

    info = {"steps": step, "recipe": cfg.recipe, "image_size": loaded.card.image_size}
    paths = [save_finetuned(out / "finetuned.safetensors", loaded, tower, classes, {**info, "weights": "model"})[0]]
    if ema is not None:
        paths.append(save_finetuned(out / "finetuned_ema.safetensors", loaded, ema.module, classes,
                                    {**info, "weights": "ema"})[0])
    return paths
