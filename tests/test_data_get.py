"""`uta-bench data get` against a Hugging Face hub served on 127.0.0.1 (tests/hub_server.py): fetch, pinned
revision, resume after a dropped connection, corrupt bytes rejected, offline / --dry-run plans, and the run on
the fetched files equal to the run on the same files copied from disk."""
from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
import torch

from hub_server import FakeHub
from zs_helpers import cfg, rows, tiny, write_card
from uta_bench.data import synthetic as syn
from cli_env import cli_env

REPO = "clip-benchmark/wds_tinynet"
LABELS = [0, 1, 2, 0, 1, 2, 2, 1, 0, 1]
CLASSES = ["red fox", "tabby cat", "golden retriever"]
TEMPLATES = ["a photo of a {c}.", "a sketch of the {c}."]


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """The loopback hub serving a tiny clip_benchmark-style repo (test split in 3 shards, class names,
    templates, plus a train split and a README that `data get` must not fetch); huggingface_hub pointed at it."""
    import huggingface_hub.constants as hf_constants

    src = syn.make_wds_classification(tmp_path / "src", LABELS, CLASSES, TEMPLATES, seed=3, maxcount=4)
    repo_dir = tmp_path / "repo"
    shutil.copytree(src, repo_dir)
    syn.make_wds_classification(tmp_path / "train", [0, 1], CLASSES, seed=9, maxcount=4)
    shutil.copytree(tmp_path / "train" / "test", repo_dir / "train")
    (repo_dir / "README.md").write_text("# tiny wds\n")
    with FakeHub() as h:
        h.src = src
        h.sha = h.add_folder(REPO, repo_dir)
        monkeypatch.setenv("HF_ENDPOINT", h.url)
        monkeypatch.setenv("HF_HUB_OFFLINE", "0")
        monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)    # conftest imported it offline
        monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
        monkeypatch.setattr(hf_constants, "HF_HUB_DISABLE_XET", True)
        monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
        monkeypatch.setenv("UTA_BENCH_TASKS", str(tmp_path / "cards"))
        monkeypatch.setenv("COLUMNS", "200")
        (tmp_path / "cards").mkdir()
        h.card = write_card(tmp_path / "cards", "tinynet", type="classification", classes="dataset",
                            templates="dataset", expected_samples=len(LABELS),
                            dataset={"path": "tinynet", "formats": ["wds"], "hub": REPO})
        yield h


def get(*args) -> int:
    from uta_bench.cli.main import main

    with pytest.raises(SystemExit) as e:
        main(["data", "get", *args, "--no-progress"])
    return e.value.code


def files_under(d) -> dict:
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*"))
            if p.is_file() and ".cache" not in p.parts and p.name != "hub_lock.json"}


def resolved(hub, method="GET") -> list[tuple[str, str | None]]:
    """(file, Range) of every download request the hub saw."""
    return [(p.split("/resolve/")[1].split("/", 1)[1], r) for m, p, r in hub.requests
            if m == method and "/resolve/" in p]


def test_get_fetches_the_split_pinned_and_the_run_equals_the_run_from_disk(hub, tmp_path, capsys, one_thread):
    from uta_bench.data.manifest import manifest_path
    from uta_bench.zeroshot.run import evaluate_loaded

    assert get("tinynet", "--data-root", str(tmp_path / "data")) == 0
    out = capsys.readouterr().out
    assert f"{REPO} @ main = {hub.sha}" in out and "all 1 tasks ready" in out
    got = tmp_path / "data" / "tinynet"
    assert files_under(got) == files_under(hub.src)          # test split + names + templates; no train, no README
    assert sorted(f for f, _ in resolved(hub)) == sorted(files_under(hub.src))
    lock = json.loads((got / "hub_lock.json").read_text())
    assert lock["revision"] == hub.sha and lock["requested"] == "main" and lock["complete"]
    source = json.loads(manifest_path("tinynet").read_text())["source"]      # data check's manifest names it
    assert source == {"hub": REPO, "revision": hub.sha, "requested": "main", "complete": True,
                      "files_unchanged": True}

    shutil.copytree(hub.src, tmp_path / "copy" / "tinynet")                # the same files, from disk
    loaded = tiny(0)
    r_hub = rows(evaluate_loaded(loaded, [str(hub.card)], cfg(tmp_path, [hub.card])))
    from_disk = dataclasses.replace(cfg(tmp_path, [hub.card]), data_root=str(tmp_path / "copy"))
    r_disk = rows(evaluate_loaded(loaded, [str(hub.card)], from_disk))
    assert set(r_hub) == set(r_disk) == {("tinynet", "top1"), ("tinynet", "top5"),
                                          ("tinynet", "mean_per_class_recall")}
    for key in r_hub:
        assert (r_hub[key].value, r_hub[key].n) == (r_disk[key].value, r_disk[key].n)
    assert r_hub[("tinynet", "top1")].n == len(LABELS)
    assert json.loads(r_hub[("tinynet", "top1")].extra_json)["data_source"]["revision"] == hub.sha
    assert "data_source" not in json.loads(r_disk[("tinynet", "top1")].extra_json)
    assert torch.get_num_threads() == 1


