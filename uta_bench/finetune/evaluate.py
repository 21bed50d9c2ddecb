"""`uta-bench run finetune-eval`: top-1/top-5 of a fine-tuned classifier -> store rows (Table 4, FT).

The checkpoint goes through the normal path: ``load_model(model, checkpoint)`` (strict official-layout
load, sha256, the card's eval preprocessing), then the class head written next to it is attached.
"""
from __future__ import annotations

from pathlib import Path

import torch

from uta_bench.errors import UtaBenchError

TASK = "imagenet1k_ft"        # rows of this task map to Table 4's "ImageNet FT" column
PAPER_TABLE = "4"
PAPER_COLUMN = "ImageNet FT"


def paper_row(card) -> str | None:
    """Table 4 row the model card declares (``UTA † B`` for uta_b16), None when it has none."""
    from uta_bench.paper.mapping import card_paper_row

    return card_paper_row(card, PAPER_TABLE)


@torch.no_grad()
def predict(loaded, classifier, dataset, batch_size: int = 64, workers: int = 0, progress: bool = True,
            label: str = "images", sizer=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits [N, C] float32, targets [N]) over an ImageFolder-style dataset; each batch runs through
    ``sizer`` (:class:`uta_bench.resources.OomBackoff`, default a fixed ``batch_size``)."""
    from torch.utils.data import DataLoader

    from uta_bench.progress import progress_bar
    from uta_bench.resources import OomBackoff

    sizer = sizer or OomBackoff(batch_size, auto=False)

    def forward(images):
        with loaded.autocast():
            return classifier(images.to(loaded.device)).float().cpu()

    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, shuffle=False)
    logits, targets = [], []
    with progress_bar(progress, len(dataset), label, "img") as advance:
        for images, target in loader:
            logits.append(sizer(forward, images))
            targets.append(torch.as_tensor(target))
            advance(len(images))
    if not logits:
        raise UtaBenchError("the evaluation folder has no images")
    return torch.cat(logits), torch.cat(targets)


def run_finetune_eval(model: str, checkpoint: str, data: str, task: str = TASK, store: str | None = None,
                      batch_size: int | str = 64, workers: int | str = 0, limit: int | None = None,
                      precision: str = "fp32", device: str = "cpu", trust_checkpoint: bool = False, seed: int = 0,
                      progress: bool = True, resources=None) -> tuple[str, list]:
    """Evaluate and write top1/top5 rows; returns (run id, metrics). ``device``, ``workers`` and
    ``batch_size`` may be "auto" (see uta_bench.resources; an auto batch halves on CUDA out-of-memory);
    ``resources``: already resolved Resources (then those three are not read)."""
    from torch.utils.data import Subset

    from uta_bench.data.imagefolder import image_folder
    from uta_bench.zeroshot.classification import accuracy_metrics, topk_predictions
    from uta_bench.finetune.model import load_finetuned
    from uta_bench.data.manifest import folder_manifest
    from uta_bench.provenance import new_run_id, now, versions
    from uta_bench.resources import OomBackoff, resolve
    from uta_bench.store import ResultsStore, RunInfo

    if not Path(data).is_dir():
        raise UtaBenchError(f"evaluation folder {data} does not exist; pass an ImageFolder (e.g. ImageNet val "
                            "in synset sub-folders) to --data")
    res = resources or resolve(device, workers, batch_size)
    results = ResultsStore(store)
    torch.manual_seed(seed)
    loaded, clf, meta = load_finetuned(model, checkpoint, device=res.device, precision=precision,
                                       trust_checkpoint=trust_checkpoint)
    ds = image_folder(data, transform=loaded.preprocess)
    if list(ds.classes) != list(meta["classes"]):
        extra = sorted(set(ds.classes) ^ set(meta["classes"]))[:3]
        raise UtaBenchError(f"{data} has {len(ds.classes)} class folders but the classifier was trained on "
                            f"{len(meta['classes'])} (first differences: {extra}); evaluate on the same classes")
    manifest = folder_manifest(data, [p for p, _ in ds.samples])
    if limit:
        ds = Subset(ds, list(range(min(limit, len(ds)))))
    started = now()
    sizer = OomBackoff(res.batch_size, auto="batch_size" in res.auto)
    logits, targets = predict(loaded, clf, ds, res.batch_size, res.workers, progress, label=task, sizer=sizer)
    metrics = accuracy_metrics(logits, targets, ("top1", "top5"))
    run = RunInfo(run_id=new_run_id(), model=model, weights_sha256=loaded.weights_sha256,
                  device=str(loaded.device), precision=loaded.precision_run, seed=seed, started_at=started,
                  config={"checkpoint": str(checkpoint), "data": str(data), **res.record(),
                          "batch_size_used": sizer.size, "limit": limit, "task": task, "kind": "finetune-eval"},
                  versions=versions())
    row = paper_row(loaded.card) if task == TASK else None
    paper = {"table": PAPER_TABLE, "row": row} if row else None
    preds = {"top5": topk_predictions(logits, 5), "target": targets,
             "correct1": (logits.argmax(1) == targets).to(torch.int8)}
    results.write_task(run, task, metrics, task_version="1", dataset_manifest=manifest, paper=paper,
                       extra={"paper_column": PAPER_COLUMN if row else None, "num_classes": len(meta["classes"]),
                              "head": meta.get("weights"), "recipe": meta.get("recipe")}, predictions=preds)
    return run.run_id, metrics
