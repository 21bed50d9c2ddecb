"""`--output-path DIR` / `--log-samples`: a run's results in lm-evaluation-harness's file layout.

Per run, ``DIR/<model name sanitized>/results_<date id>.json`` (lm-eval's name: the ISO time with ``:``
replaced by ``-``) holds lm-eval's top-level keys: ``results`` ({task: {"alias": task,
"<metric>,none": value, "<metric>_stderr,none": stderr, ...}}), ``group_subtasks``, ``configs`` (the task
card as run), ``versions``, ``n-shot``, ``higher_is_better``, ``n-samples`` ({task: {"original",
"effective"}}), ``config`` (model, model_args, batch_size, device, ...), ``git_hash``, ``date``,
``task_hashes`` and the tracker's ``model_name`` / ``model_name_sanitized`` / times; uta-bench adds
``run_id``, ``store`` and, per metric, ``<metric>_ci_low,none`` / ``<metric>_ci_high,none`` (95% CI).
Metric names are clip_benchmark's (:func:`uta_bench.metricnames.clip_benchmark_name`: ``acc1``,
``acc5``, ``mean_per_class_recall``, ``image_retrieval_recall@K``, ``text_retrieval_recall@K``).
Every number comes from the run's rows in the results store (values, n, CI, stderr).

With ``--log-samples``, ``DIR/<model>/samples_<task>_<date id>.jsonl``: one line per evaluated sample,
made from the per-sample predictions the run keeps for the store (nothing is encoded again).
Files are written atomically; a task's samples file when the task is stored, the results file at the end.
"""
from __future__ import annotations

import json
import re
import time
from dataclasses import asdict
from datetime import datetime
from pathlib import Path

from uta_bench.errors import UtaBenchError
from uta_bench.metricnames import clip_benchmark_name


def check_options(output_path, log_samples: bool) -> None:
    """Before any work: --log-samples needs --output-path; the folder must be writable."""
    from uta_bench.validate import writable_dir

    if log_samples and not output_path:
        raise UtaBenchError("--log-samples needs --output-path DIR (the samples files go beside the results JSON)")
    if output_path:
        writable_dir("--output-path", output_path)


def sanitize_model_name(name: str) -> str:
    """A model name as a folder name, the way lm-eval does it (runs of ``"<>:/|\\?*[]`` -> ``__``)."""
    return re.sub(r'["<>:/|\\?*\[\]]+', "__", str(name))


def _file_task(task: str) -> str:
    return re.sub(r'["<>:/|\\?*\[\]\s]+', "_", task)


def _write(path: Path, text: str) -> None:
    from uta_bench.paths import atomic_write_text

    try:
        atomic_write_text(path, text)
    except OSError as e:
        raise UtaBenchError(f"cannot write --output-path file {path}: {e.strerror or e}; "
                            "nothing was written there") from None


def _int(v):
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def _card_config(card) -> dict:
    d = asdict(card)
    d["metrics"] = list(d.get("metrics") or [])
    return {**d, "output_type": card.type, "num_fewshot": 0,
            "metric_list": [{"metric": clip_benchmark_name(m), "higher_is_better": True} for m in d["metrics"]]}


def _task_results(rows) -> dict:
    out = {}
    for task, g in rows.groupby("task", sort=False):
        res = {"alias": task}
        for r in g.to_dict("records"):
            name = clip_benchmark_name(r["metric"])
            extra = json.loads(r.get("extra_json") or "{}")
            res[f"{name},none"] = float(r["value"])
            res[f"{name}_stderr,none"] = extra.get("stderr", "N/A")
            for end in ("ci_low", "ci_high"):
                v = r.get(end)
                res[f"{name}_{end},none"] = None if v is None or v != v else float(v)
        out[task] = res
    return out


def _n_samples(rows) -> dict:
    out = {}
    for task, g in rows.groupby("task", sort=False):
        first = g.iloc[0]
        extra = json.loads(first.get("extra_json") or "{}")
        eff = int(first["n"]) if first["n"] == first["n"] else None
        if "n_captions" in extra:                 # retrieval: images evaluated (text_retrieval rows' n)
            eff = int(g[g.metric.str.startswith("text_retrieval")].n.max())
        out[task] = {"original": extra.get("n_listed", eff), "effective": eff}
    return out


