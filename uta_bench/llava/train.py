"""LLaVA stage 1 (projector only) and stage 2 (projector + LM) training; vision tower frozen throughout.

AdamW, linear warm-up then cosine decay to 0 or a constant rate (``uta_bench.training.schedule``, whose
warm-up convention applies), global batch built from micro-batches x gradient accumulation x DDP ranks
(``torchrun``), optional gradient checkpointing and bf16 autocast. The resumable state ``<out>/last.pt``
(``training.save_training_state``) holds the trainable weights only, the optimizer state, the step, the
RNG states, the loss list and the recipe; the data order is a pure function of (seed, epoch), so a
resumed run repeats the uninterrupted one exactly. Outputs: ``trainable.safetensors`` (projector + any
trained LM weights), ``llava_config.json`` (everything needed to rebuild the model + provenance, the
losses included), ``train_log.jsonl`` (+ TensorBoard when installed).
"""
from __future__ import annotations

import json
from contextlib import nullcontext
from pathlib import Path

import torch

from uta_bench.errors import CheckpointError, UtaBenchError
from uta_bench.llava.recipe import LlavaRecipe
from uta_bench.progress import progress_bar
from uta_bench.training import (TrainLogger, autocast, backward, grad_scaler, load_training_state, optimizer_step,
                                save_training_state, set_lr, setup_distributed, warmup_cosine_lr)
from uta_bench.training.state import read_training_state

CONFIG_NAME, WEIGHTS_NAME, STATE = "llava_config.json", "trainable.safetensors", "last.pt"


def lr_at(recipe: LlavaRecipe, step: int, total: int) -> float:
    """Warm-up, then cosine to 0 (``schedule: cosine``) or the base rate (``schedule: constant``)."""
    floor = recipe.lr if recipe.schedule == "constant" else 0.0
    return warmup_cosine_lr(step, base_lr=recipe.lr, total_steps=total, warmup_steps=recipe.warmup_steps,
                            min_lr=floor)


def step_plan(n: int, batch_size: int, micro: int, seed: int, start: int, total: int, rank: int = 0,
              world: int = 1) -> list[list[list[int]]]:
    """Sample indices of this rank's micro-batches for optimizer steps ``start..total-1``. Epoch ``e`` is a
    permutation seeded by ``seed + e`` (incomplete last batch dropped), so any step's data is known without
    replaying earlier ones: the basis of exact resume."""
    per_epoch = n // batch_size
    plan, perms = [], {}
    for step in range(start, total):
        epoch, b = divmod(step, per_epoch)
        if epoch not in perms:
            perms = {epoch: torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch)).tolist()}
        mine = perms[epoch][b * batch_size:(b + 1) * batch_size][rank::world]
        plan.append([mine[i:i + micro] for i in range(0, len(mine), micro)])
    return plan


def build_model(cfg: dict, device: str = "cpu"):
    """Vision tower + LM + projector from a recipe dict / saved llava_config.json -> (LlavaModel, loaded
    vision, tokenizer)."""
    from uta_bench.llava.lm import load_lm
    from uta_bench.llava.model import LlavaModel
    from uta_bench.llava.vision import VisionTower
    from uta_bench.models.loader import load_model

    torch.manual_seed(cfg.get("seed", 42))            # a random-init tower (tests) is the same in every process
    loaded = load_model(cfg["vision"], checkpoint=cfg.get("vision_checkpoint"), device=device,
                        pretrained=cfg.get("vision_pretrained", True))
    lm, tok = load_lm(cfg["lm"], num_layers=cfg.get("lm_layers"))
    torch.manual_seed(cfg.get("seed", 42))            # projector init is part of the recipe
    model = LlavaModel(VisionTower(loaded, cfg.get("vision_layer", -2), cfg.get("vision_feature", "patch")),
                       lm, cfg.get("projector", "linear"))
    return model.to(device), loaded, tok


def load_trainable(model, path: Path, prefixes: tuple[str, ...] | None = None) -> list[str]:
    """Load saved trainable weights (all, or those starting with ``prefixes``) strictly by name."""
    from safetensors.torch import load_file

    sd = load_file(str(path))
    if prefixes:
        sd = {k: v for k, v in sd.items() if k.startswith(prefixes)}
    return _copy_weights(model, sd, path)


def _copy_weights(model, sd: dict, source) -> list[str]:
    params = dict(model.named_parameters())
    bad = [k for k in sd if k not in params or params[k].shape != sd[k].shape]
    if bad or not sd:
        raise UtaBenchError(f"{source}: weights do not fit this model ({bad[:3] or 'no matching keys'}); "
                            "same vision tower / projector / LM as the run that wrote it?")
    with torch.no_grad():
        for k, v in sd.items():
            params[k].copy_(v)
    return sorted(sd)


