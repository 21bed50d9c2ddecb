"""Schema version and upgrade: a store file written by the previous uta-bench (schema 1, no run key;
tests/data/store_schema1.sqlite, made by `uta-bench run zeroshot` of that version) is upgraded in place
with every row kept, and copied into another store (PostgreSQL when UTA_BENCH_TEST_PG_URL is set)."""
from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from store_backends import store_url_any  # noqa: F401  (fixture)

from uta_bench.errors import UtaBenchError

FIXTURE = Path(__file__).parent / "data" / "store_schema1.sqlite"
OLD_COLUMNS = ["id", "run_id", "source", "task", "metric", "value", "n", "ci_low", "ci_high", "model",
               "weights_sha256", "task_version", "dataset_manifest", "harness_version", "git_commit",
               "torch_version", "open_clip_version", "device", "precision", "seed", "started_at", "ended_at",
               "paper_table", "paper_row", "config_json", "extra_json"]


def _raw(path) -> list[tuple]:
    con = sqlite3.connect(path)
    try:
        return con.execute(f"SELECT {', '.join(OLD_COLUMNS)} FROM results ORDER BY id").fetchall()
    finally:
        con.close()


def _hand_key(r: dict) -> str:
    """The run key digest worked out by hand from a row's provenance (independent of store_schema)."""
    cfg = json.loads(r["config_json"])
    init = "checkpoint" if cfg.get("checkpoint") else {True: "pretrained", False: "random"}.get(cfg.get("pretrained"))
    key = {"model": r["model"], "task": r["task"], "weights_sha256": r["weights_sha256"],
           "precision": r["precision"], "device_type": r["device"].split(":")[0], "sample_limit": cfg.get("limit"),
           "init": init, "seed": r["seed"], "task_version": r["task_version"],
           "dataset_manifest": r["dataset_manifest"], "code_version": r["git_commit"] or (f"v{r['harness_version']}" if r["harness_version"] else None)}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def test_upgrade_keeps_every_row_and_backfills_the_run_key(tmp_path):
    from uta_bench.store import SCHEMA_VERSION, ResultsStore

    db = tmp_path / "old.sqlite"
    shutil.copy(FIXTURE, db)
    before = _raw(db)
    assert len(before) == 5
    s = ResultsStore(db)
    assert _raw(db) == before                               # no row lost or changed
    df = s.df().set_index("id")
    assert (df.loc[[1, 2], "init"] == "random").all() and (df.loc[[1, 2], "sample_limit"] == 16).all()
    assert df.loc[3, "precision"] == "bf16-autocast" and df.loc[3, "sample_limit"] != df.loc[3, "sample_limit"]
    assert df.loc[5, "device_type"] == "cuda" and df.loc[5, "init"] != df.loc[5, "init"]     # unknown: NULL
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    for r in con.execute("SELECT * FROM results ORDER BY id"):
        assert r["run_key"] == _hand_key(dict(r)), r["id"]
    con.close()
    assert df.loc[1, "run_key"] == df.loc[2, "run_key"] != df.loc[3, "run_key"]     # fp32 vs bf16 run
    con = sqlite3.connect(db)
    assert con.execute("SELECT version FROM uta_bench_schema WHERE name='results'").fetchone() == (SCHEMA_VERSION,)
    con.close()
    again = ResultsStore(db).df()                           # reopening changes nothing
    assert again.run_key.tolist() == s.df().run_key.tolist()


def test_latest_with_key_finds_upgraded_rows(tmp_path):
    from uta_bench.store import ResultsStore, RunKey

    db = tmp_path / "old.sqlite"
    shutil.copy(FIXTURE, db)
    s = ResultsStore(db)
    r = s.df().iloc[2].to_dict()
    key = RunKey(model=r["model"], task=r["task"], weights_sha256=None, precision="bf16-autocast",
                 device_type="cpu", sample_limit=None, init="random", seed=0, task_version=r["task_version"],
                 dataset_manifest=r["dataset_manifest"], code_version=r["git_commit"] or f"v{r['harness_version']}")
    got = s.latest(key=key)
    assert sorted(got.metric) == ["top1", "top5"] and set(got.run_id) == {r["run_id"]}
    assert s.latest(key=RunKey(**{**key.__dict__, "precision": "fp32"})).empty


def test_newer_schema_is_refused(tmp_path):
    from uta_bench.store import ResultsStore

    db = tmp_path / "s.sqlite"
    ResultsStore(db)
    con = sqlite3.connect(db)
    con.execute("UPDATE uta_bench_schema SET version = 99")
    con.commit()
    con.close()
    with pytest.raises(UtaBenchError, match="schema version 99, newer than this uta-bench"):
        ResultsStore(db)


def test_copy_old_sqlite_file_into_a_store(store_url_any, tmp_path, capsys):  # noqa: F811
    from uta_bench.cli.main import main
    from uta_bench.predictions import prediction_blob
    from uta_bench.store import ResultsStore

    src = tmp_path / "old" / "results.sqlite"
    src.parent.mkdir()
    shutil.copy(FIXTURE, src)
    before = _raw(src)
    (src.parent / "predictions" / "det_run").mkdir(parents=True)
    (src.parent / "predictions" / "det_run" / "coco.npz").write_bytes(b"npz bytes")
    for _ in range(2):                                      # a second copy adds nothing
        with pytest.raises(SystemExit) as e:
            main(["store", "copy", str(src), store_url_any])
        assert e.value.code == 0
    out = capsys.readouterr().out
    assert "copied 5 rows" in out and "copied 0 rows" in out and "(5 already there)" in out
    dst = ResultsStore(store_url_any)
    df = dst.df()
    assert len(df) == 5
    got = [tuple(r[c] for c in OLD_COLUMNS[1:]) for r in df.to_dict("records")]
    want = [row[1:] for row in before]
    norm = lambda rows: sorted(tuple(None if v != v else v for v in row) for row in rows)  # noqa: E731
    assert norm(got) == norm(want)
    assert df.run_key.notna().all()
    assert prediction_blob(dst, "det_run", "coco") == b"npz bytes"      # now inside the destination store
