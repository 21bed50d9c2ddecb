"""`--help` documents every option; `tasks`, `models` and `results` never cut names or run ids at 80
columns (through the real CLI in a subprocess, COLUMNS=80)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest


def _commands():
    import typer.main

    from uta_bench.cli.main import build

    out = []

    def walk(c, path):
        if hasattr(c, "commands"):
            for n, sub in c.commands.items():
                walk(sub, path + [n])
        else:
            out.append((" ".join(path), c))
    walk(typer.main.get_command(build()), [])
    return out


def test_every_option_has_help():
    missing = [f"{path} {max(p.opts, key=len)}" for path, c in _commands() for p in c.params
               if type(p).__name__.endswith("Option") and "--help" not in p.opts and not (p.help or "").strip()]
    assert not missing, missing


def test_fixed_choices_are_listed():
    for path, c in _commands():
        for p in c.params:
            opt = max(p.opts, key=len)
            if opt == "--device":
                assert "cpu | cuda" in p.help, (path, p.help)
            if opt == "--precision":
                assert "fp32" in p.help and "bf16" in p.help, (path, p.help)


def _cli(*args, tmp_path):
    env = {**os.environ, "COLUMNS": "80", "TERM": "dumb", "UTA_BENCH_STORE": str(tmp_path / "store.sqlite")}
    r = subprocess.run([sys.executable, "-m", "uta_bench", *args], capture_output=True, text=True, env=env,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    assert max(len(line) for line in r.stdout.splitlines()) <= 80
    return r.stdout


@pytest.mark.parametrize("cmd,names", [
    (["tasks"], ["imagenet_sketch", "imagenet1k", "objectnet", "sample_photos", "zeroshot"]),
    (["models", "--all"], None)])
def test_names_whole_at_80_columns(cmd, names, tmp_path):
    if names is None:
        from uta_bench.registry import cards

        names = [n + (f" -> {c.alias_of}" if c.alias_of else "") for n, c in cards().items()]
    out = _cli(*cmd, tmp_path=tmp_path)
    for n in names:
        assert f"│ {n} " in out, (n, out)


def test_run_ids_whole_at_80_columns(tmp_path):
    from uta_bench.provenance import new_run_id
    from uta_bench.store import Metric, ResultsStore, RunInfo

    run_id = new_run_id()                     # 20261202T192830-1b72cbaf: 24 characters
    ResultsStore(str(tmp_path / "store.sqlite")).write_task(
        RunInfo(run_id=run_id, model="uta_l14_336", precision="fp32"), "imagenet_sketch",
        [Metric("top1", 0.5, n=10, ci_low=0.2, ci_high=0.8)])
    out = _cli("results", tmp_path=tmp_path)
    assert f"│ {run_id} │" in out and "imagenet_sketch" in out, out
    assert "left out at 80 columns" in " ".join(out.split())
