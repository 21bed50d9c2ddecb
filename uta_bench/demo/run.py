"""``uta-bench demo``: the paper's Table 6 replayed on a procedural world, end to end, offline.

1. render the world (train images of the *seen* compositions; test images of seen and held-out ones)
   and write the test sets as ImageFolders + task cards;
2. train a CLIP teacher contrastively on the train images' captions;
3. compute the teacher's target tokens for the train images once;
4. pre-train one student per objective (FD, MIM, UTA+MIM, UTA) from scratch on images only;
5. evaluate teacher and students zero-shot through ``uta_bench.zeroshot.run.run_zeroshot`` (students carry
   the teacher's text tower, saved in the released key layout, loaded with ``--checkpoint``);
6. write every row to the results store; draw Fig. 3 and the loss curves.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ORDER = ("fd", "mim", "uta_mim", "uta")
LABELS = {"fd": "FD", "mim": "MIM", "uta_mim": "UTA+MIM", "uta": "UTA", "teacher": "teacher (CLIP)"}


@dataclass
class DemoConfig:
    out_dir: str = "results/demo"
    store: str | None = None
    seed: int = 0
    image_size: int = 32
    n_train: int = 4000
    n_val: int = 512
    n_test: int = 600
    teacher_steps: int = 400
    teacher_batch: int = 256
    teacher_lr: float = 2e-3
    student_steps: int = 200
    student_batch: int = 256
    student_lr: float = 2e-3
    mask_kind: str = "block_reversed"
    mask_ratio: float = 0.5
    objectives: tuple = ORDER
    progress: bool = True
    fig3_masks: int = 5000
    timing_reps: int = 7


@dataclass
class DemoResult:
    rows: list[dict] = field(default_factory=list)     # one per model: name, zs_seen, zs_heldout, ...
    run_ids: dict = field(default_factory=dict)
    figures: dict = field(default_factory=dict)
    seconds: float = 0.0


def _task_card(path: Path, name: str, root: Path, n: int, classes: list[str]) -> Path:
    import yaml

    from uta_bench.demo.world import CLASS_TEMPLATES

    card = {"task": name, "version": "1", "type": "classification",
            "description": f"uta-bench demo world, {len(classes)} colour x shape classes",
            "dataset": {"path": str(root.resolve()), "formats": ["imagefolder"]}, "classes": classes,
            "templates": list(CLASS_TEMPLATES), "metrics": ["top1"], "expected_samples": n}
    path.write_text(yaml.safe_dump(card, sort_keys=False))
    return path


def run_demo(cfg: DemoConfig, console=None) -> DemoResult:
    import torch

    from uta_bench.demo import world as W
    from uta_bench.demo.teacher import train_teacher
    from uta_bench.models.uta import build_visual, internal_to_official
    from uta_bench.pretrain.checkpointing import export_student
    from uta_bench.pretrain.config import PretrainConfig
    from uta_bench.pretrain.data import TensorImages
    from uta_bench.pretrain.objectives import CachedTeacher, Student, teacher_tokens
    from uta_bench.pretrain.train import pretrain
    from uta_bench.registry import get_card
    from uta_bench.progress import progress_bar

    t_start = time.perf_counter()
    say = console.print if console else (lambda *a, **k: None)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    card = get_card("uta_demo")
    names = W.class_names()
    seen, held = W.seen_classes(), W.held_out_classes()
    # 1. world -----------------------------------------------------------------------------------
    with progress_bar(cfg.progress, 3, "world: render", "set") as advance:
        train = W.render(cfg.n_train + cfg.n_val, seen, cfg.image_size, seed=cfg.seed)
        advance(1)
        tasks = {}
        for j, (tname, classes) in enumerate((("demo_seen", seen), ("demo_heldout", held))):
            test = W.render(cfg.n_test, classes, cfg.image_size, seed=cfg.seed + 1000 + j)
            root = out / "data" / tname
            if root.exists():
                import shutil

                shutil.rmtree(root)
            W.write_imagefolder(test, root, classes)
            tasks[tname] = _task_card(out / f"{tname}.yaml", tname, root, cfg.n_test,
                                      [names[k] for k in sorted(classes)])
            advance(1)
    images = W.to_tensor(train.images, card.mean, card.std)
    val_images = images[cfg.n_train:]            # same world, never trained on (Fig. 4's val curve)
    images, captions = images[:cfg.n_train], train.captions[:cfg.n_train]
    say(f"world: {len(seen)} seen + {len(held)} held-out colour x shape compositions; "
        f"{cfg.n_train} train images with captions, {cfg.n_test} test images per split")
    # 2. teacher ----------------------------------------------------------------------------------
    import open_clip

    tokenizer = open_clip.get_tokenizer(card.tokenizer.split(":", 1)[1], context_length=card.context_length)
    with progress_bar(cfg.progress, cfg.teacher_steps, "teacher: contrastive", "step") as advance:
        teacher, tinfo = train_teacher(images, captions, tokenizer, steps=cfg.teacher_steps,
                                       batch_size=cfg.teacher_batch, lr=cfg.teacher_lr, seed=cfg.seed,
                                       progress=advance)
    ckpts = {"teacher": out / "teacher.safetensors"}
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in internal_to_official(teacher.state_dict(), card.arch).items()},
              str(ckpts["teacher"]))
    # 3. targets, once ----------------------------------------------------------------------------
    with torch.no_grad(), progress_bar(cfg.progress, len(images) + len(val_images), "teacher: target tokens", "img") as advance:
        chunks = []
        everything = torch.cat([images, val_images])
        for i in range(0, len(everything), 512):
            chunks.append(teacher_tokens(teacher.visual, everything[i:i + 512]))
            advance(len(chunks[-1]))
        targets = torch.cat(chunks)
    cls_cos = torch.nn.functional.cosine_similarity(targets[:, 1:], targets[:, :1], dim=-1).mean().item()
    del everything
    say(f"teacher: {tinfo['steps']} steps, final loss {tinfo['loss']:.3f}; mean cos(patch token, "
        f"image embedding) = {cls_cos:.2f}")
    # 4. students ---------------------------------------------------------------------------------
    histories, step_s = {}, {}
    for obj in cfg.objectives:
        torch.manual_seed(cfg.seed)
        student = Student(build_visual(card.arch))
        pcfg = PretrainConfig(
            name=f"demo_{obj}", student_arch=card.arch, teacher="uta_demo", objective=obj,
            mask_kind=cfg.mask_kind, mask_ratio=cfg.mask_ratio, steps=cfg.student_steps,
            global_batch_size=cfg.student_batch, lr=cfg.student_lr, min_lr=cfg.student_lr / 100,
            warmup_steps=max(1, cfg.student_steps // 10), precision="fp32", output_dir=str(out / "pretrain" / obj),
            ckpt_every=0, workers=0, seed=cfg.seed, val_every=max(1, cfg.student_steps // 6),
            val_samples=cfg.n_val, log_every=max(1, cfg.student_steps // 6))
        res = pretrain(pcfg, TensorImages(images), CachedTeacher(targets), student,
                       val_dataset=_Shifted(TensorImages(val_images), len(images)), progress=cfg.progress)
        histories[obj], step_s[obj] = res.history, res.mean_step_s
        ckpts[obj] = export_student(out / f"student_{obj}.safetensors", student, card.arch,
                                    text_state=teacher.text.state_dict(), logit_scale=teacher.logit_scale)
        say(f"student {LABELS[obj]}: final loss {res.history[-1]['train_loss']:.3f}, "
            f"{1000 * step_s[obj]:.1f} ms/step")
    # step cost: every objective on the same batch, interleaved, process CPU time (see pretrain.timing)
    from uta_bench.pretrain.timing import interleaved_step_times

    torch.manual_seed(cfg.seed)
    probe = Student(build_visual(card.arch))
    batch = torch.arange(min(cfg.student_batch, len(images)))
    configs = [(o, o, cfg.mask_ratio) for o in cfg.objectives]
    with progress_bar(cfg.progress, len(configs) * (cfg.timing_reps + 1), "step cost (interleaved)", "step") as adv:
        timed = {t.objective: t for t in interleaved_step_times(
            probe, images[batch], targets[batch], configs, reps=cfg.timing_reps, mask_kind=cfg.mask_kind,
            advance=adv)}
    # 5. zero-shot through the normal runner ------------------------------------------------------
    result = DemoResult()
    for name, path in ckpts.items():
        scores = _zeroshot(cfg, path, list(tasks.values()), name)
        result.run_ids[name] = scores.pop("run_id")
        row = {"model": LABELS[name], "key": name, **scores}
        if name in timed:
            row["step_s"] = timed[name].cpu_s
            row["rel_mim"] = timed[name].cpu_s / timed["mim"].cpu_s if "mim" in timed else float("nan")
            row["train_wall_step_s"] = step_s[name]
        result.rows.append(row)
    _write_rows(cfg, result, histories, tinfo, cls_cos)
    # 6. figures ------------------------------------------------------------------------------------
    from uta_bench.pretrain.plots import plot_loss, plot_masks

    result.figures["fig3"], _ = plot_masks(out / "fig3_masks.png", grid=14, ratio=0.5, n=cfg.fig3_masks,
                                           progress=cfg.progress)
    result.figures["loss"] = plot_loss(
        {LABELS[k] + (" (sum of 2 terms)" if k == "uta_mim" else ""): v for k, v in histories.items()},
        out / "fig4_loss.png", title="Demo pre-training loss (val: random masks, ratio 0.5)")
    result.seconds = time.perf_counter() - t_start
    (out / "demo_config.json").write_text(__import__("json").dumps(asdict(cfg), indent=1, default=str))
    return result


class _Shifted:
    """Validation view: items ``(epoch, i)`` -> (image, i + offset) so cached targets line up."""

    def __init__(self, ds, offset):
        self.ds, self.offset = ds, offset

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, item):
        img, i = self.ds[item]
        return img, i + self.offset


def _zeroshot(cfg: DemoConfig, ckpt: Path, task_paths: list[Path], label: str) -> dict:
    from uta_bench.zeroshot.run import RunConfig, run_zeroshot

    scores = {}

    def on_task(card, metrics):
        top1 = {m.metric: m for m in metrics}["top1"]
        scores["zs_seen" if card.task == "demo_seen" else "zs_heldout"] = top1.value

    rc = RunConfig(model="uta_demo", tasks=[str(p) for p in task_paths], checkpoint=str(ckpt), store=cfg.store,
                   batch_size=256, progress=cfg.progress, seed=cfg.seed, extra={"demo_model": label})
    scores["run_id"] = run_zeroshot(rc, on_task=on_task)
    return scores


def _write_rows(cfg: DemoConfig, result: DemoResult, histories: dict, tinfo: dict, cls_cos: float) -> None:
    """Table 6 rows (ZS + step time per model) and the loss curves, one transaction per task."""
    from uta_bench.provenance import new_run_id, now, versions
    from uta_bench.store import Metric, ResultsStore, RunInfo

    store = ResultsStore(cfg.store)
    run = RunInfo(run_id=new_run_id(), model="uta_demo", device="cpu", precision="fp32", seed=cfg.seed,
                  started_at=now(), config=asdict(cfg), versions=versions())
    metrics = []
    for r in result.rows:
        extra = {"demo_model": r["key"], "zeroshot_run_id": result.run_ids[r["key"]]}
        metrics += [Metric("zs_seen_top1", r["zs_seen"], extra=extra),
                    Metric("zs_heldout_top1", r["zs_heldout"], extra=extra)]
        if "step_s" in r:
            metrics += [Metric("step_cpu_s", r["step_s"], extra=extra),
                        Metric("step_rel_mim", r["rel_mim"], extra=extra),
                        Metric("train_wall_step_s", r["train_wall_step_s"], extra=extra)]
    metrics.append(Metric("teacher_patch_cls_cos", cls_cos, extra={"teacher_loss": tinfo["loss"]}))
    store.write_task(run, "demo_table6", metrics, task_version="1", paper={"table": "6", "row": None})
    curve = [Metric("train_loss", h["train_loss"], extra={"objective": k, "step": h["step"], "lr": h["lr"],
                                                          **({"val_loss": h["val_loss"]} if "val_loss" in h else {})})
             for k, hist in histories.items() for h in hist]
    store.write_task(run, "demo_pretrain_loss", curve, task_version="1", paper={"table": "fig4", "row": None})
    result.run_ids["table"] = run.run_id
