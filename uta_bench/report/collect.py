"""What the report shows, read from the store: paper grids, Δ rows, per-class accuracy, provenance, checks."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

from uta_bench.errors import UtaBenchError

log = logging.getLogger(__name__)

PROVENANCE = ("model", "weights_sha256", "git_commit", "started_at", "ended_at", "device", "precision",
              "harness_version", "source")


@dataclass
class ClassAccuracy:
    """Per-class top-1 accuracy of one task of one run (from its per-sample predictions)."""

    task: str
    names: list              # class name per class index
    n: list                  # samples per class
    correct: list            # correct top-1 per class
    note: str = ""           # e.g. why class names are indices

    @property
    def rows(self) -> list[tuple[str, int, float]]:
        """(class name, samples, accuracy) for classes with samples, worst first (ties by name)."""
        out = [(self.names[i], n, self.correct[i] / n) for i, n in enumerate(self.n) if n]
        return sorted(out, key=lambda r: (r[2], r[0]))


@dataclass
class ReportData:
    store: str                                   # display URL (no password)
    generated_at: str
    grids: list = field(default_factory=list)    # uta_bench.paper.grid.Grid
    deltas: object = None                        # DataFrame: task, label, run_id, delta, err_low, err_high
    baseline: str | None = None
    baseline_deltas: object = None               # same columns, our run minus the baseline run
    run_id: str | None = None                    # the run of the per-class section
    per_class: list = field(default_factory=list)
    per_class_notes: list = field(default_factory=list)
    provenance: dict = field(default_factory=dict)   # run_id -> {field: value}
    checks: list | None = None                   # None: this store keeps no check verdicts


def provenance(df) -> dict:
    """run_id -> the provenance fields of its first row (every row of a run shares them)."""
    out = {}
    for r in df.to_dict("records"):
        if r["run_id"] not in out:
            out[r["run_id"]] = {k: r.get(k) for k in PROVENANCE}
            out[r["run_id"]]["tasks"] = []
        if r["task"] not in out[r["run_id"]]["tasks"]:
            out[r["run_id"]]["tasks"].append(r["task"])
    return out


def _err(value, lo, hi) -> tuple[float, float]:
    """Error-bar lengths below/above ``value`` from a stored CI (0 where the row has none)."""
    ok = lo is not None and hi is not None and lo == lo and hi == hi
    return (value - lo, hi - value) if ok else (0.0, 0.0)


def paper_deltas(comparison):
    """One record per measurement with a paper value (Table 4's ImageNet ZS repeats Table 1's IN-1K)."""
    import pandas as pd

    comp = comparison[comparison.delta.notna()].drop_duplicates(["model", "task", "metric"])
    recs = []
    for r in comp.itertuples():
        lo, hi = _err(r.value, r.ci_low, r.ci_high)
        recs.append(dict(task=r.task, label=f"{r.model}\nT{r.paper_table} {r.column}", run_id=r.run_id,
                         delta=r.delta, err_low=lo, err_high=hi))
    return pd.DataFrame(recs, columns=["task", "label", "run_id", "delta", "err_low", "err_high"])


def run_deltas(run_rows, base_rows):
    """Our run minus a baseline run per (task, metric) both measured; error bars: our run's 95% CI."""
    import pandas as pd

    base = {(r.task, r.metric): r.value for r in base_rows.itertuples()}
    recs = []
    for r in run_rows.itertuples():
        if (r.task, r.metric) in base:
            lo, hi = _err(r.value, r.ci_low, r.ci_high)
            recs.append(dict(task=r.task, label=f"{r.model}\n{r.metric}", run_id=r.run_id,
                             delta=r.value - base[(r.task, r.metric)], err_low=lo, err_high=hi))
    return pd.DataFrame(recs, columns=["task", "label", "run_id", "delta", "err_low", "err_high"])


def _task_card(config: dict, task: str):
    from uta_bench.taskcards import expand

    for name in config.get("tasks") or []:
        try:
            for card in expand([str(name)]):
                if card.task == task:
                    return card
        except UtaBenchError:
            continue
    return expand([task])[0]