def test_second_get_reuses_the_pinned_commit_until_revision_is_given(hub, tmp_path):
    root = str(tmp_path / "data")
    assert get("tinynet", "--data-root", root) == 0
    new_names = b"red fox\ntabby cat\nretriever\n"
    files = {**files_under(tmp_path / "repo"), "classnames.txt": new_names}
    sha2 = hub.add_commit(REPO, files)                                       # main moves on
    hub.requests.clear()
    assert get("tinynet", "--data-root", root) == 0
    revs = [p for _, p, _ in hub.requests if p.startswith(f"/api/datasets/{REPO}/")]
    assert revs and all(f"/{hub.sha}" in p for p in revs)                   # the pinned commit, never "main"
    assert not any("/main" in p for _, p, _ in hub.requests)
    assert resolved(hub) == [] and resolved(hub, "HEAD") == []              # verified files are not fetched again
    assert (tmp_path / "data" / "tinynet" / "classnames.txt").read_bytes() != new_names

    hub.requests.clear()
    assert get("tinynet", "--data-root", root, "--revision", "main") == 0
    assert any(p == f"/api/datasets/{REPO}/revision/main" for _, p, _ in hub.requests)
    assert [f for f, _ in resolved(hub)] == ["classnames.txt"]              # only the changed file
    assert (tmp_path / "data" / "tinynet" / "classnames.txt").read_bytes() == new_names
    assert json.loads((tmp_path / "data" / "tinynet" / "hub_lock.json").read_text())["revision"] == sha2


def test_dropped_connection_resumes_with_a_range_request(hub, tmp_path, monkeypatch):
    import huggingface_hub.constants as hf_constants

    # huggingface_hub hands bytes over in 10 MB chunks (a shard is 100s of MB); 4 kB here, so that the
    # half of a 30 kB shard sent before the drop holds whole chunks to resume after
    monkeypatch.setattr(hf_constants, "DOWNLOAD_CHUNK_SIZE", 4096)
    hub.drop_once.add("test/1.tar")
    assert get("tinynet", "--data-root", str(tmp_path / "data")) == 0
    tries = [r for f, r in resolved(hub) if f == "test/1.tar"]
    size = (hub.src / "test" / "1.tar").stat().st_size
    assert len(tries) == 2 and tries[0] is None                             # one drop, one resumed request
    start = int(tries[1].removeprefix("bytes=").removesuffix("-"))
    assert 0 < start <= size // 2 and start % 4096 == 0                    # from what had arrived, not from 0
    assert files_under(tmp_path / "data" / "tinynet") == files_under(hub.src)


