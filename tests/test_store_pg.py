"""The results store on both back-ends (sqlite; PostgreSQL when UTA_BENCH_TEST_PG_URL is set):
same schema, same rows, same atomicity, and the commands reading it through --store URL."""
from __future__ import annotations

import pytest
from store_backends import PG_URL, store_url_any  # noqa: F401  (fixture)

from uta_bench.store import COLUMNS, Metric, ResultsStore, RunInfo


def _run(run_id="r1", model="uta_b16"):
    return RunInfo(run_id=run_id, model=model, weights_sha256="cd" * 32, device="cpu", precision="fp32", seed=3,
                   started_at="2026-01-01T00:00:00+00:00", config={"limit": None})


def test_same_schema_and_rows(store_url_any):
    s = ResultsStore(store_url_any)
    n = s.write_task(_run(), "imagenet1k", [Metric("top1", 0.765, 50000, 0.761, 0.769), Metric("top5", 0.93)],
                     task_version="1", paper={"table": "1", "row": "UTA B/16@224 2B"})
    assert n == 2
    df = s.df()
    assert [c for c in df.columns if c != "id"] == COLUMNS
    r = df.iloc[0]
    assert (r.run_id, r.task, r.metric, r.value, r.n, r.ci_low, r.seed) == ("r1", "imagenet1k", "top1", 0.765,
                                                                             50000, 0.761, 3)
    assert r.paper_table == "1" and r.paper_row == "UTA B/16@224 2B" and r.source == "measured"
    s.write_task(_run("r2"), "imagenet1k", [Metric("top1", 0.77)])
    latest = s.latest(model="uta_b16")
    assert dict(zip(latest.metric, latest.run_id)) == {"top1": "r2", "top5": "r1"}


def test_failed_transaction_leaves_no_partial_rows(store_url_any):
    """A row the database itself rejects (NOT NULL metric) after two good rows: the task rolls back."""
    s = ResultsStore(store_url_any)
    s.write_task(_run("kept"), "t0", [Metric("top1", 0.5)])
    bad = [Metric("top1", 0.1), Metric("top5", 0.2), Metric(None, 0.3), Metric("x", 0.4)]
    from uta_bench.errors import UtaBenchError

    with pytest.raises(UtaBenchError, match="nothing of this task was written") as e:
        s.write_task(_run("partial"), "t1", bad)
    assert "INSERT" not in str(e.value)
    df = ResultsStore(store_url_any).df()        # a new connection sees only committed rows
    assert list(df.run_id) == ["kept"] and list(df.task) == ["t0"]
    s.write_task(_run("after"), "t2", [Metric("top1", 0.6)])   # the store is still usable
    assert len(ResultsStore(store_url_any).df()) == 2


def test_env_var_and_cli_read_the_same_store(store_url_any, monkeypatch, tmp_path, capsys):
    from uta_bench.cli.main import main

    monkeypatch.setenv("UTA_BENCH_STORE", store_url_any)
    ResultsStore().write_task(_run(), "imagenet1k", [Metric("top1", 0.765, 50000, 0.761, 0.769)])
    out = tmp_path / "t.csv"
    with pytest.raises(SystemExit) as e:
        main(["table", "--paper", "--with-runs", "-t", "1", "-f", "csv", "-o", str(out)])
    assert e.value.code == 0
    lines = out.read_text().splitlines()
    ours = next(ln for ln in lines if ",ours," in ln)
    assert "76.5 [76.1, 76.9]" in ours and "uta_b16" in ours


@pytest.mark.postgres
@pytest.mark.skipif(not PG_URL, reason="set UTA_BENCH_TEST_PG_URL (scripts/pg_test_server.sh start)")
def test_plain_postgresql_url_uses_installed_driver():
    from store_backends import drop_pg_database, fresh_pg_database

    from uta_bench.store import store_url

    url = fresh_pg_database()
    try:
        plain = "postgresql://" + url.split("://", 1)[1]
        s = ResultsStore(plain)
        assert s.engine.dialect.name == "postgresql"
        s.write_task(_run(), "t", [Metric("top1", 0.25)])
        assert ResultsStore(url).df().value.tolist() == [0.25]
        s.engine.dispose()
    finally:
        drop_pg_database(url)
    assert store_url("postgres://u@h/db").startswith("postgresql")


def test_unreachable_server_is_a_clear_error():
    from uta_bench.errors import UtaBenchError

    with pytest.raises(UtaBenchError, match="cannot open results store"):
        ResultsStore("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")


def test_pg_test_server_script_starts_and_stops(tmp_path):
    """scripts/pg_test_server.sh: a real throwaway server on loopback; its URL works; stop removes it."""
    import os
    import shutil
    import subprocess
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "scripts" / "pg_test_server.sh"
    if not (shutil.which("initdb") or list(Path("/usr/lib/postgresql").glob("*/bin/initdb"))):
        pytest.skip("PostgreSQL server binaries (Debian postgresql) not installed")
    out = subprocess.run(["bash", str(script), "start"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    env = dict(line.removeprefix("export ").split("=", 1) for line in out.stdout.splitlines())
    url, data_dir = env["UTA_BENCH_TEST_PG_URL"].strip("'"), env["UTA_BENCH_PG_DIR"].strip("'")
    try:
        assert "@127.0.0.1:" in url
        s = ResultsStore(url)
        s.write_task(_run(), "t", [Metric("top1", 0.5)])
        assert ResultsStore(url).df().value.tolist() == [0.5]
        s.engine.dispose()
    finally:
        stop = subprocess.run(["bash", str(script), "stop", data_dir], capture_output=True, text=True, timeout=60)
    assert stop.returncode == 0, stop.stderr
    assert not os.path.exists(data_dir)
