"""`uta-bench run zeroshot`: load a model once, evaluate each task card, write rows per task.

Public API (used by the paper-table and pre-training developers):

* ``run_zeroshot(cfg: RunConfig, on_task=None) -> run_id`` loads ``cfg.model`` and evaluates
  ``cfg.tasks`` (names, suites such as ``zeroshot``, card files or ImageFolder paths).
* ``evaluate_loaded(loaded, cards, cfg, store=None, on_task=None, model_name=None) -> run_id``
  evaluates an already-loaded :class:`~uta_bench.models.loader.LoadedModel` (e.g. a student being
  pre-trained): ``cards`` are task names or :class:`TaskCard` objects; ``cfg`` supplies data root,
  batch size, limit, caching etc. (its ``model``/``checkpoint`` fields are not used to load anything).

``on_task(card, metrics)`` is called after each task is written. Under torchrun every rank must
call these; rank 0 writes the store and returns the run id on every rank.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import logging

from uta_bench.errors import UtaBenchError
from uta_bench.taskcards import TaskCard

log = logging.getLogger(__name__)


@dataclass
class RunConfig:
    model: str
    tasks: list[str]
    checkpoint: str | None = None
    data_root: str | None = None
    store: str | None = None
    batch_size: int | str = 64          # or "auto" (uta_bench.resources: per device, halved on CUDA OOM)
    workers: int | str = 0              # or "auto"
    limit: int | None = None
    precision: str = "fp32"
    device: str = "cpu"                 # or "auto" (cuda when available)
    trust_checkpoint: bool = False
    seed: int = 0
    progress: bool = True
    pretrained: bool = True
    extra: dict = field(default_factory=dict)
    on_bad_image: str = "fail"          # fail | skip
    use_cache: bool = True              # image-feature / classifier / caption caches
    model_id: str | None = None         # cache identity override (default: weights sha256 / params digest)
    feature_chunk: int = 1024           # samples per feature-cache file (= unit of sharding and resuming)
    output_path: str | None = None      # lm-eval style results JSON under this folder (uta_bench.outputs)
    log_samples: bool = False           # ... and one samples JSONL per task
    auto: tuple = ()                    # settings chosen automatically ("device", "workers", "batch_size")


def resolve_resources(cfg: RunConfig, device: str | None = None) -> RunConfig:
    """``cfg`` with "auto" device / workers / batch size resolved (``device``: the loaded model's);
    ``cfg.auto`` names the settings that were chosen automatically (stored with the run)."""
    from uta_bench.resources import resolve

    res = resolve(device or cfg.device, cfg.workers, cfg.batch_size)
    auto = tuple(dict.fromkeys((*cfg.auto, *res.auto)))
    return dataclasses.replace(cfg, device=res.device, workers=res.workers, batch_size=res.batch_size, auto=auto)


def data_root(cfg_root: str | None) -> Path:
    from uta_bench.data.resolve import data_root as _root

    return _root(cfg_root)


def _cards(tasks) -> list[TaskCard]:
    from uta_bench.taskcards import expand

    out, names = [], []
    for t in tasks:
        if isinstance(t, TaskCard):
            out.extend(expand(t.tasks) if t.is_suite else [t])
        else:
            names.append(t)
    return out + expand(names)


def run_init(cfg: RunConfig) -> str:
    """How the weights were initialised, as the run key records it."""
    return "checkpoint" if cfg.checkpoint else "pretrained" if cfg.pretrained else "random"


def run_zeroshot(cfg: RunConfig, on_task=None, on_start=None) -> str:
    """Run every task; returns the run id. Rows of a task are committed together at its end.
    ``on_start(cfg)`` gets the config with "auto" settings resolved once all input is checked, before the
    model loads (the CLI prints the chosen device / workers / batch size there)."""
    from uta_bench.distributed import setup
    from uta_bench.models.loader import load_model

    from uta_bench import validate as V

    V.choice("--on-bad-image", cfg.on_bad_image, ("fail", "skip"))
    V.integer("--limit", cfg.limit, minimum=1, optional=True)
    cfg = resolve_resources(cfg)        # before the model loads: `cuda` without a GPU fails in a second
    from uta_bench.outputs import check_options

    check_options(cfg.output_path, cfg.log_samples)     # an unwritable --output-path fails before the run
    from uta_bench.registry import canonical_name

    canonical_name(cfg.model)           # unknown model names / open_clip tags fail before any task is read
    cards = _cards(cfg.tasks)           # resolve names before any heavy work: typos fail fast
    if not cards:
        raise UtaBenchError("no task to run; give task names, suites, card .yaml files or ImageFolder paths")
    if on_start is not None:
        on_start(cfg)
    import torch

    dist, device = setup(cfg.device)
    torch.manual_seed(cfg.seed)
    loaded = load_model(cfg.model, checkpoint=cfg.checkpoint, device=device, precision=cfg.precision,
                        trust_checkpoint=cfg.trust_checkpoint, pretrained=cfg.pretrained)
    from uta_bench.models.precision import prepare_for_inference

    prepare_for_inference(loaded)
    cfg = dataclasses.replace(cfg, model=loaded.name)     # an open_clip:/hf-hub: spec in canonical form
    return evaluate_loaded(loaded, cards, cfg, on_task=on_task, model_name=cfg.model, init=run_init(cfg))


def evaluate_loaded(loaded, cards, cfg: RunConfig, store=None, on_task=None, model_name: str | None = None,
                    init: str = "loaded") -> str:
    """Evaluate ``loaded`` on ``cards`` (names or TaskCards); returns the run id.

    ``init`` goes into the run key (:class:`uta_bench.store.RunKey`); a model handed in as it is
    ("loaded", e.g. a student being pre-trained) without a weights file is keyed by its parameter digest."""
    from uta_bench.distributed import broadcast, current
    from uta_bench.zeroshot import tasks as T
    from uta_bench.provenance import new_run_id, now, versions
    from uta_bench.store import ResultsStore, RunInfo

    from uta_bench.resources import OomBackoff

    cards = _cards(cards)
    cfg = resolve_resources(cfg, device=str(loaded.device))
    sizer = OomBackoff(cfg.batch_size, auto="batch_size" in cfg.auto)   # one per run: a halving is kept
    dist = current()
    root = data_root(cfg.data_root)
    if dist.main:
        store = store if isinstance(store, ResultsStore) else ResultsStore(store or cfg.store)
    if cfg.model_id is None:          # computed once per run; rank 0's on every rank
        from uta_bench.models.loader import model_identity

        cfg = dataclasses.replace(cfg, model_id=broadcast(model_identity(loaded) if dist.main else None, dist))
    run = RunInfo(run_id=broadcast(new_run_id() if dist.main else None, dist), model=model_name or loaded.name,
                  weights_sha256=loaded.weights_sha256 or (cfg.model_id if init == "loaded" else None),
                  device=str(loaded.device), precision=loaded.precision_run,
                  seed=cfg.seed, started_at=now(), limit=cfg.limit, init=init,
                  config={**{k: v for k, v in vars(cfg).items() if k != "progress"}, "data_root": str(root),
                          "world_size": dist.world}, versions=versions())
    classifiers: dict = {}
    out = None
    if cfg.output_path and dist.main:
        from uta_bench.outputs import RunOutput

        out = RunOutput(cfg.output_path, run.model, cfg.log_samples)
    for card in cards:
        if card.type == "classification":
            res = T.classification(loaded, card, cfg, root, dist, classifiers, sizer=sizer)
        elif card.type == "retrieval":
            res = T.retrieval(loaded, card, cfg, root, dist, sizer=sizer)
        else:
            raise UtaBenchError(f"task {card.task}: cannot run a {card.type} card")
        if res is None:            # non-zero ranks: rank 0 writes
            continue
        _write_task(store, run, card, res)
        if out is not None:
            out.add_task(card, res, root)
        if on_task:
            on_task(card, res.metrics)
    if out is not None:
        path = out.finish(store, run.run_id)
        log.info("wrote %s", path)
    return run.run_id


def _write_task(store, run, card: TaskCard, res) -> None:
    """Rows and per-sample predictions of one task commit together (one transaction) or not at all."""
    paper = {"table": (card.paper or {}).get("table"), "row": None} if card.paper else None
    store.write_task(run, card.task, res.metrics, task_version=card.version, dataset_manifest=res.manifest,
                     paper=paper, extra=res.extra, predictions=res.predictions)
