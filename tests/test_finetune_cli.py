"""`uta-bench train finetune` / `run finetune-eval` end to end, torchrun DDP, and bad input."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def ft_data(tmp_path_factory):
    from uta_bench.finetune.sample import make_finetune_sample

    return make_finetune_sample(tmp_path_factory.mktemp("ft") / "data", classes=3, train_per_class=4,
                                val_per_class=2, size=72)


def cli(*args, env=None, module="uta_bench"):
    e = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, env=e,
                          cwd=REPO, timeout=300)


def run_main(capsys, *args):
    """The CLI in-process (no interpreter start-up): (exit code, stdout, stderr)."""
    import torch

    from uta_bench.cli.main import main

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with pytest.raises(SystemExit) as e:
            main([str(a) for a in args])
    finally:
        torch.set_num_threads(n)
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


def test_train_then_eval_writes_rows(ft_data, tmp_path, capsys):
    out = tmp_path / "out"
    code, so, se = run_main(capsys, "train", "finetune", "--recipe", "smoke", "--train-dir", ft_data / "train",
                            "--out", out, "--epochs", "2", "--batch-size", "4", "--eval-dir", ft_data / "val")
    assert code == 0, se[-2000:]
    assert (out / "finetuned.safetensors").is_file() and (out / "finetuned.classifier.safetensors").is_file()
    assert "top1=" in so
    code, so, se = run_main(capsys, "run", "finetune-eval", "--model", "uta_tiny", "--checkpoint",
                            out / "finetuned_ema.safetensors", "--data", ft_data / "val")
    assert code == 0, se[-2000:]
    from uta_bench.store import ResultsStore

    df = ResultsStore().df(task="imagenet1k_ft")
    assert len(df) == 4 and set(df.metric) == {"top1", "top5"} and (df.n == 6).all()


@pytest.mark.slow
def test_torchrun_ddp(ft_data, tmp_path):
    """Two gloo processes on CPU: DistributedSampler shards, DDP averages, rank 0 exports."""
    out = tmp_path / "ddp"
    r = cli("--standalone", "--nproc_per_node", "2", "-m", "uta_bench", "train", "finetune", "--recipe", "smoke",
            "--train-dir", str(ft_data / "train"), "--out", str(out), "--epochs", "1", "--batch-size", "4",
            "--no-ema", module="torch.distributed.run")
    assert r.returncode == 0, (r.stdout[-1500:], r.stderr[-2500:])
    import json

    log = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert [x["step"] for x in log] == [1, 2, 3]          # 12 images / global batch 4 (2 ranks x 2)
    from uta_bench.models.loader import load_model

    load_model("uta_tiny", checkpoint=str(out / "finetuned.safetensors"))


@pytest.mark.parametrize("args, msg", [
    (["train", "finetune", "--recipe", "smoke", "--train-dir", "/nonexistent/x"], "does not exist"),
    (["train", "finetune", "--recipe", "nope", "--train-dir", "."], "recipe 'nope' not found"),
    (["train", "finetune", "--recipe", "smoke", "--model", "openai_b16", "--train-dir", "{train}"],
     "no timm Eva vision tower"),
    (["train", "finetune", "--recipe", "smoke", "--train-dir", "{train}", "--batch-size", "64"],
     "fewer than one global batch"),
    (["run", "finetune-eval", "--model", "uta_tiny", "--checkpoint", "{ckpt}", "--data", "{val}"],
     "no class head"),
])
def test_bad_input_one_line_error(ft_data, tmp_path, official_ckpt, capsys, args, msg):
    ckpt, _ = official_ckpt("uta_tiny_p16")
    args = [a.format(train=ft_data / "train", val=ft_data / "val", ckpt=ckpt) for a in args]
    code, so, se = run_main(capsys, *args, *(["--out", tmp_path / "o"] if args[0] == "train" else []))
    assert code == 2, (so, se[-1500:])
    err = se.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and msg in err[0], err
    assert not (tmp_path / "o" / "finetuned.safetensors").exists()


def test_eval_refuses_other_classes(ft_data, tmp_path):
    import shutil

    from uta_bench.errors import UtaBenchError
    from uta_bench.finetune.config import make_config
    from uta_bench.finetune.evaluate import run_finetune_eval
    from uta_bench.finetune.train import train

    res = train(make_config("smoke", train_dir=str(ft_data / "train"), out_dir=str(tmp_path / "o"), epochs=1,
                            batch_size=4, ema=False), progress=False)
    other = tmp_path / "other"
    shutil.copytree(ft_data / "val", other)
    (other / sorted(os.listdir(other))[-1]).rename(other / "zebra")
    with pytest.raises(UtaBenchError, match="class folders but the classifier was trained on"):
        run_finetune_eval("uta_tiny", res["exported"][0], str(other), progress=False)
    with pytest.raises(UtaBenchError, match="written for another trunk"):
        ck = tmp_path / "o" / "finetuned.safetensors"
        ck.write_bytes(ck.read_bytes()[:-8] + b"\0" * 8)    # same size, different content
        run_finetune_eval("uta_tiny", str(ck), str(ft_data / "val"), progress=False)
