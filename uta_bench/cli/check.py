"""`uta-bench check`: regression gate for a new checkpoint (exit 1 on regression, 0 pass, 2 errors)."""
from __future__ import annotations

import sys
from typing import List, Optional

import typer

from uta_bench.resources import option

from uta_bench.validate import finite


def junit_xml(report) -> str:
    """JUnit XML: one testcase per (task, metric); regressions are failures, missing cells skipped."""
    import xml.etree.ElementTree as ET

    suites = ET.Element("testsuites")
    suite = ET.SubElement(suites, "testsuite", name="uta-bench check", tests=str(len(report.verdicts)),
                          failures=str(len(report.regressions)),
                          skipped=str(sum(v.status == "missing" for v in report.verdicts)), errors="0")
    props = ET.SubElement(suite, "properties")
    for k in ("model", "checkpoint", "against", "tolerance"):
        ET.SubElement(props, "property", name=k, value=str(getattr(report, k)))
    for k, val in (report.sequential or {}).items():
        ET.SubElement(props, "property", name=f"sequential.{k}", value=str(val))
    for v in report.verdicts:
        tc = ET.SubElement(suite, "testcase", classname=f"uta_bench.check.{report.model}",
                           name=f"{v.task}/{v.metric}", time="0")
        if v.fraction_used is not None:
            ET.SubElement(ET.SubElement(tc, "properties"), "property", name="fraction_used",
                          value=f"{v.fraction_used:.6f}")
        msg = describe(v, report.tolerance)
        if v.status == "regression":
            ET.SubElement(tc, "failure", message=msg, type="regression").text = msg
        elif v.status == "missing":
            ET.SubElement(tc, "skipped", message=msg)
        else:
            ET.SubElement(tc, "system-out").text = msg
    ET.indent(suites)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.2f}"


def describe(v, tolerance: float) -> str:
    if v.status == "missing":
        return f"{v.task}/{v.metric}: no baseline ({v.baseline_ref or 'none'})"
    ci = "" if v.ci_low is None else f", 95% CI [{100 * v.ci_low:+.2f}, {100 * v.ci_high:+.2f}] ({v.noise})"
    used = "" if v.fraction_used is None else f", {100 * v.fraction_used:.1f}% of images used ({v.n_used})"
    return (f"{v.task}/{v.metric}: {v.status}: candidate {_pct(v.candidate)} vs baseline {_pct(v.baseline)} "
            f"({v.baseline_ref}), delta {100 * v.delta:+.2f} points{ci}, tolerance {tolerance} points{used}")


def describe_key(key: dict) -> str:
    """The run-key fields that tell runs apart, in one line (the full key is in the --json report)."""
    short = {k: (v[:12] if isinstance(v, str) and len(v) > 16 else v) for k, v in key.items()
             if k not in ("model", "task")}
    return ", ".join(f"{k}={v}" for k, v in short.items())


CONFIG_KEYS = ("model", "against", "tolerance", "tasks", "metrics", "paper_as", "limit", "batch_size", "device",
               "precision")


def load_config(path: str | None) -> dict:
    """Defaults for `check` from a YAML mapping (keys as the long options, with underscores)."""
    if not path:
        return {}
    from pathlib import Path

    from uta_bench.errors import UtaBenchError
    from uta_bench.yamlio import read_mapping

    p = Path(path)
    if not p.is_file():
        raise UtaBenchError(f"check config {path} does not exist")
    data = read_mapping(p, "check config")
    unknown = sorted(set(data) - set(CONFIG_KEYS))
    if unknown:
        raise UtaBenchError(f"check config {path}: unknown key '{unknown[0]}' (known: {', '.join(CONFIG_KEYS)})")
    return data