class _Trainable:
    """The trainable weights of a LlavaModel with a state_dict interface: the training state holds these
    alone (the frozen vision tower and LM are rebuilt from the recipe)."""

    def __init__(self, model):
        self.model = model

    def state_dict(self) -> dict:
        return {k: v.cpu() for k, v in self.model.trainable_state().items()}

    def load_state_dict(self, sd: dict, strict: bool = True) -> None:
        want = set(self.model.trainable_state())
        if strict and set(sd) != want:
            raise CheckpointError(f"saved trainable weights {sorted(set(sd) ^ want)[:3]} differ from this run's")
        _copy_weights(self.model, sd, "the training state")


def _check_stage1(path: Path, cfg: dict) -> None:
    """Stage 2 must build the same model the stage-1 projector was trained for."""
    if not (path / CONFIG_NAME).is_file():
        raise UtaBenchError(f"init_from {path} is not a finished stage-1 output (no {CONFIG_NAME})")
    prev = json.loads((path / CONFIG_NAME).read_text())["recipe"]
    keys = ("vision", "vision_checkpoint", "vision_layer", "vision_feature", "lm", "lm_layers", "projector")
    diff = [f"{k}: {prev.get(k)!r} vs {cfg.get(k)!r}" for k in keys if prev.get(k) != cfg.get(k)]
    if diff:
        raise UtaBenchError(f"stage 2 differs from its stage-1 run {path} in {'; '.join(diff)}")


def _sha256(path) -> str:
    from uta_bench.checkpoint import sha256_file

    return sha256_file(path)


def train(recipe: LlavaRecipe, out_dir: str | Path, resume: bool = False, stop_after: int | None = None,
          progress: bool = True) -> dict:
    """Run one stage. ``stop_after``: leave after that many optimizer steps (state saved), as a
    preempted job would. Returns the summary written to llava_config.json."""
    from uta_bench.llava.data import collate, load_llava_json
    from uta_bench.provenance import now

    recipe.validate()
    out, cfg = Path(out_dir), recipe.to_dict()
    res = resources(recipe)         # the recipe keeps "auto": a resume on another machine or rank still matches
    env = setup_distributed(res.device)
    samples = load_llava_json(recipe.data)           # bad data fails before the heavy model load
    saved = _saved_state(out, resume, cfg)
    model, loaded, tok, names = _prepare_model(recipe, cfg, str(env.device))
    ds = _dataset(recipe, samples, loaded, tok)
    total, micro_per_step = _sizes(recipe, len(ds), env.world_size)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=recipe.lr, betas=recipe.betas, weight_decay=recipe.weight_decay)
    scaler = grad_scaler(env.device, recipe.precision)
    step, losses = 0, []
    if saved is not None:
        state = load_training_state(out / STATE, model=_Trainable(model), optimizer=opt, scaler=scaler, blob=saved)
        step, losses = state.step, list(state.extra["losses"])
    ddp = _ddp(model, env)
    plan = step_plan(len(ds), recipe.batch_size, recipe.micro_batch_size, recipe.seed, step, total, env.rank,
                     env.world_size)
    loader = iter(torch.utils.data.DataLoader(ds, batch_sampler=[mb for st in plan for mb in st],
                                              collate_fn=collate, num_workers=res.workers))
    started = now()
    model.train()
    with TrainLogger(out, enabled=env.is_main, start_step=step) as logger, \
            progress_bar(progress and env.is_main, total - step, f"llava stage {recipe.stage}", "step") as advance:
        while step < total:
            lr = lr_at(recipe, step, total)
            set_lr(opt, lr)
            losses.append(_update(ddp, opt, scaler, loader, params, micro_per_step, recipe, env))
            step += 1
            logger.log(step, loss=losses[-1], lr=lr)
            advance(1)
            stopping = stop_after is not None and stop_after <= step < total
            if env.is_main and (step % recipe.save_every == 0 or stopping or step == total):
                save_training_state(out / STATE, model=_Trainable(model), optimizer=opt, step=step,
                                    data_position=step, scaler=scaler, extra={"losses": losses, "recipe": cfg})
            if stopping:
                return {"stopped_at": step, "losses": losses}
    summary = _summary(recipe, cfg, total, losses, names, len(ds), env.world_size, loaded, started)
    summary["resources"] = {**res.record(), "device": str(env.device)}
    if env.is_main:
        _write_outputs(out, model, summary)
    return summary


def resources(recipe: LlavaRecipe):
    """Device and workers of this process (uta_bench.resources); the batch is the recipe's (a training
    hyperparameter: no out-of-memory backoff)."""
    from uta_bench.resources import resolve

    return resolve(recipe.device, recipe.workers, "auto", batch_from_recipe=True)


def _update(ddp, opt, scaler, loader, params, micro_per_step: int, recipe: LlavaRecipe, env) -> float:
    """One optimizer step from ``micro_per_step`` micro-batches; returns the loss averaged over all ranks."""
    opt.zero_grad(set_to_none=True)
    step_loss = torch.zeros((), device=env.device)
    for i in range(micro_per_step):
        batch = next(loader)
        last = i == micro_per_step - 1
        with ddp.no_sync() if env.world_size > 1 and not last else nullcontext():   # all-reduce once
            with autocast(env.device, recipe.precision):
                loss = ddp(batch["input_ids"], batch["labels"], batch["images"])
            backward(loss / micro_per_step, scaler)
        step_loss += loss.detach().float() / micro_per_step
    if env.world_size > 1:
        torch.distributed.all_reduce(step_loss)
        step_loss /= env.world_size
    optimizer_step(opt, params, scaler=scaler, max_norm=recipe.max_grad_norm)
    return float(step_loss)


