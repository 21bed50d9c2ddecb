"""One zero-shot task on an already-loaded model: data -> image features -> metrics (+ predictions).

Classification: the class list and templates of a card give one classifier (built once per run and
shared by every task with the same classes, then sliced to the task's class subset: IN-1K, IN-V2,
IN-Sketch, IN-A and IN-R all use the same 1000-class classifier). Retrieval: caption features x
image features -> recall@k both ways. Every task returns its metrics, per-sample predictions and
provenance; only rank 0 computes metrics when sharded.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from uta_bench.errors import UtaBenchError
from uta_bench.taskcards import TaskCard, check_topk


@dataclass
class TaskResult:
    metrics: list
    predictions: dict
    manifest: str
    extra: dict = field(default_factory=dict)
    data: object = None                              # the listing (TaskData): uta_bench.samples.sample_ids
    classnames: list | None = None                   # classification: the names the targets index


def _timed(times: dict, key: str, t0: float) -> float:
    now = time.perf_counter()
    times[key] = round(times.get(key, 0.0) + now - t0, 3)
    return now


def classification_inputs(card: TaskCard, root):
    """(task data, class names, templates, class subset or None) of a classification card, validated
    (the same class checks as `uta-bench data check`, and the card's top-k against the class count)."""
    from uta_bench.data.classes import check_classes, classnames, effective_wnids
    from uta_bench.data.resolve import load_task_data
    from uta_bench.zeroshot import prompts

    data = load_task_data(card, root, effective_wnids(card))
    names = classnames(card.classes, data.data_classnames)
    temps = prompts.templates(card.templates, data.data_templates)
    subset = check_classes(card, data, names)
    n_eff = len(subset) if subset is not None else len(names)
    check_topk(card.metrics, n_eff, card.source or card.task)     # before encoding any image
    return data, names, temps, subset


def classification(loaded, card: TaskCard, cfg, root, dist, classifiers: dict, sizer=None) -> TaskResult | None:
    from uta_bench.zeroshot.classification import accuracy_metrics, mean_per_class_recall
    from uta_bench.zeroshot.classifier import build_classifier

    times, t0 = {}, time.perf_counter()
    data, names, temps, subset = classification_inputs(card, root)
    manifest, key, feats, t0 = _encode_images(loaded, card, cfg, data, dist, times, t0, sizer)
    if not dist.main:
        return None
    ckey = (tuple(names), tuple(prompts_key(temps)))
    if ckey not in classifiers:
        classifiers[ckey] = build_classifier(loaded, names, temps, use_cache=cfg.use_cache, progress=cfg.progress,
                                              model_id=cfg.model_id)
        t0 = _timed(times, "text_s", t0)
    clf = classifiers[ckey] if subset is None else classifiers[ckey].subset(subset)
    targets = torch.as_tensor(data.labels, dtype=torch.long)[feats.index]
    logits = clf.logits(feats.feats)
    top = logits.topk(min(5, logits.shape[1]), dim=1)
    topk = [m for m in card.metrics if m != "mean_per_class_recall"]
    metrics = accuracy_metrics(logits, targets, topk) + [mean_per_class_recall(top.indices[:, 0], targets)]
    preds = {"index": feats.index, "target": targets, "top5": top.indices, "top5_score": top.values.float(),
             "correct1": (top.indices[:, 0] == targets).to(torch.int8)}
    _timed(times, "metrics_s", t0)
    eff_names = names if subset is None else [names[i] for i in subset]
    return TaskResult(metrics, preds, manifest, _extra(card, data, feats, cfg, key, times, clf.key, sizer),
                      data, eff_names)


def task_manifest(card: TaskCard, root) -> str:
    """The dataset manifest a run of ``card`` on the data under ``root`` records (the run's own listing;
    no image is decoded): part of the run key the gate looks up before evaluating."""
    from uta_bench.data.classes import effective_wnids
    from uta_bench.data.manifest import run_manifest
    from uta_bench.data.resolve import load_task_data

    eff = effective_wnids(card) if card.type == "classification" else None
    return run_manifest(load_task_data(card, root, eff))


def retrieval(loaded, card: TaskCard, cfg, root, dist, sizer=None) -> TaskResult | None:
    from uta_bench.data.resolve import load_task_data
    from uta_bench.zeroshot.retrieval import caption_features, recall_metrics, retrieval_ranks

    bad_metric = next((m for m in card.metrics if "_retrieval_recall@" not in m), None)
    if bad_metric:
        raise UtaBenchError(f"task card {card.source}: metric {bad_metric!r} is not "
                            "image_retrieval_recall@K or text_retrieval_recall@K")
    times, t0 = {}, time.perf_counter()
    data = load_task_data(card, root)
    manifest, key, feats, t0 = _encode_images(loaded, card, cfg, data, dist, times, t0, sizer)
    if not dist.main:
        return None
    kept = feats.index.tolist()
    captions = [c for i in kept for c in data.captions[i]]
    text_image = torch.tensor([j for j, i in enumerate(kept) for _ in data.captions[i]], dtype=torch.long)
    tfeats = caption_features(loaded, captions, use_cache=cfg.use_cache, progress=cfg.progress,
                              model_id=cfg.model_id)
    t0 = _timed(times, "text_s", t0)
    t2i, i2t = retrieval_ranks(feats.feats, tfeats, text_image)
    metrics = recall_metrics(t2i, i2t, card.metrics)
    preds = {"index": feats.index, "t2i_rank": t2i, "i2t_rank": i2t, "text_image": text_image}
    _timed(times, "metrics_s", t0)
    extra = _extra(card, data, feats, cfg, key, times, sizer=sizer)
    extra["n_captions"] = len(captions)
    return TaskResult(metrics, preds, manifest, extra, data)



def _encode_images(loaded, card: TaskCard, cfg, data, dist, times: dict, t0: float, sizer=None):
    """Manifest, feature-cache key and (cached / sharded) image features of a task's images."""
    from uta_bench.data.manifest import run_manifest
    from uta_bench.zeroshot.features import feature_key, image_features

    manifest = run_manifest(data)   # data check's content digest when it still matches, else the quick one
    t0 = _timed(times, "list_s", t0)
    key = feature_key(loaded, manifest, cfg.model_id)
    feats = image_features(loaded, data.refs, key, n=cfg.limit, batch_size=cfg.batch_size, workers=cfg.workers,
                           on_bad_image=cfg.on_bad_image, use_cache=cfg.use_cache, progress=cfg.progress,
                           label=card.task, dist=dist, chunk=cfg.feature_chunk, sizer=sizer)
    return manifest, key, feats, _timed(times, "images_s", t0)


def prompts_key(temps) -> list[str]:
    from uta_bench.zeroshot.classifier import template_strings

    return template_strings(temps)


def _extra(card, data, feats, cfg, key, times, classifier_key=None, sizer=None) -> dict:
    from uta_bench.data.hub import hub_source

    n_listed = len(data.refs)
    extra = {"format": data.fmt, "data_dir": str(data.root), "n_listed": n_listed,
             "expected_samples": card.expected_samples, "feature_cache": key, "images_encoded": feats.computed,
             "images_encoded_per_rank": feats.per_rank,
             "timings": times, "skipped_images": len(feats.bad)}
    if sizer is not None:           # the image batch the task ended with (smaller after a CUDA OOM)
        extra["batch_size"] = sizer.size
        if sizer.backoffs:
            extra["oom_backoffs"] = sizer.backoffs
    if feats.bad:
        extra["skipped"] = [{"file": name, "error": err} for _, name, err in feats.bad]
    if cfg.limit:
        extra["limit"] = cfg.limit
    if card.expected_samples is not None and n_listed != card.expected_samples:
        extra["count_mismatch"] = f"found {n_listed} samples, card expects {card.expected_samples}"
    if classifier_key:
        extra["classifier"] = classifier_key
    source = hub_source(data.root)
    if source:                          # fetched by `uta-bench data get`: hub repo + commit
        extra["data_source"] = source
    if card.paper:
        extra["paper_column"] = card.paper.get("column")
    return extra
