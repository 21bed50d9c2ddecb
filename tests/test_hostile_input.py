"""Careless and hostile input through the real CLI, as a user types it (issue 17's 14 reproductions).

Every case runs ``python -m uta_bench`` in a subprocess and checks the exit-code contract (0 success,
1 regression found by `check` only, 2 usage/data error, 130 interrupted), a one-line ``error:`` that
names the option / field / file and what is accepted, no traceback, and nothing half-written.
Models are random-init ``uta_tiny`` (or its official-format checkpoint); data is a few generated JPEGs.
"""
from __future__ import annotations

import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_env import cli_env

CARD = """task: tiny_photos
version: 1
type: classification
dataset: {path: tiny, formats: [imagefolder]}
classes: folder
templates: ["a photo of a {c}."]
metrics: [top1]
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A 2-class, 16-image ImageFolder, its card, and an official-format tiny checkpoint (+ a copy renamed .pt)."""
    from conftest import save_official

    from uta_bench.data import synthetic as syn

    root = tmp_path_factory.mktemp("hostile")
    syn.make_imagefolder(root / "data" / "tiny", ["cat", "dog"], per_class=8, size=40)
    card = root / "tiny_photos.yaml"
    card.write_text(CARD)
    ckpt = root / "tiny.safetensors"
    save_official("uta_tiny_p16", ckpt, fmt="safetensors")
    renamed = root / "tiny_renamed.pt"
    renamed.write_bytes(ckpt.read_bytes())
    return {"root": root, "data": root / "data", "card": card, "ckpt": ckpt, "renamed": renamed}


def uta(*args, cwd=None, env=None, umask=None, timeout=300) -> tuple[int, str, str]:
    e = {**cli_env(COLUMNS="200", HF_HUB_OFFLINE="1"), **(env or {})}
    p = subprocess.run([sys.executable, "-m", "uta_bench", *map(str, args)], cwd=cwd, env=e, text=True,
                       capture_output=True, timeout=timeout,
                       preexec_fn=(lambda: os.umask(umask)) if umask is not None else None)
    assert "Traceback" not in p.stdout + p.stderr, p.stderr[-3000:]
    return p.returncode, p.stdout, p.stderr


def error_line(err: str) -> str:
    """The one ``error:`` line (warnings from logging may precede it)."""
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


def rows(store) -> int:
    if not Path(store).exists():
        return 0
    with sqlite3.connect(store) as c:
        try:
            return c.execute("select count(*) from results").fetchone()[0]
        except sqlite3.OperationalError:
            return 0


RUN = ("run", "zeroshot", "--model", "uta_tiny", "--no-progress")


# 1 ---------------------------------------------------------------------------------------------------
def test_1_nan_or_inf_tolerance_cannot_switch_the_gate_off(world, tmp_path, monkeypatch):
    from uta_bench.store import Metric, ResultsStore, RunInfo

    # a baseline at 99.9% top-1 (tight CI); the random-init candidate (16 images) is far below it
    ResultsStore().write_task(RunInfo("base90", "uta_tiny_base"), "tiny_photos",
                              [Metric("top1", 0.999, 100000, 0.9988, 0.9992)], task_version="1")
    monkeypatch.setenv("UTA_BENCH_TASKS", str(world["root"]))      # the card registered by name
    gate = ("check", "--model", "uta_tiny", "--checkpoint", world["ckpt"], "--tasks", "tiny_photos",
            "--against", "base90", "--data-root", world["data"])
    for how in ("nan", "inf", "-inf", "-1"):
        code, out, err = uta(*gate, "--tolerance", how)
        line = error_line(err)
        assert code == 2 and "--tolerance" in line and "finite" in line, (how, out, err)
        assert "PASS" not in out
    for value in (".nan", ".inf", "abc"):
        cfg = tmp_path / "ci.yaml"
        cfg.write_text(f"tolerance: {value}\n")
        code, out, err = uta(*gate, "--config", cfg)
        assert code == 2 and f"check config {cfg}: tolerance must be >= 0 and finite" in error_line(err)
    code, out, err = uta(*gate, "--tolerance", "0.5")     # the control: a real regression exits 1
    assert code == 1 and "REGRESSION" in out, out + err


