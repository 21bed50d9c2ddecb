"""`uta-bench import clip-benchmark FILE...`: clip_benchmark result JSONs into the results store.

clip_benchmark's ``eval`` writes one JSON per (model, pretrained, dataset, language):
``{"dataset", "model", "pretrained", "task", "metrics": {...}, "language"}`` (+ optional ``classnames`` /
``templates``). Each file becomes one run of ``source="imported"`` rows:

* model: ``open_clip:ARCH/TAG`` (the spec string of an on-the-fly open_clip card; the tag lower-cased with
  '-' as '_', as open_clip normalises it), ``open_clip:ARCH`` when ``pretrained`` was a weights file (the
  file is kept in the provenance), ``hf-hub:ORG/NAME`` as given; ``--model NAME`` maps every file to a
  registered model instead.
* task: the clip_benchmark dataset name (``wds/`` or ``wds_`` prefix dropped) through :data:`DATASET_TASKS`.
* metrics: ``acc1`` -> ``top1``, ``acc5`` -> ``top5``; ``mean_per_class_recall`` and
  ``{image,text}_retrieval_recall@k`` keep their names. Both tools store fractions (0.77, not 77).
* provenance (``config_json`` / ``extra_json``): the file's path and sha256, the clip_benchmark version when
  the file names one, the dataset, language and clip_benchmark task.

The run id is derived from the file's sha256 (and the model and task it is stored under), so importing the
same file again adds nothing. Every file
is read and checked before anything is written; each file's rows are one transaction. Imported runs carry
no per-sample predictions: `check --against` an imported run compares with the rows' CIs (when the
candidate has one) instead of the paired test, and `compare` says the run has no predictions.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from uta_bench.errors import UtaBenchError

# clip_benchmark dataset name -> uta-bench task card
DATASET_TASKS = {
    "imagenet1k": "imagenet1k", "imagenet-a": "imagenet_a", "imagenet-r": "imagenet_r",
    "imagenetv2": "imagenet_v2", "imagenet_sketch": "imagenet_sketch", "objectnet": "objectnet",
    "flickr30k": "flickr30k", "mscoco_captions": "mscoco",
}
METRICS = {"acc1": "top1", "acc5": "top5"}          # other clip_benchmark metric names are ours too
CB_TASKS = ("zeroshot_classification", "zeroshot_retrieval")
WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")


@dataclass
class Imported:
    """One clip_benchmark result file, checked and converted (nothing written yet)."""

    path: Path
    sha256: str
    model: str
    task: str
    metrics: dict                       # our metric name -> fraction
    config: dict = field(default_factory=dict)

    @property
    def run_id(self) -> str:
        """The same file stored under the same model and task always gets the same run id."""
        return "cb-" + hashlib.sha256(f"{self.sha256}|{self.model}|{self.task}".encode()).hexdigest()[:24]


def dataset_task(dataset: str) -> str | None:
    """Our task card name for a clip_benchmark dataset name (``wds/imagenet1k``, ``wds_imagenet-a``...)."""
    name = dataset.strip()
    for prefix in ("wds/", "wds_"):
        if name.startswith(prefix):
            name = name[len(prefix):]
    return DATASET_TASKS.get(name)


def model_spec(arch: str, pretrained: str) -> tuple[str, str | None]:
    """(store model name, weights file or None) of clip_benchmark's --model/--pretrained."""
    if arch.startswith("hf-hub:"):
        return arch, None
    looks_like_file = "/" in pretrained or "\\" in pretrained or pretrained.lower().endswith(WEIGHT_SUFFIXES)
    if looks_like_file:
        return f"open_clip:{arch}", pretrained
    from uta_bench.speccards import normal_tag

    return f"open_clip:{arch}/{normal_tag(pretrained)}", None


def _fail(path, what: str) -> UtaBenchError:
    return UtaBenchError(f"{path}: {what}; nothing was imported (give result JSONs written by "
                         "`clip_benchmark eval`)")


def _text(path, data: dict, key: str) -> str:
    v = data.get(key)
    if not isinstance(v, str) or not v.strip():
        raise _fail(path, f"'{key}' is missing or not a name")
    return v


