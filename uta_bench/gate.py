"""`uta-bench check`: the CI regression gate for a new checkpoint.

1. Candidate: per task, the run key the evaluation would have (:class:`uta_bench.store.RunKey`: model,
   sha256 of ``--checkpoint``, precision as it would run, device type, ``--limit``, init, seed, task-card
   version, dataset manifest, code version); re-use the latest rows stored under exactly that key
   (:meth:`ResultsStore.latest`), evaluate the other tasks in one new run through
   :func:`uta_bench.zeroshot.run.run_zeroshot`. The report lists the re-used rows and the keys.
2. Baseline (``--against``): ``paper`` (the paper cells of the model's PaperRef, see
   :mod:`uta_bench.paper.mapping`), a run id in the store, or a model name (its latest measured rows,
   excluding the candidate's runs).
3. Per (task, metric): delta = candidate - baseline. The noise band is the 95% CI of delta: the
   paired bootstrap over per-sample predictions when both sides saved them, else both Wilson CIs
   combined (sqrt of summed squared half-widths), else our CI against the paper's point value.
   Verdicts: ``regression`` when delta < -tolerance AND the CI's upper end < 0 (beyond tolerance and
   beyond noise; without any CI, tolerance alone decides); ``noise`` when the drop exceeds tolerance
   but the CI reaches 0 (reported, not failing); ``improved`` when delta > tolerance with CI above 0;
   otherwise ``pass``. Cells without a baseline are ``missing`` (reported as skipped).
Exit code: 1 with any regression, else 0 (usage/data errors: 2, raised as UtaBenchError).
"""
from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field

from uta_bench.errors import UtaBenchError

log = logging.getLogger(__name__)


@dataclass
class Verdict:
    task: str
    metric: str
    baseline: float | None
    candidate: float | None
    delta: float | None = None
    ci_low: float | None = None         # 95% CI of delta
    ci_high: float | None = None
    p_value: float | None = None
    status: str = "missing"
    noise: str = ""                      # how the CI was obtained
    baseline_ref: str = ""               # paper cell / run id
    candidate_run: str = ""
    fraction_used: float | None = None   # --sequential: share of the task's images read before the verdict
    n_used: int | None = None


@dataclass
class CheckReport:
    model: str
    checkpoint: str | None
    against: str
    tolerance: float                     # points
    verdicts: list = field(default_factory=list)
    candidate_runs: list = field(default_factory=list)
    reused: list = field(default_factory=list)      # [{task, reason, run_id, row_ids, run_key, key}] from the store
    measured: list = field(default_factory=list)    # [{task, reason, run_id, row_ids, run_key, key}] evaluated now
    sequential: dict | None = None       # --sequential: level, alpha sharing, order seed, run id

    @property
    def regressions(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.status == "regression"]

    @property
    def exit_code(self) -> int:
        return 1 if self.regressions else 0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["exit_code"] = self.exit_code
        return d

    def verdict_dict(self, time: str | None = None) -> dict:
        """What :meth:`uta_bench.store.ResultsStore.save_check` stores: :meth:`to_dict` plus the overall
        ``verdict`` ("fail" with any regression, else "pass") and ``time`` (UTC, ISO 8601)."""
        from uta_bench.provenance import now

        return {**self.to_dict(), "verdict": "fail" if self.regressions else "pass", "time": time or now()}


def candidate_key(model: str, checkpoint: str | None, card, limit: int | None, random_init: bool,
                  run_kwargs: dict, sha: str | None = None):
    """The run key an evaluation of ``card`` with these settings records (computed before running it)."""
    import torch

    from uta_bench.zeroshot.tasks import task_manifest
    from uta_bench.models.loader import precision_run
    from uta_bench.provenance import versions
    from uta_bench.resources import resolve_device
    from uta_bench.zeroshot.run import RunConfig, data_root
    from uta_bench.store import RunKey, code_version

    defaults = RunConfig(model=model, tasks=[])
    device = torch.device(resolve_device(run_kwargs.get("device") or defaults.device))   # "auto" -> cuda/cpu
    return RunKey(model=model, task=card.task, weights_sha256=sha,
                  precision=precision_run(run_kwargs.get("precision") or defaults.precision, device),
                  device_type=device.type, sample_limit=limit,
                  init="checkpoint" if checkpoint else "random" if random_init else "pretrained",
                  seed=run_kwargs.get("seed", defaults.seed), task_version=card.version,
                  dataset_manifest=task_manifest(card, data_root(run_kwargs.get("data_root"))),
                  code_version=code_version(versions()))


