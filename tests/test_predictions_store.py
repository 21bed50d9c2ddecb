"""Per-sample predictions live in the results store (schema 3): a run written on "machine A" is compared
from "machine B" (another $UTA_BENCH_HOME, the same store, none of A's files); rows and predictions are one
transaction; predictions files of a schema-2 store are still read and `store upgrade` moves them in."""
from __future__ import annotations

import hashlib
import io
import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from store_backends import store_url_any  # noqa: F401  (fixture)

from uta_bench.errors import UtaBenchError

V2 = Path(__file__).parent / "data" / "store_schema2"
V2_RUN = "20261202T230320-5658e14b"


def cli(capsys, *args) -> tuple[int, str]:
    from uta_bench.cli.main import main

    with pytest.raises(SystemExit) as e:
        main([str(a) for a in args])
    out = capsys.readouterr()
    return e.value.code, out.out + out.err


def test_compare_from_another_machine(store_url_any, tmp_path, monkeypatch, capsys, official_ckpt,  # noqa: F811
                                      one_thread):
    from uta_bench.store import ResultsStore

    ckpt, _ = official_ckpt("uta_tiny_p16", fmt="safetensors")
    store = store_url_any
    run = ("run", "zeroshot", "--model", "uta_tiny", "--tasks", "sample_photos", "--store", store,
           "--batch-size", "8")
    home_a = tmp_path / "machine_a"
    home_a.mkdir()
    monkeypatch.setenv("UTA_BENCH_HOME", str(home_a))
    for extra in (("--random-init",), ("--checkpoint", ckpt)):
        code, out = cli(capsys, *run, *extra)
        assert code in (0, None), out
    rows = ResultsStore(store).df(metric="top1")
    run_a, run_b = rows.run_id.tolist()
    assert not list(tmp_path.rglob("*.npz"))                   # nothing kept on machine A's disk
    if "://" not in store:                                     # sqlite: machine B has the database file only
        other = tmp_path / "machine_b_share" / "results.sqlite"
        other.parent.mkdir()
        with sqlite3.connect(store) as a, sqlite3.connect(other) as b:
            a.backup(b)                                        # the WAL's pages included
        store = str(other)
    home_b = tmp_path / "machine_b"
    home_b.mkdir()
    monkeypatch.setenv("UTA_BENCH_HOME", str(home_b))
    code, out = cli(capsys, "compare", run_a, run_b, "--store", store, "--json", tmp_path / "cmp.json",
                    "--bootstrap", "200")
    assert code == 0, out
    got = {r["key"]: r for r in json.loads((tmp_path / "cmp.json").read_text())["results"]}
    top1 = dict(zip(rows.run_id, rows.value))
    assert got["correct1"]["n"] == 24
    assert got["correct1"]["value_a"] == pytest.approx(top1[run_a]) and got["correct1"]["value_b"] == \
        pytest.approx(top1[run_b])


def test_rows_and_predictions_are_one_transaction(tmp_path):
    from uta_bench.predictions import load_predictions, prediction_blob
    from uta_bench.store import Metric, ResultsStore, RunInfo

    db = tmp_path / "s.sqlite"
    s = ResultsStore(db)
    with sqlite3.connect(db) as c:          # the predictions INSERT fails like a full disk would
        c.execute("CREATE TRIGGER full BEFORE INSERT ON predictions BEGIN "
                  "SELECT RAISE(ABORT, 'database or disk is full'); END")
    preds = {"correct1": np.array([1, 0, 1], dtype=np.int8), "target": np.arange(3)}
    with pytest.raises(UtaBenchError, match="disk is full.*nothing of this task was written"):
        s.write_task(RunInfo("r1", "m"), "t", [Metric("top1", 2 / 3, 3)], predictions=preds)
    assert s.df().empty and prediction_blob(s, "r1", "t") is None
    with sqlite3.connect(db) as c:
        c.execute("DROP TRIGGER full")
    s.write_task(RunInfo("r1", "m"), "t", [Metric("top1", 2 / 3, 3)], predictions=preds)
    assert len(s.df()) == 1
    got = load_predictions(s, "r1", "t")
    assert got.keys() == preds.keys() and all(np.array_equal(got[k], preds[k]) for k in preds)
    with sqlite3.connect(db) as c:          # a flipped byte is caught by the stored sha256
        (blob,) = c.execute("SELECT blob FROM predictions").fetchone()
        c.execute("UPDATE predictions SET blob = ?", (bytes([blob[0] ^ 1]) + blob[1:],))
    with pytest.raises(UtaBenchError, match="do not match their sha256"):
        load_predictions(s, "r1", "t")


def test_schema2_predictions_files_read_then_imported(tmp_path, capsys):
    from uta_bench.predictions import load_predictions
    from uta_bench.store import ResultsStore

    shutil.copytree(V2, tmp_path / "old")
    db = tmp_path / "old" / "results.sqlite"
    npz = tmp_path / "old" / "predictions" / V2_RUN / "sample_photos.npz"
    with np.load(npz) as z:
        want = {k: z[k] for k in z.files}
    assert set(want) >= {"correct1", "target", "top5"}
    s = ResultsStore(db)                                     # opening upgrades the schema, files still read
    got = load_predictions(s, V2_RUN, "sample_photos")
    assert all(np.array_equal(got[k], want[k]) for k in want)
    top1 = s.df(metric="top1").value.iloc[0]
    assert got["correct1"].mean() == pytest.approx(top1)
    outs = [cli(capsys, "store", "upgrade", "--store", db) for _ in range(2)]
    assert [c for c, _ in outs] == [0, 0], outs
    assert "1 predictions files" in outs[0][1] and "imported" not in outs[1][1]     # the 2nd adds nothing
    with sqlite3.connect(db) as c:
        (row,) = c.execute("SELECT run_id, task, format, sha256, blob FROM predictions").fetchall()
    assert row[:4] == (V2_RUN, "sample_photos", "npz", hashlib.sha256(npz.read_bytes()).hexdigest())
    with np.load(io.BytesIO(row[4])) as z:
        assert np.array_equal(z["correct1"], want["correct1"])
    shutil.rmtree(tmp_path / "old" / "predictions")          # the files are no longer needed
    assert np.array_equal(load_predictions(ResultsStore(db), V2_RUN, "sample_photos")["top5"], want["top5"])