# 2 ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("args, names", [
    (["resluts"], "No such command 'resluts'"),
    (["run", "zeroshott"], "No such command 'zeroshott'"),
    ([*RUN, "--no-progres"], "--no-progres"),
    ([*RUN, "--batch-size", "0"], "'--batch-size'"),
    ([*RUN, "--limit", "-5"], "'--limit'"),
    (["run", "zeroshot", "--tasks", "x"], "Missing option '--model'"),
    (["check", "--model", "uta_tiny", "--tolerance", "abc"], "'--tolerance'"),
])
def test_2_usage_errors_are_one_line_exit_2(args, names):
    code, out, err = uta(*args)
    line = error_line(err)
    assert code == 2 and names in line and "--help" in line
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("text, names", [("limit: -5", "limit must be an integer >= 1, not -5"),
                                         ("batch_size: zero", "batch_size must be an integer >= 1, not 'zero'"),
                                         ("precision: fp8", "precision must be one of fp32, bf16, fp16"),
                                         ("metrics: {a: 1}", "metrics must be a name or a list of names")])
def test_2_config_values_get_the_command_lines_checks(world, tmp_path, text, names):
    cfg = tmp_path / "ci.yaml"
    cfg.write_text(f"model: uta_tiny\n{text}\n")
    code, out, err = uta("check", "--config", cfg, "--checkpoint", world["ckpt"], "--tasks", world["card"])
    assert code == 2 and f"check config {cfg}: {names}" in error_line(err)


# 3 ---------------------------------------------------------------------------------------------------
def test_3_unwritable_reports_fail_fast_and_never_exit_1(world, tmp_path):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where a folder should be")
    code, out, err = uta("check", "--model", "uta_tiny", "--checkpoint", world["ckpt"], "--tasks", world["card"],
                         "--junit", blocker / "junit.xml", "--data-root", world["data"])
    assert code == 2 and "--junit" in error_line(err) and "cannot write" in error_line(err)
    assert rows(os.environ["UTA_BENCH_STORE"]) == 0          # failed before evaluating anything
    for args in (["results", "--export", blocker / "rows.csv"], ["table", "--paper", "--output", blocker / "t.md"]):
        code, out, err = uta(*args)
        assert code == 2 and "cannot write" in error_line(err) and str(blocker) in error_line(err)


# 4 ---------------------------------------------------------------------------------------------------
def test_4_store_write_failure_is_one_line_and_leaves_no_orphan_predictions(world, tmp_path):
    from uta_bench.store import ResultsStore

    store = tmp_path / "full.sqlite"
    ResultsStore(store).engine.dispose()
    with sqlite3.connect(store) as c:       # the next INSERT fails like a full disk would
        c.execute("CREATE TRIGGER full BEFORE INSERT ON results BEGIN "
                  "SELECT RAISE(ABORT, 'database or disk is full'); END")
    code, out, err = uta(*RUN, "--random-init", "--tasks", world["card"], "--data-root", world["data"],
                         "--store", store)
    line = error_line(err)
    assert code == 2 and "cannot write task tiny_photos to the results store" in line
    assert "database or disk is full" in line and "INSERT" not in err and "parameters" not in err
    assert rows(store) == 0
    preds = tmp_path / "predictions"
    assert not preds.exists() or not any(preds.iterdir())


# 5 ---------------------------------------------------------------------------------------------------
def test_5_unwritable_feature_cache_is_a_warning_not_lost_work(world, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "cache").write_text("a file where the cache folder should be")   # no cache can be written
    code, out, err = uta(*RUN, "--random-init", "--tasks", world["card"], "--data-root", world["data"],
                         env={"UTA_BENCH_HOME": str(home)})
    assert code == 0, err
    assert "feature cache" in err and "not writable" in err and "encoding without caching" in err
    assert rows(os.environ["UTA_BENCH_STORE"]) == 2        # top1 + mean_per_class_recall


# 6 ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("device", ["cuda", "cuda:7", "mps", "quantum"])
def test_6_device_checked_before_the_model_loads(world, device):
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    code, out, err = uta(*RUN, "--random-init", "--tasks", world["card"], "--device", device)
    assert code == 2 and "--device" in error_line(err)
    assert "cpu" in error_line(err)


# 7 ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("field, value, says", [
    ("templates", "[42, null]", "field 'templates' must be strings containing {c}"),
    ("templates", '["a {cls}"]', "field 'templates' entry 'a {cls}' must contain {c}"),
    ("metrics", "[accuracy]", "field 'metrics' has 'accuracy'"),
    ("metrics", "[top0]", "field 'metrics' has 'top0'"),
    ("metrics", "[top20]", "field 'metrics' has 'top20' but the task has 2 classes"),
])
def test_7_cards_are_validated_before_any_image_is_encoded(world, tmp_path, field, value, says):
    card = tmp_path / "card.yaml"
    card.write_text("\n".join(f"{field}: {value}" if ln.startswith(f"{field}:") else ln
                              for ln in CARD.splitlines()) + "\n")
    code, out, err = uta(*RUN, "--random-init", "--tasks", card, "--data-root", world["data"])
    assert code == 2 and f"task card {card}: {says}" in error_line(err)
    assert rows(os.environ["UTA_BENCH_STORE"]) == 0
    assert not (Path(os.environ["UTA_BENCH_HOME"]) / "cache" / "features").exists()