def candidate_rows(store, model: str, checkpoint: str | None, cards: list, limit: int | None,
                   random_init: bool, run_kwargs: dict, progress: bool = True):
    """Measured rows of the candidate for task ``cards``: per task, the rows of the latest run under the
    candidate's run key, else evaluated now (one new run for all such tasks).
    Returns (rows df, run ids, reused [{task, run_id, row_ids, run_key, key}], measured [same])."""
    import pandas as pd

    from uta_bench.checkpoint import sha256_file

    sha = sha256_file(checkpoint) if checkpoint else None
    keys = {c.task: candidate_key(model, checkpoint, c, limit, random_init, run_kwargs, sha) for c in cards}
    have, reused, measured = {}, [], []
    for c in cards:
        rows = store.latest(key=keys[c.task])
        if len(rows):
            have[c.task] = rows
            reused.append(_entry(c.task, rows, keys[c.task], "stored under the same run key"))
    todo = [c for c in cards if c.task not in have]
    if todo:
        from uta_bench.zeroshot.run import RunConfig, run_zeroshot

        cfg = RunConfig(model=model, tasks=[_source(c) for c in todo], checkpoint=checkpoint, store=store.url,
                        limit=limit, pretrained=not random_init, progress=progress, **run_kwargs)
        run_id = run_zeroshot(cfg)
        rows = store.df(run_id=run_id)
        for c in todo:
            have[c.task] = rows[rows.task == c.task]
            measured.append(_entry(c.task, have[c.task], keys[c.task], "no stored rows under this run key"))
            if have[c.task].run_key.ne(keys[c.task].digest()).any():
                log.warning("task %s: run %s was stored under another run key than predicted; it will be "
                            "measured again next time", c.task, run_id)
    parts = [have[c.task] for c in cards]
    out = pd.concat(parts, ignore_index=True) if parts else store.df().iloc[:0]
    return out, sorted(set(out.run_id)), reused, measured


def _entry(task: str, rows, key, reason: str) -> dict:
    return {"task": task, "reason": reason, "run_id": str(rows.run_id.iloc[0]) if len(rows) else None,
            "row_ids": [int(i) for i in rows["id"]], "run_key": key.digest(), "key": dict(key.__dict__)}


def _ci_from_rows(cand, base) -> tuple[float | None, float | None, str]:
    def half(r):
        lo, hi = r.get("ci_low"), r.get("ci_high")
        return None if lo is None or hi is None or lo != lo or hi != hi else (hi - lo) / 2

    d = cand["value"] - base["value"]
    hc, hb = half(cand), (half(base) if "ci_low" in base else 0.0)
    if hc is None and not hb:
        return None, None, "none"
    h = math.sqrt((hc or 0.0) ** 2 + (hb or 0.0) ** 2)
    return d - h, d + h, "wilson-combined" if hb else "candidate-ci"


def decide(v: Verdict, tol: float) -> Verdict:
    """Set ``v.status`` from delta, its CI and the tolerance (fraction, 0.005 = 0.5 points)."""
    if v.baseline is None or v.candidate is None:
        v.status = "missing"
        return v
    v.delta = v.candidate - v.baseline
    eps = 1e-12
    if v.delta < -tol - eps:
        v.status = "regression" if v.ci_high is None or v.ci_high < 0 else "noise"
    elif v.delta > tol + eps and (v.ci_low is None or v.ci_low > 0):
        v.status = "improved"
    else:
        v.status = "pass"
    return v


def _paired(store, cand_run: str, base_run: str, task: str, metric: str):
    """Paired-bootstrap CI + McNemar p (top1/top5, recall@k) when both runs saved matching predictions."""
    from uta_bench.metricnames import outcome_key

    key = outcome_key(metric)           # top1 -> correct1; recall@k: per-query hits derived from the saved ranks
    if key is None:
        return None
    from uta_bench.compare import compare_runs

    try:
        res = compare_runs(store, base_run, cand_run, tasks=[task], keys=[key], n_boot=5000)
    except UtaBenchError:
        return None
    return res[0] if res else None


def baseline_rows(store, against: str, exclude_runs: list[str], probe: bool = False):
    """Rows of a run id, or the latest measured rows of a model (a registered name or an open_clip:/hf-hub:
    spec); ('run'|'model', df)."""
    from uta_bench.registry import canonical_name, is_spec, list_models

    df = store.df(run_id=against)
    if len(df):
        return "run", df
    if is_spec(against):
        against = canonical_name(against)
    if against in list_models() or is_spec(against):
        if probe:
            return "model", None
        df = store.latest(model=against, exclude_runs=exclude_runs, per=("task", "metric"))
        if df.empty:
            raise UtaBenchError(f"model {against!r} has no measured rows in {store.url} to compare against; "
                                f"run `uta-bench run zeroshot --model {against}` first")
        return "model", df
    raise UtaBenchError(f"--against {against!r} is neither 'paper', a run id in {store.url}, nor a model name")