def results_document(rows, cards: dict, *, store_url: str = "", started: float | None = None,
                     date_id: str = "") -> dict:
    """The lm-eval style results dict of one run's store rows (``rows``: one run id) and its task cards."""
    if rows.empty:
        raise UtaBenchError("no stored rows to write to --output-path")
    first = rows.iloc[0]
    cfg = json.loads(first.get("config_json") or "{}")
    model = str(first["model"])
    tasks = list(dict.fromkeys(rows.task))
    args = [f"{k}={cfg[k]}" for k in ("checkpoint", "pretrained", "precision") if cfg.get(k) is not None]
    end = time.perf_counter()
    return {
        "results": _task_results(rows),
        "group_subtasks": {t: [] for t in tasks},
        "configs": {t: _card_config(cards[t]) for t in tasks if t in cards},
        "versions": {t: (cards[t].version if t in cards else first["task_version"]) for t in tasks},
        "n-shot": {t: 0 for t in tasks},
        "higher_is_better": {t: {clip_benchmark_name(m): True for m in rows[rows.task == t].metric} for t in tasks},
        "n-samples": _n_samples(rows),
        "config": {"model": model, "model_args": ",".join(args), "model_sha": first["weights_sha256"],
                   "model_dtype": first["precision"], "batch_size": cfg.get("batch_size"),
                   "batch_sizes": [], "device": first["device"], "use_cache": cfg.get("use_cache"),
                   "limit": cfg.get("limit"), "bootstrap_iters": 0, "gen_kwargs": None,
                   "random_seed": _int(first["seed"]), "numpy_seed": _int(first["seed"]),
                   "torch_seed": _int(first["seed"]),
                   "fewshot_seed": None, "data_root": cfg.get("data_root"), "workers": cfg.get("workers")},
        "git_hash": (first["git_commit"] or "")[:7] or None,
        "date": datetime.fromisoformat(str(first["started_at"])).timestamp() if first["started_at"] else None,
        "task_hashes": {},
        "model_source": "uta-bench", "model_name": model, "model_name_sanitized": sanitize_model_name(model),
        "start_time": started, "end_time": end if started is not None else None,
        "total_evaluation_time_seconds": str(end - started) if started is not None else None,
        "run_id": str(first["run_id"]), "store": store_url, "date_id": date_id,
        "metric_names": "clip_benchmark (acc1, acc5, mean_per_class_recall, *_retrieval_recall@K)",
    }


class RunOutput:
    """What one run writes under --output-path: samples per task as it is stored, results at the end."""

    def __init__(self, output_path, model: str, log_samples: bool = False):
        self.dir = Path(output_path).expanduser() / sanitize_model_name(model)
        self.log_samples = log_samples
        self.date_id = datetime.now().isoformat().replace(":", "-")
        self.started = time.perf_counter()
        self.cards: dict = {}
        self.files: list[Path] = []

    def add_task(self, card, res, root) -> None:
        self.cards[card.task] = card
        if self.log_samples:
            from uta_bench.samples import sample_lines

            path = self.dir / f"samples_{_file_task(card.task)}_{self.date_id}.jsonl"
            _write(path, "".join(json.dumps(line, ensure_ascii=False) + "\n"
                                 for line in sample_lines(res, root)))
            self.files.append(path)

    def finish(self, store, run_id: str) -> Path | None:
        rows = store.df(run_id=run_id)
        if rows.empty:
            return None
        doc = results_document(rows, self.cards, store_url=store.display_url, started=self.started,
                               date_id=self.date_id)
        path = self.dir / f"results_{self.date_id}.json"
        _write(path, json.dumps(doc, indent=2, ensure_ascii=False, default=str))
        self.files.append(path)
        return path


def write_stored_run(store, run_id: str, output_path, cards: dict, tasks=None) -> Path | None:
    """The results JSON of a run already in the store (``check`` re-using stored rows): no samples file,
    those predictions were not made now."""
    rows = store.df(run_id=run_id)
    if tasks is not None:
        rows = rows[rows.task.isin(list(tasks))]
    if rows.empty:
        return None
    out = RunOutput(output_path, str(rows.iloc[0]["model"]))
    out.cards = cards
    doc = results_document(rows, cards, store_url=store.display_url, date_id=out.date_id)
    path = out.dir / f"results_{out.date_id}_{run_id}.json"
    _write(path, json.dumps(doc, indent=2, ensure_ascii=False, default=str))
    return path
