"""LLaVA stage 1 (projector only) and stage 2 (projector + LM) training; vision tower frozen throughout.

AdamW, linear warm-up then cosine decay to 0 (HF ``get_cosine_schedule_with_warmup``), global batch built
from micro-batches x gradient accumulation x DDP ranks (``torchrun``), optional gradient checkpointing and
bf16 autocast. Resumable checkpoints (``<out>/checkpoint/``) hold the trainable weights, the optimizer
state, the step, the loss log and the RNG states; the data order is a pure function of (seed, epoch), so a
resumed run repeats the uninterrupted one exactly. Outputs: ``trainable.safetensors`` (projector + any
trained LM weights), ``llava_config.json`` (everything needed to rebuild the model + provenance),
``losses.json``.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
from pathlib import Path

import torch

from uta_bench.errors import UtaBenchError
from uta_bench.llava.recipe import LlavaRecipe

CONFIG_NAME, WEIGHTS_NAME, CKPT_DIR = "llava_config.json", "trainable.safetensors", "checkpoint"


def lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    if step < warmup:
        return step / max(1, warmup)
    if schedule == "constant":
        return 1.0
    progress = (step - warmup) / max(1, total - warmup)
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))


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


def _dist():
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend)
    rank = torch.distributed.get_rank() if world > 1 else 0
    return rank, world


def _device(recipe: LlavaRecipe) -> str:
    if recipe.device:
        return recipe.device
    if torch.cuda.is_available():
        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return "cpu"


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
    params = dict(model.named_parameters())
    bad = [k for k in sd if k not in params or params[k].shape != sd[k].shape]
    if bad or not sd:
        raise UtaBenchError(f"{path}: weights do not fit this model ({bad[:3] or 'no matching keys'}); "
                            "same vision tower / projector / LM as the run that wrote it?")
    with torch.no_grad():
        for k, v in sd.items():
            params[k].copy_(v)
    return sorted(sd)


def _save_checkpoint(out: Path, model, opt, state: dict) -> None:
    from safetensors.torch import save_file

    tmp = out / (CKPT_DIR + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({k: v.contiguous().cpu() for k, v in model.trainable_state().items()}, str(tmp / WEIGHTS_NAME))
    torch.save(opt.state_dict(), tmp / "optimizer.pt")
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    torch.save(rng, tmp / "rng.pt")
    (tmp / "state.json").write_text(json.dumps(state, indent=1))
    final = out / CKPT_DIR
    old = out / (CKPT_DIR + ".old")
    if final.exists():
        final.rename(old)
    tmp.rename(final)                      # atomic switch: a crash leaves either the old or the new one
    shutil.rmtree(old, ignore_errors=True)


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
          progress: bool = True, log=None) -> dict:
    """Run one stage. ``stop_after``: leave after that many optimizer steps (checkpoint written), as a
    preempted job would. Returns the summary written to llava_config.json."""
    from uta_bench.llava.data import LlavaDataset, collate, load_llava_json
    from uta_bench.llava.lm import lm_identity
    from uta_bench.progress import make_progress
    from uta_bench.provenance import now, versions

    recipe.validate()
    out = Path(out_dir)
    rank, world = _dist()
    device = _device(recipe)
    cfg = recipe.to_dict()
    samples = load_llava_json(recipe.data)   # bad data fails before the heavy model load
    ckpt = out / CKPT_DIR
    if resume and not (ckpt / "state.json").is_file():
        raise UtaBenchError(f"--resume: no checkpoint in {out}; start without --resume")
    if not resume and ((out / CONFIG_NAME).exists() or ckpt.exists()):
        raise UtaBenchError(f"{out} already holds a run; pass --resume to continue it or pick a new --output")
    if recipe.stage == 2 and recipe.init_from:
        _check_stage1(Path(recipe.init_from), cfg)
    model, loaded, tok = build_model(cfg, device)
    if recipe.stage == 2:
        if not recipe.init_from:
            raise UtaBenchError("stage 2 needs init_from: the stage-1 output directory (its projector)")
        load_trainable(model, Path(recipe.init_from) / WEIGHTS_NAME, prefixes=("projector.",))
    names = model.set_trainable(recipe.stage, recipe.lm_trainable)
    if recipe.gradient_checkpointing:
        model.lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.lm.config.use_cache = False
    ds = LlavaDataset(samples, recipe.images, loaded.preprocess, tok, recipe.template, recipe.model_max_length)
    per_rank = recipe.micro_batch_size * world
    if recipe.batch_size % per_rank:
        raise UtaBenchError(f"batch_size {recipe.batch_size} is not a multiple of micro_batch_size x ranks "
                            f"= {per_rank}")
    steps_per_epoch = len(ds) // recipe.batch_size        # full global batches only (equal work per rank)
    if steps_per_epoch == 0:
        raise UtaBenchError(f"{len(ds)} samples are fewer than one batch of {recipe.batch_size}")
    total = recipe.max_steps or steps_per_epoch * recipe.epochs
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=recipe.lr, betas=recipe.betas, weight_decay=recipe.weight_decay)
    step, losses = 0, []
    if resume:
        state = json.loads((ckpt / "state.json").read_text())
        if state["recipe"] != json.loads(json.dumps(cfg)):
            diff = sorted(k for k in cfg if state["recipe"].get(k) != json.loads(json.dumps(cfg))[k])
            raise UtaBenchError(f"--resume with a different recipe (changed: {', '.join(diff)})")
        load_trainable(model, ckpt / WEIGHTS_NAME)
        opt.load_state_dict(torch.load(ckpt / "optimizer.pt", weights_only=True, map_location=device))
        rng = torch.load(ckpt / "rng.pt", weights_only=True)
        torch.set_rng_state(rng["torch"])
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        step, losses = state["step"], state["losses"]
    ddp = model
    if world > 1:
        ddp = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device] if "cuda" in device else None)
    amp = (torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
           if recipe.precision == "bf16" else contextlib.nullcontext())
    model.train()
    started = now()
    bar = make_progress("step") if progress and rank == 0 else None
    task = bar.add_task(f"llava stage {recipe.stage}", total=total, completed=step) if bar else None
    if bar:
        bar.start()
    try:
        micro_per_step = recipe.batch_size // per_rank
        plan = step_plan(len(ds), recipe.batch_size, recipe.micro_batch_size, recipe.seed, step, total, rank, world)
        loader = iter(torch.utils.data.DataLoader(ds, batch_sampler=[mb for st in plan for mb in st],
                                                  collate_fn=collate, num_workers=recipe.workers))
        while step < total:
            for group in opt.param_groups:
                group["lr"] = recipe.lr * lr_factor(step, total, recipe.warmup_steps, recipe.schedule)
            opt.zero_grad(set_to_none=True)
            step_loss = torch.zeros((), device=device)
            for i in range(micro_per_step):
                batch = next(loader)
                sync = i == micro_per_step - 1
                ctx = ddp.no_sync() if world > 1 and not sync else contextlib.nullcontext()
                with ctx, amp:
                    loss = ddp(batch["input_ids"], batch["labels"], batch["images"])
                (loss / micro_per_step).backward()
                step_loss += loss.detach().float() / micro_per_step
            if world > 1:
                torch.distributed.all_reduce(step_loss)
                step_loss /= world
            if recipe.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(params, recipe.max_grad_norm)
            opt.step()
            step += 1
            losses.append(float(step_loss))
            if log:
                log(step, losses[-1])
            if bar:
                bar.update(task, advance=1, description=f"llava stage {recipe.stage} loss {losses[-1]:.3f}")
            stopping = stop_after is not None and step >= stop_after and step < total
            if rank == 0 and (step % recipe.save_every == 0 or stopping or step == total):
                _save_checkpoint(out, model, opt, {"step": step, "losses": losses, "recipe": cfg})
            if stopping:
                return {"stopped_at": step, "losses": losses}
    finally:
        if bar:
            bar.stop()
    summary = {"stage": recipe.stage, "recipe": cfg, "steps": total, "losses": losses,
               "trainable": names, "n_samples": len(ds), "world_size": world,
               "vision": {"name": loaded.name, "weights_sha256": loaded.weights_sha256, "arch": loaded.card.arch},
               "lm": {**lm_identity(recipe.lm), "layers_kept": recipe.lm_layers}, "data_sha256": _sha256(recipe.data),
               "init_from": recipe.init_from, "started_at": started, "ended_at": now(), "versions": versions()}
    if rank == 0:
        from safetensors.torch import save_file

        from uta_bench.paths import atomic_write_text

        save_file({k: v.contiguous().cpu() for k, v in model.trainable_state().items()}, str(out / WEIGHTS_NAME))
        atomic_write_text(out / "losses.json", json.dumps(losses))
        atomic_write_text(out / CONFIG_NAME, json.dumps(summary, indent=1, default=str))
    return summary


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