def parse(path, model: str | None = None, task: str | None = None) -> Imported:
    """Read and check one result file; ``model`` / ``task`` override the mapped names."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise UtaBenchError(f"cannot read {path}: {e.strerror or e}; nothing was imported") from None
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as e:
        raise _fail(path, f"not JSON ({str(e).splitlines()[0][:120]})") from None
    if not isinstance(data, dict):
        raise _fail(path, "not a JSON object")
    dataset, arch, pretrained = (_text(path, data, k) for k in ("dataset", "model", "pretrained"))
    cb_task = data.get("task")
    if cb_task not in CB_TASKS:
        raise _fail(path, f"clip_benchmark task {cb_task!r} has no uta-bench task (importable: {', '.join(CB_TASKS)})")
    language = data.get("language", "en")
    ours = task or dataset_task(dataset)
    if ours is None:
        raise _fail(path, f"clip_benchmark dataset {dataset!r} has no uta-bench task card (known: "
                          f"{', '.join(sorted(DATASET_TASKS))}, with or without wds/); name one with --task")
    if language != "en" and task is None:
        raise _fail(path, f"language {language!r}: our task cards are English; name the task with --task")
    metrics = data.get("metrics")
    if not isinstance(metrics, dict) or not metrics:
        raise _fail(path, "'metrics' is missing or empty")
    out = {}
    for name, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or not 0.0 <= value <= 1.0:
            raise _fail(path, f"metric {name!r} = {value!r} is not a fraction in [0, 1]")
        out[METRICS.get(name, name)] = float(value)
    store_model, weights_file = (model, None) if model else model_spec(arch, pretrained)
    sha = hashlib.sha256(raw).hexdigest()
    config = {"kind": "clip_benchmark-import", "source_file": str(path.resolve()), "source_sha256": sha,
              "clip_benchmark": {k: v for k, v in data.items() if k not in ("metrics", "classnames", "templates")},
              "clip_benchmark_version": data.get("clip_benchmark_version") or data.get("version"),
              "model": arch, "pretrained": pretrained, "dataset": dataset, "language": language,
              **({"checkpoint": weights_file} if weights_file else {})}
    return Imported(path, sha, store_model, ours, out, config)


def check_names(items: list[Imported]) -> None:
    """Model and task names the store will record must be known (a registered model or an open_clip /
    hf-hub spec; a task card)."""
    from uta_bench.registry import list_models
    from uta_bench.taskcards import expand

    known = set(list_models())
    for it in items:
        if not it.model.startswith(("open_clip:", "hf-hub:")) and it.model not in known:
            from uta_bench.registry import get_card

            get_card(it.model)                  # raises "unknown model ...; did you mean ..."
        expand([it.task])                       # raises "unknown task ..."


def import_files(store, paths, model: str | None = None, task: str | None = None) -> list[tuple[Imported, int]]:
    """Import clip_benchmark result files into ``store``: all are checked first, then each file's rows go
    in one transaction; files already imported (same sha256) are skipped. Returns (file, rows written)."""
    from uta_bench.provenance import now
    from uta_bench.store import Metric, RunInfo

    if not paths:
        raise UtaBenchError("give the clip_benchmark result JSON files to import")
    items = [parse(p, model=model, task=task) for p in paths]
    check_names(items)
    done, out = set(), []
    for it in items:
        if it.run_id in done or len(store.df(run_id=it.run_id)):
            out.append((it, 0))             # the same file (content) again: nothing to add
            continue
        done.add(it.run_id)
        run = RunInfo(run_id=it.run_id, model=it.model, started_at=now(), config=it.config,
                      versions={"clip_benchmark_version": it.config["clip_benchmark_version"]},
                      init="checkpoint" if it.config.get("checkpoint") else "pretrained")
        rows = [Metric(name, value) for name, value in it.metrics.items()]
        n = store.write_task(run, it.task, rows, source="imported",
                             extra={"imported_from": str(it.path), "source_sha256": it.sha256,
                                    "clip_benchmark_version": it.config["clip_benchmark_version"]})
        out.append((it, n))
    return out