def resolve_options(cli: dict, config: str | None) -> dict:
    """The command line wins over the --config file; both go through the same validation (one line naming
    ``--option`` or ``check config FILE: key`` and what is accepted)."""
    from uta_bench import validate as V
    from uta_bench.errors import UtaBenchError
    from uta_bench.resources import count_option, resolve

    cfg = load_config(config)

    def pick(key, default=None):
        v = cli.get(key)
        if v is not None and v != []:
            return "--" + key.replace("_", "-"), v
        if key in cfg and cfg[key] is not None:
            return f"check config {config}: {key}", cfg[key]
        return "--" + key.replace("_", "-"), default

    def text(key, default=None):
        where, v = pick(key, default)
        if v is not None and not isinstance(v, str):
            raise V.bad_value(where, "a name (text)", v)
        return v

    out = {"model": text("model"), "against": text("against", "paper"), "paper_as": text("paper_as")}
    if not out["model"]:
        raise UtaBenchError("give --model NAME (or `model:` in --config)")
    out["tolerance"] = V.number(*pick("tolerance", 0.5), minimum=0, unit="points, e.g. 0.5")
    out["tasks"] = V.string_list(*pick("tasks"))
    if not out["tasks"]:
        raise UtaBenchError("give the tasks to gate on with --tasks (e.g. --tasks zeroshot, or the "
                            "recipes/ci/check.yaml list)")
    out["metrics"] = V.string_list(*pick("metrics")) or None
    out["limit"] = V.integer(*pick("limit"), minimum=1, optional=True)
    out["batch_size"] = count_option(*pick("batch_size", "auto"), minimum=1)
    out["precision"] = V.choice(*pick("precision", "fp32"), V.PRECISIONS)
    where, device = pick("device", "auto")
    if not isinstance(device, str):
        raise V.bad_value(where, "a device such as auto, cpu, cuda or cuda:0", device)
    out["resources"] = resolve(device, "auto", out["batch_size"], device_option=where)
    out["device"] = out["resources"].device
    return out


def verdict_table(report, checkpoint, sequential: bool = False):
    """The rich table of verdicts printed by `check` (``sequential``: with the fraction of images used)."""
    from rich.table import Table

    t = Table(title=f"uta-bench check: {report.model} ({checkpoint or 'random init'}) vs {report.against}, "
                    f"tolerance {report.tolerance} points")
    cols = ("task", "metric", "baseline", "candidate", "delta", "95% CI of delta", "p", "verdict")
    for col in cols + (("images used",) if sequential else ()):
        t.add_column(col, justify="left" if col in ("task", "metric", "verdict") else "right")
    colors = {"regression": "bold red", "noise": "yellow", "improved": "green", "pass": "green",
              "missing": "dim"}
    for v in report.verdicts:
        ci = "-" if v.ci_low is None else f"[{100 * v.ci_low:+.2f}, {100 * v.ci_high:+.2f}]"
        t.add_row(v.task, v.metric, _pct(v.baseline), _pct(v.candidate),
                  "-" if v.delta is None else f"{100 * v.delta:+.2f}", ci,
                  "-" if v.p_value is None else f"{v.p_value:.3g}", v.status.upper(),
                  *((f"{100 * v.fraction_used:.1f}%",) if sequential else ()), style=colors.get(v.status))
    return t


def save_verdict(store, report) -> None:
    """Keep the verdict in the store (``checks`` table, read by `uta-bench report`); a failure is a warning:
    the gate's exit code is the verdict's, never the bookkeeping's."""
    import logging

    try:
        store.save_check(report.verdict_dict())
    except Exception as e:  # noqa: BLE001 - storing the verdict must not change the gate's result
        logging.getLogger(__name__).warning("the check verdict was not stored in the results store: %s", e)


