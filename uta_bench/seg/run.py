"""Train UperNet with mmengine's Runner, and evaluate single-scale mIoU into the results store.

Evaluation runs two metrics on the same predictions: ours (``UTASegMetric``: int64 confusion counts)
and mmseg's ``IoUMetric``; the rows come from ours and are only written when both agree (mmseg
rounds to 0.01 %), with mmseg's numbers kept in the row's ``extra``.
"""
from __future__ import annotations

from pathlib import Path

from uta_bench.errors import UtaBenchError

TASK = "ade20k"
PAPER_TABLE = "4"
PAPER_COLUMN = "ADE20K mIoU"
EXPORT = "segmentor.safetensors"


def _unwrap(model):
    return getattr(model, "module", model)


def train_seg(cfg) -> dict:
    """runner.train(); exports ``<work_dir>/segmentor.safetensors`` (weights only) at the end."""
    from mmengine.runner import Runner
    from safetensors.torch import save_file

    from uta_bench.det.compat import join_cpu_process_group
    from uta_bench.seg.ade import check_ade_root
    from uta_bench.seg.config import data_root_of

    check_ade_root(data_root_of(cfg, "train_dataloader"), splits=("training",))
    check_ade_root(data_root_of(cfg, "val_dataloader"), splits=("validation",))
    join_cpu_process_group(cfg)
    runner = Runner.from_cfg(cfg)
    runner.train()
    out = {"work_dir": cfg.work_dir, "exported": None,
           "weights": getattr(_unwrap(runner.model).backbone, "weights_info", {})}
    if runner.rank == 0:
        path = Path(cfg.work_dir) / EXPORT
        state = {k: v.detach().cpu().contiguous().clone() for k, v in _unwrap(runner.model).state_dict().items()}
        tmp = path.with_name(f".{path.name}.tmp")
        save_file(state, str(tmp), metadata={"recipe": str(cfg.get("recipe_path")),
                                              "model": str(cfg.model.backbone.model),
                                              "iters": str(cfg.train_cfg.max_iters)})
        tmp.replace(path)
        out["exported"] = str(path)
    return out


def _load_segmentor(runner, checkpoint: str, trust: bool) -> str:
    from uta_bench.checkpoint import read_state_dict, sha256_file, strict_load

    sd = read_state_dict(checkpoint, trust=trust)      # mmengine .pth: {'state_dict': ...} is unwrapped
    model = _unwrap(runner.model)
    strict_load(model, sd, f"the segmentor of recipe {Path(str(runner.cfg.get('recipe_path'))).name}")
    return sha256_file(checkpoint)


def eval_seg(cfg, seg_checkpoint: str, store: str | None = None, trust_checkpoint: bool = False,
             seed: int = 0) -> tuple[str | None, list, dict]:
    """Single-scale mIoU on the validation split; returns (run id, metrics, mmseg's metrics). Under torchrun
    (``cfg.launcher == "pytorch"``) every process scores its shard, mmengine gathers the confusion counts, and
    only rank 0 writes the run (other ranks return run id None)."""
    from mmengine.runner import Runner

    from uta_bench.finetune.evaluate import paper_row
    from uta_bench.data.manifest import folder_manifest
    from uta_bench.det.compat import join_cpu_process_group
    from uta_bench.provenance import new_run_id, now, versions
    from uta_bench.registry import get_card
    from uta_bench.seg.ade import check_ade_root
    from uta_bench.seg.config import data_root_of
    from uta_bench.store import Metric, ResultsStore, RunInfo

    root = data_root_of(cfg)
    check_ade_root(root, splits=("validation",))
    if not Path(seg_checkpoint).is_file():
        raise UtaBenchError(f"segmentor checkpoint {seg_checkpoint} does not exist; pass the "
                            f"{EXPORT} (or iter_*.pth) written by `uta-bench train seg`")
    results = ResultsStore(store)
    started = now()
    join_cpu_process_group(cfg)
    runner = Runner.from_cfg(cfg)
    sha = _load_segmentor(runner, seg_checkpoint, trust_checkpoint)
    raw = runner.test()
    ours_metric = next(m for m in runner.test_loop.evaluator.metrics if type(m).__name__ == "UTASegMetric")
    ours = {k.split("/", 1)[1]: float(v) for k, v in raw.items() if k.startswith("uta/")}
    mm = {k: float(v) for k, v in raw.items() if "/" not in k}
    if "mIoU" in mm and abs(100 * ours["mIoU"] - mm["mIoU"]) > 0.005 + 1e-9:
        raise UtaBenchError(f"mIoU disagrees with mmseg's IoUMetric ({100 * ours['mIoU']:.4f} vs {mm['mIoU']}); "
                            "nothing written")
    n = int(ours.pop("images"))
    metrics = [Metric(name, ours[name], n) for name in ("mIoU", "aAcc", "mAcc")]
    if runner.rank != 0:
        return None, metrics, mm
    model = str(cfg.model.backbone.model)
    run = RunInfo(run_id=new_run_id(), model=model, weights_sha256=sha, device=str(next(
        _unwrap(runner.model).parameters()).device), precision="fp32", seed=seed, started_at=started,
        config={"recipe": str(cfg.get("recipe_path")), "seg_checkpoint": str(seg_checkpoint),
                "data_root": str(root), "test_cfg": dict(cfg.model.test_cfg), "kind": "seg",
                "resources": cfg.get("uta_resources")},
        versions=versions())
    row = paper_row(get_card(model))
    imgs = sorted(str(p) for p in (root / "images" / "validation").glob("*.jpg"))
    anns = sorted(str(p) for p in (root / "annotations" / "validation").glob("*.png"))
    results.write_task(run, TASK, metrics, task_version="1", dataset_manifest=folder_manifest(root, imgs + anns),
                       paper={"table": PAPER_TABLE, "row": row} if row else None,
                       extra={"paper_column": PAPER_COLUMN if row else None, "mmseg_IoUMetric": mm,
                              "per_class_iou": ours_metric.last.get("per_class_iou"),
                              "mode": "single-scale " + str(cfg.model.test_cfg.get("mode"))})
    return run.run_id, metrics, mm