def _saved_state(out: Path, resume: bool, cfg: dict) -> dict | None:
    """The state to resume from (checked against this recipe), or None for a new run in a fresh directory."""
    if not resume:
        if (out / CONFIG_NAME).exists() or (out / STATE).exists():
            raise UtaBenchError(f"{out} already holds a run; pass --resume to continue it or pick a new --output")
        return None
    if not (out / STATE).is_file():
        raise UtaBenchError(f"--resume: no checkpoint in {out}; start without --resume")
    blob = read_training_state(out / STATE)
    was, now_cfg = (json.loads(json.dumps(c)) for c in (blob["extra"]["recipe"], cfg))   # tuples -> lists
    if was != now_cfg:
        diff = sorted(k for k in now_cfg if was.get(k) != now_cfg[k])
        raise UtaBenchError(f"--resume with a different recipe (changed: {', '.join(diff)})")
    return blob


def _prepare_model(recipe: LlavaRecipe, cfg: dict, device: str):
    """(model with this stage's trainable parameters, loaded vision, tokenizer, trainable names)."""
    if recipe.stage == 2:
        if not recipe.init_from:
            raise UtaBenchError("stage 2 needs init_from: the stage-1 output directory (its projector)")
        _check_stage1(Path(recipe.init_from), cfg)
    model, loaded, tok = build_model(cfg, device)
    if recipe.stage == 2:
        load_trainable(model, Path(recipe.init_from) / WEIGHTS_NAME, prefixes=("projector.",))
    names = model.set_trainable(recipe.stage, recipe.lm_trainable)
    if recipe.gradient_checkpointing:
        model.lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.lm.config.use_cache = False
    return model, loaded, tok, names


def _dataset(recipe: LlavaRecipe, samples, loaded, tok):
    from uta_bench.llava.data import LlavaDataset

    return LlavaDataset(samples, recipe.images, loaded.preprocess, tok, recipe.template, recipe.model_max_length)


def _sizes(recipe: LlavaRecipe, n: int, world: int) -> tuple[int, int]:
    """(total optimizer steps, micro-batches per step on each rank)."""
    per_rank = recipe.micro_batch_size * world
    if recipe.batch_size % per_rank:
        raise UtaBenchError(f"batch_size {recipe.batch_size} is not a multiple of micro_batch_size x ranks "
                            f"= {per_rank}")
    steps_per_epoch = n // recipe.batch_size        # full global batches only (equal work per rank)
    if steps_per_epoch == 0:
        raise UtaBenchError(f"{n} samples are fewer than one batch of {recipe.batch_size}")
    return recipe.max_steps or steps_per_epoch * recipe.epochs, recipe.batch_size // per_rank


def _ddp(model, env):
    if env.world_size == 1:
        return model
    ids = [env.device.index] if env.device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)


def _summary(recipe: LlavaRecipe, cfg: dict, total: int, losses: list[float], names: list[str], n: int,
             world: int, loaded, started: str) -> dict:
    from uta_bench.llava.lm import lm_identity
    from uta_bench.provenance import now, versions

    return {"stage": recipe.stage, "recipe": cfg, "steps": total, "losses": losses, "trainable": names,
            "n_samples": n, "world_size": world,
            "vision": {"name": loaded.name, "weights_sha256": loaded.weights_sha256, "arch": loaded.card.arch},
            "lm": {**lm_identity(recipe.lm), "layers_kept": recipe.lm_layers}, "data_sha256": _sha256(recipe.data),
            "init_from": recipe.init_from, "started_at": started, "ended_at": now(), "versions": versions()}


def _write_outputs(out: Path, model, summary: dict) -> None:
    """trainable.safetensors, then llava_config.json (its presence marks a finished stage), both atomic."""
    from safetensors.torch import save

    from uta_bench.paths import atomic_write_bytes, atomic_write_text

    weights = {k: v.contiguous().cpu() for k, v in model.trainable_state().items()}
    atomic_write_bytes(out / WEIGHTS_NAME, save(weights))
    atomic_write_text(out / CONFIG_NAME, json.dumps(summary, indent=1, default=str))


def load_trained(out_dir: str | Path, device: str = "cpu"):
    """Rebuild a trained LLaVA model from a stage output dir -> (model, loaded vision, tokenizer, config)."""
    out = Path(out_dir)
    if not (out / CONFIG_NAME).is_file():
        raise UtaBenchError(f"{out} is not a finished LLaVA training output (no {CONFIG_NAME})")
    summary = json.loads((out / CONFIG_NAME).read_text())
    model, loaded, tok = build_model(summary["recipe"], device)
    load_trainable(model, out / WEIGHTS_NAME)
    model.eval()
    return model, loaded, tok, summary