@pytest.fixture
def latin1_card(tmp_path):
    card = tmp_path / "latin1.yaml"
    card.write_bytes(CARD.replace("task: tiny_photos", "task: tiny_photos\ndescription: caf\xe9")
                     .encode("latin-1"))
    return card


def test_7_non_utf8_card(world, latin1_card):
    code, out, err = uta(*RUN, "--random-init", "--tasks", latin1_card)
    assert code == 2 and f"task card {latin1_card}: not UTF-8 text (byte 0xe9" in error_line(err)


# 8 ---------------------------------------------------------------------------------------------------
@pytest.fixture
def broken_folder(tmp_path):
    from uta_bench.data import synthetic as syn

    root = syn.make_imagefolder(tmp_path / "data" / "broken", ["a", "b"], per_class=2, size=40)
    (root / "a" / "zero.jpg").write_bytes(b"")
    (root / "a" / "junk.jpg").write_bytes(b"not a jpeg " * 20)
    good = (root / "b" / "b_0000.JPEG").read_bytes()
    (root / "b" / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (root / "b" / "loop").symlink_to("..")          # a symlink loop inside a class folder
    return root


def test_8_data_check_opens_every_image_and_follows_no_loop(broken_folder, tmp_path):
    card = tmp_path / "broken.yaml"
    card.write_text(CARD.replace("tiny_photos", "broken").replace("path: tiny", "path: broken"))
    code, out, err = uta("data", "check", card, "--data-root", broken_folder.parent)
    line = error_line(err)
    assert code == 2 and "3 unreadable image(s)" in line
    for name in ("zero.jpg (empty file)", "junk.jpg (not an image", "truncated.jpg"):
        assert name in line
    assert "│ 7 " in out or " 7 " in out                      # 4 good + 3 broken, the loop counted once


def test_8_skip_says_how_many_and_which_and_zero_usable_is_an_error(broken_folder, tmp_path):
    from uta_bench.data import synthetic as syn

    (broken_folder / "b" / "loop").unlink()
    hopeless = syn.make_imagefolder(tmp_path / "data" / "hopeless", ["x", "y"], per_class=1, size=40)
    for f in hopeless.rglob("*.JPEG"):
        f.write_bytes(b"")
    # one run, two tasks: the first skips 3 of 7 images, the second has none usable
    code, out, err = uta(*RUN, "--random-init", "--tasks", f"{broken_folder},{hopeless}", "--on-bad-image", "skip")
    assert code == 2 and "none of the 2 images could be read" in error_line(err) and "mat1" not in err
    assert "skipped 3 of 7 unreadable images" in err and "zero.jpg" in err and "truncated.jpg" in err
    assert rows(os.environ["UTA_BENCH_STORE"]) == 3        # top1, top5, mean_per_class_recall of the first task


# 9 ---------------------------------------------------------------------------------------------------
def test_9_store_password_never_printed(tmp_path):
    code, out, err = uta("results", "--store", "postgresql://alice:hunter2@127.0.0.1:9/results")
    assert code == 2 and "hunter2" not in out + err and "alice:***@127.0.0.1" in error_line(err)


def test_9_store_password_never_stored(tmp_path):
    from uta_bench.store import Metric, ResultsStore, RunInfo

    s = ResultsStore(tmp_path / "s.sqlite")
    s.write_task(RunInfo("r1", "m", config={"store": "postgresql://alice:hunter2@db.example/results",
                                           "nested": ["https://bob:pw@host/x"]}), "t", [Metric("top1", 0.5, 2)])
    cfg = s.df().config_json.iloc[0]
    assert "hunter2" not in cfg and ":pw@" not in cfg and "alice:***@db.example" in cfg


@pytest.mark.skipif(not os.environ.get("UTA_BENCH_TEST_PG_URL"), reason="needs UTA_BENCH_TEST_PG_URL")
def test_9_postgres_run_config_json_is_redacted(world):
    import sqlalchemy as sa
    from store_backends import drop_pg_database, fresh_pg_database

    url = sa.engine.make_url(fresh_pg_database()).set(password="hunter2").render_as_string(hide_password=False)
    try:
        code, out, err = uta(*RUN, "--random-init", "--tasks", world["card"], "--data-root", world["data"],
                             "--store", url)
        assert code == 0 and "hunter2" not in out + err
        from uta_bench.store import ResultsStore

        assert "hunter2" not in ResultsStore(url).df().config_json.iloc[0]
    finally:
        drop_pg_database(url)


# 10 + 14 --------------------------------------------------------------------------------------------
def test_10_safetensors_renamed_pt_loads_and_14_files_follow_umask(world, tmp_path):
    store = tmp_path / "store.sqlite"
    code, out, err = uta(*RUN, "--checkpoint", world["renamed"], "--tasks", world["card"], "--data-root",
                         world["data"], "--store", store, umask=0o022)
    assert code == 0, err
    assert "--trust-checkpoint" not in err
    from uta_bench.checkpoint import sha256_file
    from uta_bench.store import ResultsStore

    df = ResultsStore(store).df()
    assert len(df) == 2 and (df.weights_sha256 == sha256_file(world["ckpt"])).all()   # top1 + mean_per_class_recall
    export = tmp_path / "rows.csv"
    code, out, err = uta("results", "--store", store, "--export", export, umask=0o022)
    assert code == 0
    chunks = list((Path(os.environ["UTA_BENCH_HOME"]) / "cache" / "features").rglob("*.safetensors"))
    assert chunks
    for f in (export, *chunks):
        assert stat.S_IMODE(f.stat().st_mode) == 0o644, f


# 11 --------------------------------------------------------------------------------------------------
def test_11_ctrl_c_exits_130_with_a_resume_hint(world, tmp_path):
    from uta_bench.data import synthetic as syn

    root = syn.make_imagefolder(tmp_path / "data" / "slow", ["a", "b"], per_class=1, size=40)
    fifo = root / "b" / "z_never_ready.jpg"
    os.mkfifo(fifo)                      # reading it blocks until a writer appears: "a long run"
    env = cli_env(HF_HUB_OFFLINE="1")
    p = subprocess.Popen([sys.executable, "-m", "uta_bench", *RUN, "--random-init", "--tasks", root],
                         env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    writer, deadline = None, time.time() + 240
    try:
        while writer is None and time.time() < deadline and p.poll() is None:
            try:                         # succeeds once the run has the image open for reading
                writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                time.sleep(0.2)
        assert writer is not None, p.communicate()[1][-2000:]
        p.send_signal(signal.SIGINT)
        time.sleep(1.0)                  # the interrupt lands while the run is blocked on the image...
        os.close(writer)                 # ...then the blocked read ends, so no reader thread holds up exit
        writer = None
        out, err = p.communicate(timeout=120)
    finally:
        if writer is not None:
            os.close(writer)
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err and "re-run" in err
    assert rows(os.environ["UTA_BENCH_STORE"]) == 0


# 12 --------------------------------------------------------------------------------------------------
def test_12_check_runs_a_card_file_without_prior_rows(world):
    from uta_bench.store import Metric, ResultsStore, RunInfo

    # a baseline run of another model on this card (written directly: the candidate has no rows of it)
    ResultsStore().write_task(RunInfo("base-run", "uta_tiny_base"), "tiny_photos", [Metric("top1", 0.5, 4)],
                              task_version="1")
    code, out, err = uta("check", "--model", "uta_tiny", "--checkpoint", world["ckpt"], "--tasks", world["card"],
                         "--limit", "3", "--against", "base-run", "--data-root", world["data"])
    assert "unknown task" not in err
    assert code in (0, 1), err
    assert "tiny_photos" in out and ("PASS" in out or "FAIL" in out)
    assert rows(os.environ["UTA_BENCH_STORE"]) == 3        # baseline top1 + candidate top1, mean_per_class_recall


# 13 --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("args, says", [
    ([*RUN, "--random-init", "--tasks", ","], "--tasks names no task"),
    ([*RUN, "--random-init", "--checkpoint", "{ckpt}", "--tasks", "{card}"],
     "--checkpoint and --random-init exclude each other"),
    (["check", "--model", "uta_tiny", "--random-init", "--checkpoint", "{ckpt}", "--tasks", "{card}"],
     "--checkpoint and --random-init exclude each other"),
    (["results", "--limit", "-5"], "'--limit'"),
])
def test_13_silent_nonsense_is_a_usage_error(world, args, says):
    args = [str(a).format(ckpt=world["ckpt"], card=world["card"]) for a in args]
    code, out, err = uta(*args, "--data-root", world["data"]) if args[0] == "run" else uta(*args)
    assert code == 2 and says in error_line(err)
    assert "written" not in out and rows(os.environ["UTA_BENCH_STORE"]) == 0


def test_exit_codes_are_documented_in_help():
    code, out, err = uta("--help")
    assert code == 0 and "130 interrupted" in " ".join(out.split()) and "1 regression" in " ".join(out.split())
