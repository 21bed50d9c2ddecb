"""`uta-bench train pretrain` end to end on tiny models, recipes, data formats and `plot masks|loss`."""
import tarfile
from pathlib import Path

import pytest

from uta_bench.cli.main import main
from uta_bench.errors import UtaBenchError
from uta_bench.paths import repo_root


def _cli(args, capsys):
    with pytest.raises(SystemExit) as e:
        main(args)
    out = capsys.readouterr()
    return e.value.code, out.out + out.err


def test_train_pretrain_smoke_resume_export_and_store(tmp_path, sample_folder, official_ckpt, capsys):
    teacher, _ = official_ckpt("uta_tiny_p16")
    out = tmp_path / "run"
    args = ["train", "pretrain", "--recipe", "smoke", "--data", str(sample_folder), "--out", str(out),
            "--set", f"teacher_checkpoint={teacher}", "--set", f"val_data={sample_folder}"]
    code, text = _cli(args + ["--stop-after", "3"], capsys)
    assert code == 0, text
    assert "stopped at step 3" in text and (out / "last.pt").is_file()
    code, text = _cli(args, capsys)                    # resumes from last.pt and finishes
    assert code == 0, text
    import pandas as pd

    rows = pd.read_json(out / "train_log.jsonl", lines=True)
    assert rows["step"].tolist() == [1, 2, 3, 4, 5, 6]
    assert rows["val_loss"].notna().sum() == 2        # val_every 3 -> steps 3 and 6
    from uta_bench.models.loader import load_model   # the student loads like a released checkpoint
    import torch

    loaded = load_model("uta_tiny", checkpoint=str(out / "student.safetensors"))
    assert loaded.encode_image(torch.zeros(1, 3, 64, 64)).shape == (1, 64)
    from uta_bench.store import ResultsStore

    df = ResultsStore().df(task="pretrain_loss")
    assert set(df.metric) >= {"train_loss", "val_loss", "mean_step_s"}
    import json

    train = df[df.metric == "train_loss"]
    steps = [json.loads(e)["step"] for e in train.extra_json]
    assert sorted(steps) == [1, 2, 3, 4, 5, 6]                 # each invocation logs its own steps
    by_step = dict(zip(steps, train.value))
    assert [round(by_step[s], 6) for s in range(1, 7)] == rows["train_loss"].round(6).tolist()


def test_bad_recipe_field_is_one_line_error(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("base: smoke\nmask_ratoi: 0.5\n")
    code, text = _cli(["train", "pretrain", "--recipe", str(bad), "--data", str(tmp_path)], capsys)
    assert code == 2 and "unknown field 'mask_ratoi'" in text and "Traceback" not in text
    code, text = _cli(["train", "pretrain", "--recipe", "smoke", "--set", "objective=mae",
                       "--data", str(tmp_path)], capsys)
    assert code == 2 and "field 'objective' must be one of" in text


def test_recipes_carry_the_paper_settings():
    from uta_bench.pretrain.config import load_recipe

    b = load_recipe("uta_b14")
    assert (b.epochs, b.global_batch_size, b.lr, b.min_lr, b.warmup_epochs, b.weight_decay) == \
        (150, 4096, 1.5e-3, 1e-5, 1, 0.05)
    assert (b.mask_ratio, b.mask_kind, b.teacher, b.student_arch) == (0.4, "block_reversed", "eva01_g14",
                                                                      "uta_base_p14")
    assert load_recipe("uta_l14").mask_ratio == 0.5
    names = {p.stem for p in (repo_root() / "recipes" / "pretrain").glob("*.yaml")}
    assert {"t6_fd", "t6_mim", "t6_uta_mim", "t6_uta", "t7_clip_l14", "t8_ratio_07", "t8_mask_random"} <= names
    for n in names:
        load_recipe(n)   # every recipe parses
    assert load_recipe("t6_mim").objective == "mim" and load_recipe("t6_mim").epochs == 90


def test_webdataset_shards_read_like_the_folder(tmp_path, sample_folder):
    from uta_bench.pretrain.data import PretrainImages

    files = sorted(p for p in Path(sample_folder).rglob("*") if p.suffix.lower() in (".jpg", ".png"))
    for s in range(2):
        with tarfile.open(tmp_path / f"shard-{s:03d}.tar", "w") as tf:
            for i, f in enumerate(files[s::2]):
                tf.add(f, arcname=f"{s:03d}{i:04d}{f.suffix}")
                txt = tmp_path / "c.txt"
                txt.write_text("caption")
                tf.add(txt, arcname=f"{s:03d}{i:04d}.txt")
    ds = PretrainImages(str(tmp_path / "shard-{000..001}.tar"), "webdataset", 64, (0.5,) * 3, (0.5,) * 3)
    ref = PretrainImages(sample_folder, "imagefolder", 64, (0.5,) * 3, (0.5,) * 3, train=False)
    assert len(ds) == len(files) == len(ref)
    x, i = ds[(0, 3)]
    assert x.shape == (3, 64, 64) and i == 3
    with pytest.raises(UtaBenchError, match="missing"):
        PretrainImages(str(tmp_path / "shard-{000..002}.tar"), "webdataset", 64, (0.5,) * 3, (0.5,) * 3)


def test_plot_masks_and_loss(tmp_path, capsys):
    code, text = _cli(["plot", "masks", "--n", "300", "--out", str(tmp_path / "f3.png")], capsys)
    assert code == 0 and (tmp_path / "f3.png").stat().st_size > 10_000
    assert "block_reversed" in text
    log = tmp_path / "run" / "train_log.jsonl"
    log.parent.mkdir()
    log.write_text('{"step": 1, "epoch": 0.1, "lr": 1e-3, "train_loss": -0.1, "step_s": 0.1}\n'
                   '{"step": 2, "epoch": 0.2, "lr": 1e-3, "train_loss": -0.3, "val_loss": -0.25, "step_s": 0.1}\n')
    code, text = _cli(["plot", "loss", f"uta={log}", str(log.parent), "--out", str(tmp_path / "f4.png")], capsys)
    assert code == 0 and (tmp_path / "f4.png").stat().st_size > 10_000
    code, text = _cli(["plot", "loss", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "x.png")], capsys)
    assert code == 2 and "does not exist" in text
