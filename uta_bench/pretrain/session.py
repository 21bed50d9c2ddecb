"""Build everything a recipe names (teacher, student, data), train, export, log to the store."""
from __future__ import annotations

from pathlib import Path

from uta_bench.errors import UtaBenchError
from uta_bench.pretrain.config import PretrainConfig


def build_teacher(cfg: PretrainConfig):
    """``(FrozenTeacher, LoadedModel)`` for the recipe's registered teacher model."""
    from uta_bench.models.loader import load_model
    from uta_bench.pretrain.objectives import FrozenTeacher

    loaded = load_model(cfg.teacher, checkpoint=cfg.teacher_checkpoint, trust_checkpoint=cfg.trust_checkpoint)
    return FrozenTeacher(loaded.model.visual), loaded


def check_grids(teacher, student, image_size: int) -> None:
    import torch

    with torch.no_grad():
        n_teacher = teacher(torch.zeros(1, 3, image_size, image_size)).shape[1] - 1
    n_student = student.visual.patch_embed.num_patches
    if n_teacher != n_student:
        raise UtaBenchError(f"teacher gives {n_teacher} patch tokens at {image_size}px but the student has "
                            f"{n_student}: pick a teacher/student pair with the same patch grid")


def teacher_text_state(loaded) -> dict | None:
    """The teacher's text tower in open_clip ``TextTransformer`` names (what ``text.*`` holds)."""
    model = loaded.model
    if hasattr(model, "text") and hasattr(model.text, "token_embedding"):
        return model.text.state_dict()
    keys = ("token_embedding.", "positional_embedding", "transformer.", "ln_final.", "text_projection")
    sd = {k: v for k, v in model.state_dict().items() if k.startswith(keys)}
    return sd or None


def export_for_eval(path: Path, student, arch: str, loaded) -> tuple[Path, bool]:
    """Student + teacher text tower when they fit the arch's text config; else vision tower only."""
    from uta_bench.models.uta import UTAModel
    from uta_bench.pretrain.checkpointing import export_student

    text = teacher_text_state(loaded) if loaded is not None else None
    logit = getattr(loaded.model, "logit_scale", None) if loaded is not None else None
    if text is not None:
        want = {k[len("text."):]: v.shape for k, v in UTAModel(arch).state_dict().items() if k.startswith("text.")}
        want.pop("attn_mask", None)
        got = {k: v.shape for k, v in text.items() if k != "attn_mask"}
        if want != got:
            text = None
    return export_student(path, student, arch, text_state=text, logit_scale=logit if text else None), text is not None


def run_pretrain(cfg: PretrainConfig, resume: str | None = "auto", stop_after: int | None = None,
                 store: str | None = None, progress: bool = True, on_log=None):
    import torch

    from uta_bench.models.uta import UTA_ARCHS, build_visual
    from uta_bench.pretrain.data import PretrainImages
    from uta_bench.pretrain.objectives import Student
    from uta_bench.pretrain.train import pretrain
    from uta_bench.training import setup_distributed

    if cfg.student_arch not in UTA_ARCHS:
        from uta_bench.errors import suggest

        raise suggest(cfg.student_arch, UTA_ARCHS, "student arch")
    if not cfg.data:
        raise UtaBenchError("no pre-training data: set 'data' in the recipe or pass --data")
    torch.manual_seed(cfg.seed)
    size = UTA_ARCHS[cfg.student_arch]["img_size"]
    teacher, loaded = build_teacher(cfg)
    overrides = {"num_classes": loaded.card.embed_dim, **cfg.student_overrides}  # head -> teacher space
    student = Student(build_visual(cfg.student_arch, **overrides))
    check_grids(teacher, student, size)
    mean, std = loaded.card.mean, loaded.card.std
    data = PretrainImages(cfg.data, cfg.data_format, size, mean, std, cfg.crop_scale, train=True, seed=cfg.seed)
    val = (PretrainImages(cfg.val_data, cfg.data_format, size, mean, std, train=False)
           if cfg.val_data else None)
    res = pretrain(cfg, data, teacher, student, val_dataset=val, resume=resume, stop_after=stop_after,
                   progress=progress, on_log=on_log)
    if not setup_distributed(cfg.device).is_main:
        return res, None
    exported = None
    if res.final_step == cfg.total_steps(len(data)):
        exported = export_for_eval(Path(cfg.output_dir) / "student.safetensors", res.student, cfg.student_arch,
                                   loaded)
    log_to_store(cfg, res, store)
    return res, exported


def log_to_store(cfg: PretrainConfig, res, store: str | None, every: int | None = None) -> str:
    """Loss curve rows of this invocation's steps (every ``log_every`` steps and every validation point)
    under task ``pretrain_loss``; a resumed run adds its own steps, so the runs together hold the curve."""
    from uta_bench.provenance import new_run_id, now, versions
    from uta_bench.store import Metric, ResultsStore, RunInfo
    from uta_bench.training.log import LOG_NAME

    every = every or max(1, cfg.log_every)
    run = RunInfo(run_id=new_run_id(), model=f"{cfg.student_arch}<-{cfg.teacher}", device=cfg.device,
                  precision=cfg.precision, seed=cfg.seed, started_at=now(), config=cfg.to_dict(), versions=versions())
    rows = []
    for h in res.history:
        if h["step"] <= res.start_step:
            continue
        extra = {"step": h["step"], "epoch": h["epoch"], "lr": h["lr"], "objective": cfg.objective}
        if h["step"] % every == 0 or h["step"] == res.final_step:
            rows.append(Metric("train_loss", h["train_loss"], extra=extra))
        if h.get("val_loss") is not None:
            rows.append(Metric("val_loss", h["val_loss"], extra=extra))
    rows.append(Metric("mean_step_s", res.mean_step_s if res.mean_step_s == res.mean_step_s else 0.0,
                       extra={"steps": res.final_step}))
    ResultsStore(store).write_task(run, "pretrain_loss", rows, task_version="1",
                                   extra={"train_log": str(Path(cfg.output_dir) / LOG_NAME)})
    return run.run_id
