"""`uta-bench run zeroshot`: load a model once, evaluate each task card, write rows per task."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from uta_bench.errors import UtaBenchError
from uta_bench.taskcards import TaskCard


@dataclass
class RunConfig:
    model: str
    tasks: list[str]
    checkpoint: str | None = None
    data_root: str | None = None
    store: str | None = None
    batch_size: int = 64
    workers: int = 0
    limit: int | None = None
    precision: str = "fp32"
    device: str = "cpu"
    trust_checkpoint: bool = False
    seed: int = 0
    progress: bool = True
    pretrained: bool = True
    extra: dict = field(default_factory=dict)


def data_root(cfg_root: str | None) -> Path:
    root = cfg_root or os.environ.get("UTA_BENCH_DATA")
    if root:
        return Path(root).expanduser()
    from uta_bench.paths import home

    return home() / "data"


def dataset_dir(card: TaskCard, root: Path) -> Path:
    ds = card.dataset
    if ds.get("builtin") == "sample_photos":
        from uta_bench.data.sample import make_sample_imagefolder
        from uta_bench.paths import home

        return make_sample_imagefolder(home() / "data" / "sample_photos")
    if "path" not in ds:
        raise UtaBenchError(f"task card {card.source}: field 'dataset.path' is missing")
    p = Path(ds["path"])
    return p if p.is_absolute() else root / p


def run_classification(loaded, card: TaskCard, cfg: RunConfig):
    """(metrics, dataset manifest digest, per-sample predictions dict)."""
    import torch
    from torch.utils.data import DataLoader, Subset

    from uta_bench.data.imagefolder import image_folder, read_classnames
    from uta_bench.evaluation import prompts
    from uta_bench.evaluation.classification import accuracy_metrics, encode_images, topk_predictions
    from uta_bench.manifest import folder_manifest
    from uta_bench.zeroshot import build_classifier

    root = dataset_dir(card, data_root(cfg.data_root))
    ds = image_folder(root, transform=loaded.preprocess)
    names = prompts.classnames(card.classes, read_classnames(root, ds.classes))
    if len(names) != len(ds.classes):
        raise UtaBenchError(f"task {card.task}: {len(names)} class names for {len(ds.classes)} class folders")
    classifier = build_classifier(loaded, names, prompts.templates(card.templates), progress=cfg.progress)
    manifest = folder_manifest(root, [p for p, _ in ds.samples])
    if cfg.limit:
        ds = Subset(ds, list(range(min(cfg.limit, len(ds)))))
    loader = DataLoader(ds, batch_size=cfg.batch_size, num_workers=cfg.workers, shuffle=False)
    feats, targets = encode_images(loaded, loader, progress=cfg.progress, label=card.task)
    logits = classifier.logits(feats)
    metrics = accuracy_metrics(logits, targets, card.metrics)
    preds = {"top5": topk_predictions(logits, 5), "target": targets,
             "correct1": (topk_predictions(logits, 1)[:, 0] == targets).to(torch.int8)}
    return metrics, manifest, preds


def run_zeroshot(cfg: RunConfig, on_task=None) -> str:
    """Run every task; returns the run id. Rows of a task are committed together at its end."""
    from uta_bench.models.loader import load_model
    from uta_bench.predictions import save_predictions
    from uta_bench.provenance import new_run_id, now, versions
    from uta_bench.store import ResultsStore, RunInfo
    from uta_bench.taskcards import expand

    cards = expand(cfg.tasks)           # resolve names before any heavy work: typos fail fast
    for c in cards:
        if c.type != "classification":
            raise UtaBenchError(f"task {c.task} is a {c.type} task; this build runs classification tasks")
    store = ResultsStore(cfg.store)
    import torch

    torch.manual_seed(cfg.seed)
    loaded = load_model(cfg.model, checkpoint=cfg.checkpoint, device=cfg.device, precision=cfg.precision,
                        trust_checkpoint=cfg.trust_checkpoint, pretrained=cfg.pretrained)
    run = RunInfo(run_id=new_run_id(), model=cfg.model, weights_sha256=loaded.weights_sha256,
                  device=str(loaded.device), precision=loaded.precision_run, seed=cfg.seed, started_at=now(),
                  config={k: v for k, v in vars(cfg).items() if k != "progress"}, versions=versions())
    for card in cards:
        metrics, manifest, preds = run_classification(loaded, card, cfg)
        save_predictions(store, run.run_id, card.task, preds)
        paper = {"table": (card.paper or {}).get("table"), "row": None} if card.paper else None
        store.write_task(run, card.task, metrics, task_version=card.version, dataset_manifest=manifest,
                         paper=paper, extra={"limit": cfg.limit} if cfg.limit else None)
        if on_task:
            on_task(card, metrics)
    return run.run_id
