"""`uta-bench check --sequential`: gate each task on a growing random subset of its images.

Per classification task (the statistics are in :mod:`uta_bench.sequential`):

1. The baseline run's saved per-sample predictions (``index``, ``target``, ``correct1``) fix the set.
2. A seeded uniformly random order of that set (sampling without replacement, which is what the
   confidence sequence assumes) is read in chunks (:func:`uta_bench.sequential.chunk_ends`); the
   candidate model encodes only the chunk's images and its top-1 is paired with the baseline's.
3. After each chunk the CS of mean(candidate - baseline) decides ``regression`` / ``pass`` /
   continue; a task that reaches its full set gets today's verdict (:func:`full_set_verdict`).

The order, the seed and the per-sample outcomes read are saved as predictions of a new run id
(``seq-...``) in the store's predictions table; nothing is written to the results table (a
partial-set top-1 is not a result). Retrieval tasks are not gated sequentially (their per-sample
outcomes are per caption and per image; use the plain check for them).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from uta_bench.errors import UtaBenchError

log = logging.getLogger(__name__)


@dataclass
class SeqInfo:
    """What the sequential gate did on one task (reported next to the verdict)."""
    n_total: int
    n_used: int
    stopped: str                 # regression | pass | full
    seed: int
    run_id: str = ""

    @property
    def fraction(self) -> float:
        return self.n_used / self.n_total if self.n_total else float("nan")


def full_set_verdict(task: str, base, cand, tol: float, baseline_ref: str = "", candidate_run: str = ""):
    """Today's `check` verdict on complete paired 0/1 arrays (paired bootstrap, McNemar, `decide`)."""
    from uta_bench.compare import compare_arrays
    from uta_bench.gate import Verdict, decide

    pr = compare_arrays(task, "correct1", base, cand, n_boot=5000, seed=0)
    v = Verdict(task, "top1", pr.value_a, pr.value_b, baseline_ref=baseline_ref, candidate_run=candidate_run)
    v.ci_low, v.ci_high, v.p_value, v.noise = pr.ci_low, pr.ci_high, pr.p_value, "paired-bootstrap"
    return decide(v, tol)


def counts(d: np.ndarray) -> tuple[int, int, int]:
    """(#D = +1, #D = 0, #D = -1) of paired differences D = candidate - baseline."""
    return int(np.sum(d == 1)), int(np.sum(d == 0)), int(np.sum(d == -1))


def random_order(n: int, seed: int) -> np.ndarray:
    """The seeded uniformly random order (positions 0..n-1) in which a task's samples are read."""
    return np.random.default_rng(seed).permutation(n)


def _baseline_task(store, base_df, task: str):
    """(baseline run id, top-1 row value, predictions) of ``task``; needs saved per-sample predictions."""
    from uta_bench.predictions import has_predictions, load_predictions

    rows = base_df[(base_df.task == task) & (base_df.metric == "top1")]
    if rows.empty:
        raise UtaBenchError(f"--sequential: the baseline has no top1 row for task {task}")
    row = rows.sort_values("id").iloc[-1]
    if not has_predictions(store, row.run_id, task):
        raise UtaBenchError(f"--sequential: baseline run {row.run_id} has no saved predictions for {task} in "
                            f"{store.display_url}; re-run the baseline with this version")
    preds = load_predictions(store, row.run_id, task)
    if not {"index", "target", "correct1"} <= set(preds):
        raise UtaBenchError(f"--sequential: baseline predictions of {row.run_id}/{task} lack "
                            "index/target/correct1")
    return row.run_id, float(row.value), preds


