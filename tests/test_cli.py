"""The command line end to end: a random-init UTA-B/16 in the official format on a local ImageFolder."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from uta_bench.store import ResultsStore


def cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "uta_bench", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=900)


def test_help_does_not_import_torch():
    code = ("import sys; from uta_bench.cli.main import build, app; build(); "
            "from typer.testing import CliRunner; r = CliRunner().invoke(app, ['--help']); "
            "assert r.exit_code == 0, r.output; assert 'torch' not in sys.modules, 'torch imported'")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("args,needle", [
    (["run", "zeroshot", "--model", "uta_l41"], "unknown model 'uta_l41'; did you mean 'uta_l14'"),
    (["run", "zeroshot", "--model", "uta_tiny", "--tasks", "sample_photo"],
     "unknown task 'sample_photo'; did you mean 'sample_photos'"),
    (["run", "zeroshot", "--model", "uta_tiny", "--tasks", "./no/such/folder"], "does not exist"),
    (["run", "zeroshot", "--model", "uta_tiny", "--random-init", "--precision", "fp8"], "unknown precision"),
])
def test_usage_errors(args, needle):
    r = cli(*args)
    assert r.returncode == 2, r.stderr
    assert needle in r.stderr and r.stderr.startswith("error: ") and "Traceback" not in r.stderr


def test_run_zeroshot_uta_b16_official_checkpoint(official_ckpt, sample_folder, tmp_path):
    path, _ = official_ckpt("uta_base_p16", fmt="safetensors")
    store = tmp_path / "cli.sqlite"
    card = tmp_path / "local.yaml"  # the ImageFolder as a card with CLIP's 7 short templates (CPU time)
    card.write_text(f"task: local_photos\nversion: 1\ntype: classification\n"
                    f"dataset: {{path: {sample_folder}}}\nclasses: folder\ntemplates: open_clip:simple_imagenet\n")
    r = cli("run", "zeroshot", "--model", "uta_b16", "--checkpoint", str(path), "--tasks", str(card),
            "--store", str(store), "--batch-size", "8")
    assert r.returncode == 0, r.stderr[-2000:]
    df = ResultsStore(store).df()
    assert sorted(df.metric) == ["mean_per_class_recall", "top1", "top5"]
    assert (df.n == 24).all() and (df.model == "uta_b16").all() and df.weights_sha256.str.len().eq(64).all()
    assert ((df.ci_low <= df.value) & (df.value <= df.ci_high)).all()
    shown = cli("results", "--store", str(store))
    assert shown.returncode == 0 and "top1" in shown.stdout and "uta_b16" in shown.stdout
    exported = tmp_path / "rows.csv"
    assert cli("results", "--store", str(store), "--export", str(exported)).returncode == 0
    assert exported.read_text().count("\n") == 4          # header + top1, top5, mean_per_class_recall


def test_typer_exit_code_reaches_the_shell():
    """A command ending with typer.Exit(n) exits n (non-standalone click returns it as a value)."""
    import typer

    from uta_bench.cli import main as cli_main

    def exit_three():
        raise typer.Exit(3)

    cli_main.app.command("exit-three", hidden=True)(exit_three)
    try:
        with pytest.raises(SystemExit) as e:
            cli_main.main(["exit-three"])
        assert e.value.code == 3
    finally:
        cli_main.app.registered_commands[:] = [c for c in cli_main.app.registered_commands
                                               if c.name != "exit-three"]