def class_names(config: dict, task: str, n_classes: int) -> tuple[list[str], str]:
    """The task's class names as the run evaluated them (its card, its data root); ``class i`` with a
    note when the card or the data is not readable here."""
    from pathlib import Path

    from uta_bench.zeroshot.tasks import classification_inputs

    try:
        card = _task_card(config, task)
        _, names, _, subset = classification_inputs(card, Path(config.get("data_root") or "."))
        names = [names[i] for i in subset] if subset is not None else list(names)
        if len(names) >= n_classes:
            return names, ""
        note = f"the card lists {len(names)} classes, the predictions have {n_classes}"
    except (UtaBenchError, OSError) as e:
        note = f"class names not readable here ({str(e).splitlines()[0][:200]})"
    log.warning("task %s: %s; classes shown by index", task, note)
    return [f"class {i}" for i in range(n_classes)], note


def per_class(store, run_id: str, run_rows) -> tuple[list[ClassAccuracy], list[str]]:
    """Per-class accuracy of every classification task of ``run_id`` with stored predictions."""
    import numpy as np

    from uta_bench.predictions import load_predictions

    out, notes = [], []
    config = {}
    if len(run_rows) and isinstance(run_rows.config_json.iloc[0], str):
        config = json.loads(run_rows.config_json.iloc[0] or "{}")
    for task in dict.fromkeys(run_rows.task):
        try:
            preds = load_predictions(store, run_id, task)
        except (OSError, KeyError, ValueError, UtaBenchError) as e:
            notes.append(f"{task}: no per-sample predictions readable ({type(e).__name__}: {str(e)[:160]})")
            continue
        if "target" not in preds or "correct1" not in preds:
            notes.append(f"{task}: predictions have no target/correct1 (not a classification task)")
            continue
        target = np.asarray(preds["target"]).astype(int)
        correct = np.asarray(preds["correct1"]).astype(int)
        n_classes = int(target.max()) + 1 if len(target) else 0
        if "top5" in preds and np.size(preds["top5"]):
            n_classes = max(n_classes, int(np.max(preds["top5"])) + 1)
        names, note = class_names(config, task, n_classes)
        out.append(ClassAccuracy(task, names, np.bincount(target, minlength=len(names)).tolist(),
                                 np.bincount(target, weights=correct, minlength=len(names)).astype(int).tolist(),
                                 note))
    return out, notes


def stored_checks(store, limit: int) -> list | None:
    """The latest ``check`` verdicts, newest first; None when the store keeps none (older uta-bench)."""
    checks = getattr(store, "checks", None)
    if checks is None:
        return None
    return list(checks(limit))


def collect(store, run_id: str | None = None, baseline: str | None = None, models=None, tables=None,
            checks_limit: int = 10) -> ReportData:
    from uta_bench.paper.grid import build_grid
    from uta_bench.paper.mapping import latest_measured, paper_comparison
    from uta_bench.paper.rows import PAPER_TABLES
    from uta_bench.provenance import now

    everything = store.df()
    if everything.empty:
        raise UtaBenchError(f"the results store {store.display_url} has no rows; run `uta-bench run zeroshot` "
                            "(or `uta-bench import`) first")
    data = ReportData(store=store.display_url, generated_at=now(), provenance=provenance(everything))
    comparison = paper_comparison(latest_measured(store, models), tables=tables)
    data.grids = [build_grid(t, comparison) for t in (tables or PAPER_TABLES)]
    data.deltas = paper_deltas(comparison)
    measured = everything[everything.source == "measured"]
    data.run_id = run_id or (str(measured.run_id.iloc[-1]) if len(measured) else None)
    for name, rid in (("--run", run_id), ("--baseline", baseline)):
        if rid is not None and rid not in set(everything.run_id):
            raise UtaBenchError(f"{name} {rid}: no such run in the store; `uta-bench results` lists run ids")
    if data.run_id is not None:
        run_rows = everything[everything.run_id == data.run_id]
        data.per_class, data.per_class_notes = per_class(store, data.run_id, run_rows)
        if baseline is not None:
            data.baseline = baseline
            data.baseline_deltas = run_deltas(run_rows, everything[everything.run_id == baseline])
    data.checks = stored_checks(store, checks_limit)
    return data
