"""Two real writer processes on one store (sqlite; PostgreSQL when UTA_BENCH_TEST_PG_URL is set):
nothing lost, no partial task, failed tasks leave nothing, both create a fresh store at the same time."""
from __future__ import annotations

import multiprocessing as mp

from store_backends import store_url_any  # noqa: F401  (fixture)

TASKS, METRICS = 40, 8


def _writer(url, worker, barrier, result_q):
    from uta_bench.errors import UtaBenchError
    from uta_bench.store import Metric, ResultsStore, RunInfo

    barrier.wait(60)                      # both processes open the (fresh) store at the same moment
    s = ResultsStore(url)
    failed = []
    for t in range(TASKS):
        run = RunInfo(run_id=f"w{worker}", model=f"model{worker}")
        metrics = [Metric(f"m{i}", (t * METRICS + i) / 1000, 100) for i in range(METRICS)]
        if t % 10 == 7:                   # a task the database rejects half-way through its rows
            metrics[METRICS // 2] = Metric(None, 0.5)
        try:
            s.write_task(run, f"task{t}", metrics)
        except UtaBenchError as e:       # the one-line store error (the INSERT is never shown)
            assert "nothing of this task was written" in str(e) and "INSERT" not in str(e), e
            failed.append(t)
    s.engine.dispose()
    result_q.put((worker, failed))


def test_two_writer_processes_lose_nothing(store_url_any):
    from uta_bench.store import ResultsStore

    ctx = mp.get_context("spawn")
    barrier, q = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(store_url_any, w, barrier, q)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(180)
        assert p.exitcode == 0
    failed = dict(q.get(timeout=10) for _ in procs)
    expected_failed = [t for t in range(TASKS) if t % 10 == 7]
    assert failed == {0: expected_failed, 1: expected_failed}

    df = ResultsStore(store_url_any).df()
    ok_tasks = TASKS - len(expected_failed)
    assert len(df) == 2 * ok_tasks * METRICS                  # every committed row is there...
    sizes = df.groupby(["run_id", "task"]).size()
    assert sizes.eq(METRICS).all() and len(sizes) == 2 * ok_tasks    # ...each task complete...
    assert not set(df.task) & {f"task{t}" for t in expected_failed}  # ...and failed tasks absent
    for w in range(2):
        mine = df[df.run_id == f"w{w}"].sort_values("id")
        want = sorted((t * METRICS + i) / 1000 for t in range(TASKS) if t % 10 != 7 for i in range(METRICS))
        assert sorted(mine.value.round(6)) == want