def check(store, model: str, checkpoint: str | None, against: str, tolerance: float, tasks: list[str],
          metrics: list[str] | None = None, paper_as: str | None = None, limit: int | None = None,
          random_init: bool = False, run_kwargs: dict | None = None, progress: bool = True) -> CheckReport:
    from uta_bench.paper.mapping import canonical_metric

    if not isinstance(tolerance, (int, float)) or not math.isfinite(tolerance) or tolerance < 0:
        raise UtaBenchError(f"--tolerance must be >= 0 and finite (points, e.g. 0.5), not {tolerance!r}")
    if checkpoint is not None:
        from pathlib import Path

        if not Path(checkpoint).is_file():
            raise UtaBenchError(f"checkpoint {checkpoint} does not exist; give the weights file to gate")
    from uta_bench.registry import canonical_name, is_spec
    from uta_bench.taskcards import expand

    if is_spec(model):
        model = canonical_name(model)                       # the name its runs are stored (and keyed) under
    cards = expand(tasks)                                   # fail fast on unknown task names
    tasks = [c.task for c in cards]
    report = CheckReport(model, checkpoint, against, tolerance)
    tol = tolerance / 100.0
    if against == "paper":
        ref = _paper_ref(model, paper_as)
    else:
        baseline_rows(store, against, [], probe=True)      # unknown baseline: fail before evaluating
    cand, report.candidate_runs, report.reused, report.measured = candidate_rows(
        store, model, checkpoint, cards, limit, random_init, run_kwargs or {}, progress)
    if metrics:
        from uta_bench.metricnames import canonical_metrics

        cand = cand[cand.metric.map(canonical_metric).isin(canonical_metrics(metrics))]
    if against == "paper":
        report.verdicts = _against_paper(cand, model, ref)
    else:
        kind, base = baseline_rows(store, against, report.candidate_runs)
        if kind == "run" and against in report.candidate_runs:
            same = next(e for e in report.reused if e["run_id"] == against)
            raise UtaBenchError(f"the candidate is run {against} itself (re-used: same run key {same['run_key'][:12]} "
                                f"for {same['task']}); nothing to compare - gate another checkpoint or setting "
                                "against it")
        base_by = {(r["task"], canonical_metric(r["metric"])): r for r in base.to_dict("records")}
        for r in cand.to_dict("records"):
            b = base_by.get((r["task"], canonical_metric(r["metric"])))
            v = Verdict(r["task"], r["metric"], None if b is None else b["value"], r["value"],
                        baseline_ref=f"{kind} {b['run_id']}" if b else "", candidate_run=r["run_id"])
            if b is not None:
                pr = _paired(store, r["run_id"], b["run_id"], r["task"], canonical_metric(r["metric"]))
                if pr is not None and abs(pr.value_b - r["value"]) < 1e-9 and abs(pr.value_a - b["value"]) < 1e-9:
                    v.ci_low, v.ci_high, v.p_value, v.noise = pr.ci_low, pr.ci_high, pr.p_value, "paired-bootstrap"
                else:
                    v.ci_low, v.ci_high, v.noise = _ci_from_rows(r, b)
            report.verdicts.append(v)
    for v in report.verdicts:
        decide(v, tol)
    if not any(v.status != "missing" for v in report.verdicts):
        raise UtaBenchError(f"nothing to compare: no measured cell of {model} on {', '.join(tasks)} has a baseline "
                            f"in {against!r} (for --against paper the task cards need paper: {{table, column}} "
                            "and the model a paper row; see --paper-as)")
    return report


def _source(card) -> str:
    """What to hand the runner for ``card``: its name when registered, else the card file / folder given
    (``check --tasks my_card.yaml`` evaluates the file even before any row of it exists)."""
    from uta_bench.taskcards import all_cards

    registered = all_cards().get(card.task)
    if registered is not None and registered.source == card.source:
        return card.task
    return card.source or card.task


def _paper_ref(model: str, paper_as: str | None):
    from uta_bench.registry import get_card

    ref = get_card(paper_as or model).paper
    if ref is None or not ref.rows():
        raise UtaBenchError(f"model {paper_as or model!r} has no paper row; pass --paper-as NAME of a model "
                            "whose row to gate against (e.g. uta_b16)")
    return ref


def _against_paper(cand, model: str, ref) -> list[Verdict]:
    from uta_bench.paper.mapping import paper_comparison

    comp = paper_comparison(cand, tables=["1", "2"], refs={model: ref})
    out = []
    for r in comp.to_dict("records"):
        v = Verdict(r["task"], r["metric"], r["paper_value"], r["value"], candidate_run=r["run_id"],
                    baseline_ref=f"paper T{r['paper_table']} {r['paper_row']} / {r['column']}" if r["paper_row"]
                    else f"paper T{r['paper_table']} (the model card declares no Table {r['paper_table']} row)")
        if r["paper_value"] is not None and r["ci_low"] is not None:
            v.ci_low, v.ci_high, v.noise = r["ci_low"] - r["paper_value"], r["ci_high"] - r["paper_value"], \
                "candidate-ci"
        out.append(v)
    return out