def test_interrupted_get_resumes_without_fetching_verified_files_again(hub, tmp_path):
    """Ctrl-C while a shard downloads: exit 130, no partial file, the commit pinned; the next get fetches
    only what was not verified."""
    import signal
    import subprocess
    import sys
    import threading
    import time

    release = threading.Event()
    hub.stall["test/1.tar"] = release
    root = tmp_path / "data"
    env = cli_env()
    proc = subprocess.Popen([sys.executable, "-m", "uta_bench", "data", "get", "tinynet", "--data-root", str(root),
                             "--no-progress"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while len({f for f, _ in resolved(hub)}) < 6 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        time.sleep(1.0)                                     # the other five are verified by now
        proc.send_signal(signal.SIGINT)
        time.sleep(0.5)
        release.set()                                       # the stalled shard's bytes flow again
        out, err = proc.communicate(timeout=120)
    finally:
        release.set()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130 and "interrupted" in err, err
    got = root / "tinynet"
    assert not (got / "test" / "1.tar").exists() and not [p for p in got.rglob("*.incomplete")]
    lock = json.loads((got / "hub_lock.json").read_text())
    kept = {e["path"] for e in lock["files"]}
    assert lock["revision"] == hub.sha and not lock["complete"] and "test/1.tar" not in kept and kept

    hub.requests.clear()
    assert get("tinynet", "--data-root", str(root)) == 0
    assert [f for f, _ in resolved(hub)] == ["test/1.tar"]                 # nothing verified is fetched again
    assert not any("/main" in p for _, p, _ in hub.requests)                # the commit pinned before the ^C
    assert files_under(got) == files_under(hub.src)


def test_corrupt_download_is_rejected_and_nothing_is_left(hub, tmp_path, capsys):
    from uta_bench.data.manifest import manifest_path

    hub.corrupt.add("test/0.tar")
    assert get("tinynet", "--data-root", str(tmp_path / "data")) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "test/0.tar: sha256" in err, err
    got = tmp_path / "data" / "tinynet"
    assert not (got / "test" / "0.tar").exists()
    assert not [p for p in got.rglob("*") if p.name.endswith((".incomplete", "0.tar.metadata"))]
    assert not manifest_path("tinynet").exists()
    lock = json.loads((got / "hub_lock.json").read_text())
    assert not lock["complete"] and "test/0.tar" not in {e["path"] for e in lock["files"]}

    kept = {e["path"] for e in lock["files"]}         # verified before the error stopped the others
    hub.corrupt.clear()
    hub.requests.clear()
    assert get("tinynet", "--data-root", str(tmp_path / "data")) == 0   # kept files are not fetched again
    again = sorted(f for f, _ in resolved(hub))
    assert "test/0.tar" in again and again == sorted(set(files_under(hub.src)) - kept)
    assert files_under(got) == files_under(hub.src)


def test_dry_run_and_offline_print_the_plan(hub, tmp_path, capsys, monkeypatch):
    import huggingface_hub.constants as hf_constants

    root = tmp_path / "data"
    assert get("tinynet", "--data-root", str(root), "--dry-run") == 0
    out = capsys.readouterr().out
    assert f"{REPO} @ main = {hub.sha}" in out and "dry run: nothing fetched" in out
    for name, data in files_under(hub.src).items():
        assert name in out
    assert f"{(hub.src / 'test' / '0.tar').stat().st_size / 1000:.1f} kB" in out and not root.exists()
    assert resolved(hub) == [] and resolved(hub, "HEAD") == []

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    hub.requests.clear()
    assert get("tinynet", "--data-root", str(root)) == 2
    cap = capsys.readouterr()
    assert cap.err.startswith("error: offline (HF_HUB_OFFLINE is set): nothing fetched") and "test/*" in cap.out
    assert get("zeroshot", "--data-root", str(root), "--dry-run") == 0     # every suite card names its repo
    out = capsys.readouterr().out
    for repo in ("wds_imagenet1k", "wds_imagenet-a", "wds_imagenet-r", "wds_imagenetv2", "wds_imagenet_sketch",
                 "wds_objectnet", "wds_flickr30k", "wds_mscoco_captions"):
        assert f"clip-benchmark/{repo} @ main (not resolved)" in out
    assert hub.requests == [] and not root.exists()

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    assert get("tinynet", "--data-root", str(root)) == 0
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    capsys.readouterr()
    assert get("tinynet", "--data-root", str(root), "--dry-run") == 0      # offline, the lock knows the files
    out = capsys.readouterr().out
    assert f"{REPO} @ main = {hub.sha} (pinned in hub_lock.json)" in out and out.count("here, verified") == 6


def test_unreachable_endpoint_unknown_repo_and_cards_without_a_repo(hub, tmp_path, capsys, monkeypatch):
    import socket

    with socket.socket() as s:                  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    assert get("tinynet", "--data-root", str(tmp_path / "data")) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: offline (http://127.0.0.1:{port} unreachable")
    assert get("tinynet", "--data-root", str(tmp_path / "data"), "--dry-run") == 0

    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    write_card(tmp_path / "cards", "nosuch", type="classification", classes="dataset",
               dataset={"path": "nosuch", "formats": ["wds"], "hub": "clip-benchmark/wds_nosuch"})
    capsys.readouterr()
    assert get("nosuch", "--data-root", str(tmp_path / "data")) == 2
    assert "dataset repo clip-benchmark/wds_nosuch not found" in capsys.readouterr().err
    assert get("tinynet", "--data-root", str(tmp_path / "data"), "--revision", "v9") == 2
    assert "revision 'v9' not found in dataset repo" in capsys.readouterr().err
    assert get("sample_photos", "--data-root", str(tmp_path / "data")) == 2
    assert "task sample_photos has no hub repo (dataset.hub" in capsys.readouterr().err