class _TaskReader:
    """Candidate top-1 correctness of a task's samples, encoded on demand (only the images asked for)."""

    def __init__(self, loaded, card, cfg, root, classifiers: dict):
        from uta_bench.zeroshot.tasks import classification_inputs, prompts_key
        from uta_bench.zeroshot.classifier import build_classifier

        from uta_bench.resources import OomBackoff

        self.loaded, self.cfg = loaded, cfg
        self.sizer = OomBackoff(cfg.batch_size, auto="batch_size" in cfg.auto)   # halves on CUDA OOM (auto)
        self.data, names, temps, subset = classification_inputs(card, root)
        ckey = (tuple(names), tuple(prompts_key(temps)))
        if ckey not in classifiers:
            classifiers[ckey] = build_classifier(loaded, names, temps, use_cache=cfg.use_cache,
                                                 progress=cfg.progress)
        self.clf = classifiers[ckey] if subset is None else classifiers[ckey].subset(subset)

    def correct1(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(top-1 correct 0/1, target) of the samples ``indices`` (indices into the task's sample list)."""
        import torch
        from torch.utils.data import DataLoader

        from uta_bench.zeroshot.features import ImageRefs, collate

        feats = []
        loader = DataLoader(ImageRefs(self.data.refs, self.loaded.preprocess, indices.tolist()),
                            batch_size=self.cfg.batch_size, num_workers=self.cfg.workers, collate_fn=collate)
        with torch.no_grad():
            for imgs, _idx, errs in loader:
                if errs:
                    i, err = errs[0]
                    raise UtaBenchError(f"cannot read image {self.data.refs[i]} ({err}); fix or remove it")
                feats.append(self.sizer(lambda x: self.loaded.encode_image(x).float().cpu(), imgs))
        target = torch.as_tensor(np.asarray(self.data.labels)[indices], dtype=torch.long)
        top1 = self.clf.logits(torch.cat(feats)).argmax(dim=1)
        return (top1 == target).numpy().astype(np.int8), target.numpy()


def gate_task(reader: _TaskReader, task: str, base_preds: dict, tol: float, alpha_side: float, seed: int,
              progress: bool = True):
    """Read one task in a seeded random order until its CS decides; (verdict fields, SeqInfo, saved arrays)."""
    from uta_bench.progress import progress_bar
    from uta_bench.sequential import SequentialTask, chunk_ends

    base_c = np.asarray(base_preds["correct1"], dtype=np.int8)
    index = np.asarray(base_preds["index"], dtype=np.int64)
    n = len(base_c)
    order = random_order(n, seed)
    seq = SequentialTask(n, tol, alpha_side)
    cand = np.zeros(n, dtype=np.int8)
    t = 0
    with progress_bar(progress, n, f"{task} (sequential)", "img") as advance:
        for end in chunk_ends(n):
            pos = order[t:end]
            got, target = reader.correct1(index[pos])
            if not np.array_equal(target, np.asarray(base_preds["target"])[pos]):
                raise UtaBenchError(f"task {task}: the data's labels differ from the baseline run's targets "
                                    "(different data or version); a paired comparison needs the same samples")
            cand[pos] = got
            advance(end - t)
            t = end
            verdict = seq.observe(*counts(got.astype(np.int16) - base_c[pos]))[0]
            if verdict != "continue":
                break
    read = order[:t]
    info = SeqInfo(n, t, verdict, seed)
    arrays = {"order": order, "seed": np.int64(seed), "index": index[read], "correct1": cand[read],
              "baseline_correct1": base_c[read]}
    if verdict == "full":
        return full_set_verdict(task, base_c, cand, tol), info, arrays
    return (float(seq.lo[0]), float(seq.hi[0]), float(cand[read].mean()), float(base_c[read].mean())), info, arrays


def sequential_check(store, model: str, checkpoint: str | None, against: str, tolerance: float, tasks: list[str],
                     alpha: float = 0.05, sharing: str = "per-task", seed: int = 0, random_init: bool = False,
                     run_kwargs: dict | None = None, progress: bool = True):
    """`check --sequential`: every task stops as soon as its anytime-valid CS decides (see module doc)."""
    from pathlib import Path

    from uta_bench.gate import CheckReport, Verdict, baseline_rows
    from uta_bench.models.loader import load_model
    from uta_bench.predictions import save_predictions
    from uta_bench.provenance import new_run_id
    from uta_bench.zeroshot.run import RunConfig, data_root, resolve_resources
    from uta_bench.sequential import alpha_per_side
    from uta_bench.taskcards import expand

    if tolerance < 0:
        raise UtaBenchError("--tolerance must be >= 0 (points, e.g. 0.5)")
    if against == "paper":
        raise UtaBenchError("--sequential pairs per-sample predictions: give --against RUN_ID or MODEL "
                            "(a baseline run with saved predictions), not paper")
    if checkpoint is not None and not Path(checkpoint).is_file():
        raise UtaBenchError(f"checkpoint {checkpoint} does not exist; give the weights file to gate")
    cards = expand(tasks)
    bad = next((c for c in cards if c.type != "classification"), None)
    if bad is not None:
        raise UtaBenchError(f"--sequential gates classification tasks; {bad.task} is {bad.type} "
                            "(gate it with a plain `uta-bench check`)")
    try:
        a_side = alpha_per_side(alpha, len(cards), sharing)
    except ValueError as e:
        raise UtaBenchError(f"--alpha/--alpha-sharing: {e}") from None
    kind, base = baseline_rows(store, against, [])
    bases = {c.task: _baseline_task(store, base, c.task) for c in cards}   # all present before any encoding
    kw = dict(run_kwargs or {})
    cfg = RunConfig(model=model, tasks=[c.task for c in cards], checkpoint=checkpoint, progress=progress,
                    pretrained=not random_init, **{k: v for k, v in kw.items() if k in RunConfig.__dataclass_fields__})
    cfg = resolve_resources(cfg)
    loaded = load_model(model, checkpoint=checkpoint, device=cfg.device, precision=cfg.precision,
                        trust_checkpoint=cfg.trust_checkpoint, pretrained=cfg.pretrained)
    from uta_bench.models.precision import prepare_for_inference

    prepare_for_inference(loaded)
    run_id = "seq-" + new_run_id()
    report = CheckReport(model, checkpoint, against, tolerance)
    report.candidate_runs = [run_id]
    report.sequential = dict(alpha=alpha, sharing=sharing, alpha_per_side=a_side, seed=seed, run_id=run_id,
                             precision=loaded.precision_run, order="uniform random permutation (seeded)")
    root, classifiers, tol = data_root(cfg.data_root), {}, tolerance / 100.0
    for card in cards:
        base_run, base_value, preds = bases[card.task]
        reader = _TaskReader(loaded, card, cfg, root, classifiers)
        res, info, arrays = gate_task(reader, card.task, preds, tol, a_side, seed, progress)
        save_predictions(store, run_id, card.task, arrays)
        ref = f"{kind} {base_run}"
        if info.stopped == "full":
            v = res
            v.baseline_ref, v.candidate_run = ref, run_id
            v.noise = "paired-bootstrap (full set)"
        else:
            lo, hi, cand_acc, base_acc = res
            v = Verdict(card.task, "top1", base_acc, cand_acc, delta=cand_acc - base_acc, ci_low=lo, ci_high=hi,
                        status=info.stopped, noise=f"anytime CS, {100 * (1 - 2 * a_side):.3g}% (sampled subset)",
                        baseline_ref=ref, candidate_run=run_id)
        v.fraction_used, v.n_used = info.fraction, info.n_used
        log.info("%s: %s after %d of %d images", card.task, v.status, info.n_used, info.n_total)
        report.verdicts.append(v)
    return report
