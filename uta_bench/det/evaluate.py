"""Evaluate a trained detector: mmdet inference over the test set -> COCO-format detections (kept next to the
store) -> AP through pycocotools (COCO) or the lvis API (LVIS) -> Table 5 rows in the results store."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from uta_bench.errors import CheckpointError, UtaBenchError

# Table 5 columns: (task, metric) -> paper column
PAPER_COLUMNS = {("det_coco", "ap_box"): "COCO AP^box", ("det_coco", "ap_mask"): "COCO AP^mask",
                 ("det_lvis", "ap_box"): "LVIS AP^box", ("det_lvis", "ap_mask"): "LVIS AP^mask"}


@dataclass
class DetResult:
    run_id: str
    task: str
    metrics: dict          # {"bbox": {...}, "segm": {...}} fractions
    detections: Path
    n_images: int


def paper_row(model: str) -> str | None:
    """Table 5 row the model card declares (e.g. "UTA † B" for uta_b16), None when it has none."""
    from uta_bench.paper.mapping import card_paper_row

    return card_paper_row(model, "5")


def load_detector(cfg, detector_checkpoint: str, trust: bool = False):
    """Build the detector of ``cfg`` and strictly load ``detector_checkpoint`` (safetensors, or a torch file
    read with weights_only unless ``trust``)."""
    from mmengine.registry import init_default_scope
    from mmengine.utils import import_modules_from_strings

    from uta_bench.checkpoint import read_state_dict, strict_load

    init_default_scope("mmdet")
    if cfg.get("custom_imports"):
        import_modules_from_strings(**cfg.custom_imports)
    from mmdet.registry import MODELS

    sd = read_state_dict(detector_checkpoint, trust=trust)
    net = MODELS.build(cfg.model)
    strict_load(net, sd, f"detector ({cfg.model.backbone.model}, {len(_classes(cfg))} classes)")
    return net.eval()


def _classes(cfg) -> tuple:
    from uta_bench.det.config import _datasets

    _, ds = next(iter(_datasets(cfg, ("test",))))
    return tuple(ds["metainfo"]["classes"])


def predict(net, dataloader, limit: int | None = None, progress: bool = True) -> tuple[list[dict], int]:
    """COCO result dicts for every image of ``dataloader`` (boxes in original-image pixels, RLE masks)."""
    import torch

    from uta_bench.det.metrics import to_coco_results
    from uta_bench.progress import progress_bar

    cat_ids = dataloader.dataset.cat_ids
    total = len(dataloader.dataset) if limit is None else min(limit, len(dataloader.dataset))
    dets: list[dict] = []
    seen = 0
    with progress_bar(progress, total, "detect", "img") as advance:
        for data in dataloader:
            with torch.no_grad():
                outs = net.test_step(data)
            for s in outs:
                p = s.pred_instances
                masks = p.masks.cpu().numpy() if "masks" in p else None
                dets += to_coco_results(p.bboxes.cpu().numpy(), p.scores.cpu().numpy(), p.labels.cpu().numpy(),
                                        cat_ids, s.img_id, masks)
            seen += len(outs)
            advance(len(outs))
            if seen >= total:
                break
    return dets, seen


def evaluate_detector(recipe: str, model: str, detector_checkpoint: str, *, data_root: str | None = None,
                      device: str = "cpu", workers: int | str = 2, trust_checkpoint: bool = False,
                      store: str | None = None, seed: int = 0, out_dir: str | None = None,
                      progress: bool = True) -> DetResult:
    from uta_bench.checkpoint import sha256_file
    from uta_bench.det.config import _ann_path, _datasets, build_config
    from uta_bench.det.metrics import EVALUATOR, coco_ap, lvis_ap
    from uta_bench.paths import atomic_write_text, home
    from uta_bench.provenance import new_run_id, now, versions
    from uta_bench.resources import resolve
    from uta_bench.store import Metric, ResultsStore, RunInfo

    if not Path(detector_checkpoint).is_file():
        raise UtaBenchError(f"detector checkpoint {detector_checkpoint} does not exist; pass the "
                            f"detector.safetensors written by `uta-bench train det`")
    res = resolve(device, workers, None)         # "auto" (uta_bench.resources), before the config is built
    device, workers = res.device, res.workers
    started = now()
    cfg = build_config(recipe, model, work_dir=str(Path(out_dir or home() / "det")), pretrained=False,
                       data_root=data_root, train=False, device=device, workers=workers)
    net = load_detector(cfg, detector_checkpoint, trust_checkpoint).to(device)
    from mmengine.runner import Runner

    dataloader = Runner.build_dataloader(cfg.test_dataloader, seed=seed)
    _, ds_cfg = next(iter(_datasets(cfg, ("test",))))
    ann = _ann_path(ds_cfg)
    is_lvis = "LVIS" in str(ds_cfg.get("type", ""))
    task = "det_lvis" if is_lvis else "det_coco"
    dets, n_images = predict(net, dataloader, progress=progress)
    ap = lvis_ap(ann, dets) if is_lvis else coco_ap(ann, dets)

    run_id = new_run_id()
    s = ResultsStore(store)
    if out_dir:
        det_dir = Path(out_dir)
    else:  # next to the store (results/predictions/det/), or under $UTA_BENCH_HOME for server stores
        det_dir = (Path(s.url[len("sqlite:///"):]).parent if s.is_sqlite else home()) / "predictions" / "det"
    det_path = det_dir / f"{run_id}_{task}_detections.json"
    atomic_write_text(det_path, json.dumps(dets))
    keys = ("ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large") + (("apr", "apc", "apf") if is_lvis else ())
    metrics = []
    for iou, suffix in (("bbox", "box"), ("segm", "mask")):
        for k in keys:
            v = ap[iou].get(k)
            if v is None or v < 0:   # -1: undefined (no ground truth in that size / frequency group)
                continue
            col = PAPER_COLUMNS.get((task, f"{k}_{suffix}"))
            metrics.append(Metric(f"{k}_{suffix}", v, n=n_images, extra={"paper_column": col} if col else {}))
    run = RunInfo(run_id=run_id, model=model, weights_sha256=sha256_file(detector_checkpoint), device=str(device),
                  precision="fp32", seed=seed, started_at=started,
                  config={"recipe": recipe, "detector_checkpoint": str(detector_checkpoint), "data_root": data_root,
                          "annotations": str(ann), "workers": workers, "auto": list(res.auto)}, versions=versions())
    manifest = hashlib.sha256(Path(ann).read_bytes()).hexdigest()
    s.write_task(run, task, metrics, task_version="1", dataset_manifest=manifest,
                 paper={"table": "5", "row": paper_row(model)},
                 extra={"detections": str(det_path), "n_detections": len(dets),
                        "evaluator": EVALUATOR + (" (lvis_style)" if is_lvis else "")})
    return DetResult(run_id, task, ap, det_path, n_images)


__all__ = ["evaluate_detector", "predict", "load_detector", "paper_row", "CheckpointError"]