def write_stored_outputs(console, store, report, tasks, output_path, sequential: bool) -> None:
    """--output-path for candidate runs the check did not evaluate now (re-used rows, --sequential):
    their results JSON from the store rows (the run it evaluated wrote its own while running)."""
    from uta_bench.outputs import write_stored_run
    from uta_bench.taskcards import expand

    cards = {c.task: c for c in expand(tasks)}
    written_now = set() if sequential else {e["run_id"] for e in report.measured}
    for run_id in report.candidate_runs:
        if run_id in written_now:
            continue
        path = write_stored_run(store, run_id, output_path, cards, tasks=list(cards))
        if path is not None:
            console.print(f"wrote {path} (stored rows of run {run_id}; no samples file: not evaluated now)",
                          highlight=False)


def register(app: typer.Typer, run_app: typer.Typer) -> None:
    @app.command("check")
    def check(
        config: Optional[str] = typer.Option(None, "--config", "-c",
                                             help="YAML with defaults for these options (recipes/ci/*.yaml)."),
        model: Optional[str] = typer.Option(None, "--model", "-m",
                                            help="Registered model (architecture) of the checkpoint, or "
                                                 "open_clip:ARCH[/TAG] / hf-hub:ORG/NAME."),
        checkpoint: Optional[str] = typer.Option(None, "--checkpoint", help="Weights file to gate."),
        against: Optional[str] = typer.Option(None, "--against",
                                              help="paper | RUN_ID | MODEL (its latest runs). Default: paper."),
        tolerance: Optional[float] = typer.Option(None, "--tolerance", callback=finite,
                                                  help="Allowed drop in points (0.5 = 0.5%). Default: 0.5."),
        tasks: Optional[List[str]] = typer.Option(None, "--tasks", "-t", help="Tasks/suites to evaluate."),
        metrics: Optional[List[str]] = typer.Option(None, "--metrics", help="Only these metrics (e.g. top1)."),
        paper_as: Optional[str] = typer.Option(None, "--paper-as",
                                               help="Gate against this model's paper row (--against paper)."),
        junit: Optional[str] = typer.Option(None, "--junit", help="Write a JUnit XML report to FILE."),
        json_out: Optional[str] = typer.Option(None, "--json", help="Write a JSON report to FILE."),
        limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Only the first N images per task."),
        data_root: Optional[str] = typer.Option(None, "--data-root", envvar="UTA_BENCH_DATA"),
        batch_size: Optional[str] = typer.Option(None, "--batch-size", callback=option(1),
                                                 help="Default: auto (256 on CUDA, 64 on CPU; halved on CUDA "
                                                      "out-of-memory)."),
        device: Optional[str] = typer.Option(None, "--device", help="Default: auto (cuda when available)."),
        precision: Optional[str] = typer.Option(None, "--precision", help="Default: fp32."),
        trust_checkpoint: bool = typer.Option(False, "--trust-checkpoint"),
        random_init: bool = typer.Option(False, "--random-init", help="No weights (pipeline smoke tests)."),
        store: Optional[str] = typer.Option(None, "--store", envvar="UTA_BENCH_STORE"),
        sequential: bool = typer.Option(False, "--sequential",
                                        help="Stop each task early once an anytime-valid CS decides "
                                             "(needs --against RUN_ID|MODEL with saved predictions)."),
        alpha: float = typer.Option(0.05, "--alpha", help="--sequential: level of each task's CS."),
        alpha_sharing: str = typer.Option("per-task", "--alpha-sharing",
                                          help="--sequential: per-task | bonferroni (alpha/K per task)."),
        order_seed: int = typer.Option(0, "--order-seed", help="--sequential: seed of the sampling order."),
        output_path: Optional[str] = typer.Option(None, "--output-path",
                                                  help="Also write lm-eval style results JSON of the candidate "
                                                       "run(s) under DIR/<model>/."),
        log_samples: bool = typer.Option(False, "--log-samples",
                                         help="With --output-path: samples JSONL of the tasks evaluated now."),
    ):
        """Evaluate (or re-use cached results of) a checkpoint and gate it against a baseline."""
        import json

        from rich.console import Console

        from uta_bench.errors import UtaBenchError
        from uta_bench.gate import check as run_check
        from uta_bench.store import ResultsStore
        from uta_bench.validate import writable_file, write_output

        opts = resolve_options(dict(model=model, against=against, tolerance=tolerance, tasks=tasks, metrics=metrics,
                                    paper_as=paper_as, limit=limit, batch_size=batch_size, device=device,
                                    precision=precision), config)
        model, against, tolerance, tasks, metrics, paper_as, limit, batch_size, device, precision = (
            opts[k] for k in CONFIG_KEYS)
        if checkpoint is None and not random_init:
            raise UtaBenchError("give --checkpoint PATH (the weights to gate), or --random-init for a smoke test")
        if checkpoint is not None and random_init:
            raise UtaBenchError("--checkpoint and --random-init exclude each other: gate the weights file, or "
                                "smoke-test the pipeline with --random-init alone")
        if not 0.0 < alpha < 1.0:
            raise UtaBenchError(f"--alpha must be in (0, 1), got {alpha!r}")
        if alpha_sharing not in ("per-task", "bonferroni"):
            raise UtaBenchError(f"--alpha-sharing must be per-task or bonferroni, got {alpha_sharing!r}")
        for where, path in (("--junit", junit), ("--json", json_out)):
            if path:
                writable_file(where, path)       # before evaluating: a report we cannot write fails fast
        from uta_bench.outputs import check_options

        check_options(output_path, log_samples)
        if log_samples and sequential:
            raise UtaBenchError("--log-samples does not go with --sequential (it reads a random part of each task); "
                                "drop one of them")
        from uta_bench.registry import canonical_name

        canonical_name(model)           # a bad model name is the one line printed, before the resources line
        res = opts["resources"]
        typer.echo(res.describe())
        run_kwargs = dict(data_root=data_root, batch_size=res.batch_size, device=res.device, precision=precision,
                          trust_checkpoint=trust_checkpoint, workers=res.workers, auto=res.auto)
        results = ResultsStore(store)
        if output_path and not sequential:
            run_kwargs.update(output_path=output_path, log_samples=log_samples)
        if sequential:
            from uta_bench.seqcheck import sequential_check

            report = sequential_check(results, model, checkpoint, against, tolerance, tasks,
                                      alpha=alpha, sharing=alpha_sharing, seed=order_seed,
                                      random_init=random_init, run_kwargs=run_kwargs)
        else:
            report = run_check(results, model, checkpoint, against, tolerance, tasks, metrics=metrics,
                               paper_as=paper_as, limit=limit, random_init=random_init, run_kwargs=run_kwargs)
        save_verdict(results, report)
        t = verdict_table(report, checkpoint, sequential)
        console = Console()
        if not console.is_terminal:       # CI logs: do not squeeze the verdict table into 80 columns
            console = Console(width=160)
        console.print(t)
        for e in report.reused:
            console.print(f"re-used run {e['run_id']} for {e['task']} ({len(e['row_ids'])} rows): same run key "
                          f"{e['run_key'][:12]} ({describe_key(e['key'])})", highlight=False)
        for e in report.measured:
            console.print(f"measured {e['task']} in run {e['run_id']} (run key {e['run_key'][:12]})", highlight=False)
        n_reg = len(report.regressions)
        if output_path:
            write_stored_outputs(console, results, report, tasks, output_path, sequential)
        try:
            if junit:
                write_output("--junit", junit, junit_xml(report))
            if json_out:
                write_output("--json", json_out, json.dumps(report.to_dict(), indent=1, default=str))
        except UtaBenchError as e:
            if not n_reg:
                raise                            # exit 2: the gate passed, only its report is missing
            console.print(f"[red]error[/red]: {e}")
        if n_reg:
            console.print(f"[bold red]FAIL[/bold red]: {n_reg} regression(s) beyond {tolerance} points and "
                          "beyond noise")
            sys.exit(1)
        console.print("[green]PASS[/green]: no regression beyond tolerance and noise")
