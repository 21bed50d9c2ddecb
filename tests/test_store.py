"""Results store: one transaction per task, provenance, exports, and concurrent writers (sqlite)."""
from __future__ import annotations

import multiprocessing as mp
import sqlite3

import pandas as pd
import pytest

from uta_bench.errors import UtaBenchError
from uta_bench.provenance import new_run_id, versions
from uta_bench.store import Metric, ResultsStore, RunInfo


def _run(model="m"):
    return RunInfo(run_id=new_run_id(), model=model, weights_sha256="ab" * 32, device="cpu", precision="fp32",
                   seed=0, started_at="2026-01-01T00:00:00+00:00", config={"x": 1}, versions=versions())


def test_rows_and_provenance(tmp_path):
    s = ResultsStore(tmp_path / "r.sqlite")
    run = _run()
    n = s.write_task(run, "imagenet1k", [Metric("top1", 0.5, 10, 0.2, 0.8), Metric("top5", 0.9, 10, 0.6, 0.98)],
                     task_version="1", dataset_manifest="f" * 64)
    assert n == 2
    df = s.df(run_id=run.run_id)
    assert list(df.metric) == ["top1", "top5"] and list(df.value) == [0.5, 0.9]
    row = df.iloc[0]
    assert row.weights_sha256 == "ab" * 32 and row.dataset_manifest == "f" * 64 and row.task_version == "1"
    assert row.harness_version and row.torch_version and row.open_clip_version and row.ended_at
    assert row.config_json == '{"x": 1}'


def test_failed_task_writes_nothing(tmp_path):
    s = ResultsStore(tmp_path / "r.sqlite")
    run = _run()
    with pytest.raises(UtaBenchError):
        s.write_task(run, "t", [Metric("top1", 0.5), Metric("top5", float("nan"))])
    assert s.df().empty


def test_transaction_is_all_or_nothing(tmp_path, monkeypatch):
    """A failure inside the INSERT (after some rows went in) rolls back the whole task."""
    s = ResultsStore(tmp_path / "r.sqlite")
    s.write_task(_run(), "kept", [Metric("top1", 0.1)])
    metrics = [Metric(f"m{i}", i / 10) for i in range(5)]
    rows_seen = []
    import sqlalchemy as sa

    real_execute = sa.engine.Connection.execute

    def flaky(self, stmt, params=None, *a, **k):
        if params and isinstance(params, list) and len(params) == 5:
            real_execute(self, stmt, params[:2], *a, **k)   # part of the task reaches the DB...
            rows_seen.append(2)
            raise sqlite3.OperationalError("disk I/O error")  # ...then the process fails
        return real_execute(self, stmt, params, *a, **k)

    with monkeypatch.context() as m:
        m.setattr(sa.engine.Connection, "execute", flaky)
        with pytest.raises(Exception):
            s.write_task(_run(), "partial", metrics)
    assert rows_seen == [2]
    assert set(ResultsStore(tmp_path / "r.sqlite").df().task) == {"kept"}


def test_export_roundtrip(tmp_path):
    s = ResultsStore(tmp_path / "r.sqlite")
    s.write_task(_run(), "t", [Metric("top1", 0.25, 4, 0.05, 0.7)])
    for fmt in ("csv", "json", "parquet"):
        p = s.export(tmp_path / f"out.{fmt}")
        df = {"csv": pd.read_csv, "json": pd.read_json, "parquet": pd.read_parquet}[fmt](p)
        assert df.value.tolist() == [0.25] and df.task.tolist() == ["t"]
    with pytest.raises(UtaBenchError, match="unknown export format"):
        s.export(tmp_path / "out.xlsx")


def _writer(path, worker, tasks, rows):
    s = ResultsStore(path)
    for t in range(tasks):
        run = RunInfo(run_id=f"w{worker}", model=f"model{worker}")
        s.write_task(run, f"task{t}", [Metric(f"m{i}", i / rows, rows) for i in range(rows)])


def test_two_processes_write_concurrently(tmp_path):
    path = str(tmp_path / "c.sqlite")
    ResultsStore(path)
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, w, 40, 10)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    df = ResultsStore(path).df()
    assert len(df) == 2 * 40 * 10
    assert df.groupby(["run_id", "task"]).size().eq(10).all()
