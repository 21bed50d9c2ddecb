"""The results store: one row per (run, task, metric), with provenance and a run key.

A row's **run key** (:class:`RunKey`) is what makes two numbers the same measurement: model, weights
sha256, precision actually run, device type, sample limit, init (checkpoint / pretrained / random),
seed, task, task-card version, dataset manifest digest and code version. Its fields are stored as
columns and their digest as ``run_key``; :meth:`ResultsStore.latest` is the one query for "the latest
measured rows" (of a key, or per model/task/metric/paper cell) used by the gate, the paper mapping and
``table --with-runs``. The schema carries a version (table ``uta_bench_schema``); opening an older
store (sqlite file or PostgreSQL database) adds the new columns and back-fills them from each row's
provenance in one transaction, keeping every row.

Embedded sqlite under ``results/`` by default; any SQLAlchemy URL (``postgresql://...``) through
``--store`` / ``$UTA_BENCH_STORE``. All rows of one task are written in one transaction, so a killed
run never leaves a partial task. sqlite runs in WAL mode with a busy timeout and ``BEGIN IMMEDIATE``
so concurrent writers queue instead of failing.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import sqlalchemy as sa

from uta_bench.errors import UtaBenchError
from uta_bench.paths import default_store_path

from uta_bench.store_schema import (COLUMNS, SCHEMA_VERSION, RunKey, checks, code_version,  # noqa: F401
                                    db_message, device_type, metadata, results, schema_info, upgrade)


@dataclass
class Metric:
    """One measured number of a task."""

    metric: str
    value: float
    n: int | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    extra: dict = field(default_factory=dict)


@dataclass
class RunInfo:
    """Provenance shared by every row of a run."""

    run_id: str
    model: str
    weights_sha256: str | None = None
    device: str | None = None
    precision: str | None = None
    seed: int | None = None
    started_at: str | None = None
    config: dict = field(default_factory=dict)
    versions: dict = field(default_factory=dict)
    init: str | None = None              # "checkpoint" | "pretrained" | "random" (None: not a zero-shot run)
    limit: int | None = None             # --limit

    def key(self, task: str, task_version=None, dataset_manifest: str | None = None) -> RunKey:
        return RunKey(model=self.model, task=task, weights_sha256=self.weights_sha256, precision=self.precision,
                      device_type=device_type(self.device), sample_limit=self.limit, init=self.init, seed=self.seed,
                      task_version=task_version, dataset_manifest=dataset_manifest,
                      code_version=code_version(self.versions))


def store_url(store: str | os.PathLike | None = None) -> str:
    store = store or os.environ.get("UTA_BENCH_STORE") or default_store_path()
    s = str(store)
    if "://" in s:
        return _pg_driver(s)
    Path(s).expanduser().parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{Path(s).expanduser().resolve()}"


def _pg_driver(url: str) -> str:
    """``postgresql://`` means psycopg2 to SQLAlchemy; use psycopg 3 when only that is installed."""
    scheme, rest = url.split("://", 1)
    if scheme not in ("postgresql", "postgres"):
        return url
    import importlib.util

    if importlib.util.find_spec("psycopg2") is None and importlib.util.find_spec("psycopg") is not None:
        return f"postgresql+psycopg://{rest}"
    return "postgresql://" + rest if scheme == "postgres" else url


class ResultsStore:
    def __init__(self, store: str | os.PathLike | None = None):
        from uta_bench.validate import redact

        self.url = store_url(store)
        self.display_url = redact(self.url)     # for messages: never print a password
        self.is_sqlite = self.url.startswith("sqlite")
        kwargs = {"connect_args": {"timeout": 60}} if self.is_sqlite else {"pool_pre_ping": True}
        try:
            self.engine = sa.create_engine(self.url, **kwargs)
        except Exception as e:  # noqa: BLE001 - bad URL / missing driver
            raise UtaBenchError(f"cannot open results store {self.display_url!r}: {redact(str(e))}") from None
        if self.is_sqlite:
            self._sqlite_pragmas()
        try:
            metadata.create_all(self.engine)
        except sa.exc.SQLAlchemyError as e:
            # two writers creating a fresh server database at once: the loser of the CREATE TABLE race
            # (PostgreSQL: duplicate key in pg_type) finds the table there and carries on
            if not self._has_table():
                raise UtaBenchError(f"cannot open results store {self.display_url!r}: {db_message(e)}") from None
        upgrade(self)

    def _has_table(self) -> bool:
        try:
            return sa.inspect(self.engine).has_table("results")
        except sa.exc.SQLAlchemyError:
            return False

    def _sqlite_pragmas(self) -> None:
        @sa.event.listens_for(self.engine, "connect")
        def _connect(dbapi_conn, _record):
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @sa.event.listens_for(self.engine, "begin")
        def _begin(conn):
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    # ------------------------------------------------------------------ writing
    def write_task(self, run: RunInfo, task: str, metrics: Iterable[Metric], *, task_version: str | None = None,
                   dataset_manifest: str | None = None, ended_at: str | None = None,
                   paper: dict | None = None, extra: dict | None = None, source: str = "measured",
                   predictions: dict | None = None, before_commit=None) -> int:
        """Insert all rows of one task, and its per-sample ``predictions`` (name -> array; see
        :mod:`uta_bench.predictions`), in one transaction; returns the number of rows.

        ``before_commit()`` runs inside the transaction after the insert: when it raises, nothing is
        written; when the commit fails, the caller undoes what it did."""
        from uta_bench.predictions import prediction_row, put
        from uta_bench.provenance import now
        from uta_bench.validate import redact_all

        config_json = json.dumps(redact_all(run.config), sort_keys=True, default=str)

        v = run.versions
        key = run.key(task, task_version, dataset_manifest).to_dict()
        key = {k: key[k] for k in ("device_type", "sample_limit", "init", "code_version", "run_key")}
        rows = []
        for m in metrics:
            if m.value is None or m.value != m.value:
                raise UtaBenchError(f"metric {task}/{m.metric} has no value; nothing written")
            rows.append(dict(
                run_id=run.run_id, source=source, task=task, metric=m.metric, value=float(m.value), n=m.n,
                ci_low=m.ci_low, ci_high=m.ci_high, model=run.model, weights_sha256=run.weights_sha256,
                task_version=task_version, dataset_manifest=dataset_manifest,
                harness_version=v.get("harness_version"), git_commit=v.get("git_commit"),
                torch_version=v.get("torch_version"), open_clip_version=v.get("open_clip_version"),
                device=run.device, precision=run.precision, seed=run.seed, started_at=run.started_at,
                ended_at=ended_at or now(), paper_table=(paper or {}).get("table"),
                paper_row=(paper or {}).get("row"), config_json=config_json,
                extra_json=json.dumps({**(extra or {}), **m.extra}, sort_keys=True, default=str), **key))
        if not rows:
            return 0
        pred_row = None if predictions is None else prediction_row(run.run_id, task, predictions)
        try:
            with self.engine.begin() as conn:
                conn.execute(results.insert(), rows)
                if pred_row is not None:
                    put(conn, pred_row)
                if before_commit is not None:
                    before_commit()
        except sa.exc.SQLAlchemyError as e:     # full disk, corrupt pages...: one line, never the INSERT
            raise UtaBenchError(f"cannot write task {task} to the results store {self.display_url}: "
                                f"{db_message(e)}; nothing of this task was written") from None
        return len(rows)

    # ------------------------------------------------------------------ reading
    def df(self, run_id: str | None = None, model: str | None = None, task: str | None = None,
           metric: str | None = None):
        import pandas as pd

        q = sa.select(results)
        for col, val in (("run_id", run_id), ("model", model), ("task", task), ("metric", metric)):
            if val is not None:
                q = q.where(results.c[col] == val)
        q = q.order_by(results.c.id)
        with self.engine.connect() as conn:
            return pd.read_sql(q, conn)

    def latest(self, key: RunKey | None = None, model: str | None = None, models=None,
               exclude_runs=(), per=("model", "task", "metric", "paper_table", "paper_row")):
        """THE query for the latest measured (or imported) rows.

        With ``key``: the rows of the latest run measured under exactly that run key (empty when none).
        Otherwise the latest measured row per ``per`` among ``model``/``models`` (all when None),
        leaving out ``exclude_runs``; grouping by the paper cell a row names keeps an ablation row
        (e.g. Table 8) from hiding the zero-shot run of the same model/task/metric.
        """
        import pandas as pd

        # imported rows (`uta-bench import clip-benchmark`) are results too, but never stand in for a
        # candidate's own evaluation under a run key
        q = sa.select(results).where(results.c.source == "measured" if key is not None
                                     else results.c.source.in_(("measured", "imported")))
        if key is not None:
            q = q.where(results.c.run_key == key.digest())
        wanted = [model] if model is not None else list(models or [])
        if wanted:
            q = q.where(results.c.model.in_(wanted))
        if exclude_runs:
            q = q.where(results.c.run_id.notin_(list(exclude_runs)))
        with self.engine.connect() as conn:
            df = pd.read_sql(q.order_by(results.c.id), conn)
        if df.empty:
            return df
        if key is not None:
            return df[df.run_id == df.run_id.iloc[-1]].reset_index(drop=True)
        cols = [c for c in per if c in df.columns]
        groups = df[cols].astype(object).where(df[cols].notna(), "")
        return df.loc[groups.groupby(cols, sort=False).tail(1).index].sort_values("id").reset_index(drop=True)

    # ------------------------------------------------------------------ check verdicts
    def save_check(self, verdict: dict) -> None:
        """Store one `uta-bench check` verdict (:meth:`uta_bench.gate.CheckReport.verdict_dict`: candidate
        runs, against, tolerance, per-task rows, overall ``verdict``, ``time``) as one row of ``checks``."""
        from uta_bench.provenance import now
        from uta_bench.validate import redact_all

        verdict = redact_all(dict(verdict))
        created = str(verdict.get("time") or now())
        runs = verdict.get("candidate_runs") or []
        row = dict(created_at=created, against=None if verdict.get("against") is None else str(verdict["against"]),
                   candidate_run=",".join(map(str, runs if isinstance(runs, (list, tuple)) else [runs])) or None,
                   verdict=verdict.get("verdict"), report_json=json.dumps(verdict, sort_keys=True, default=str))
        try:
            with self.engine.begin() as conn:
                conn.execute(checks.insert(), [row])
        except sa.exc.SQLAlchemyError as e:
            raise UtaBenchError(f"cannot store the check verdict in {self.display_url}: {db_message(e)}") from None

    def checks(self, limit: int = 20) -> list[dict]:
        """The latest ``limit`` stored check verdicts, newest first (the dicts given to :meth:`save_check`,
        with the row's ``id`` and ``created_at`` added)."""
        q = sa.select(checks).order_by(checks.c.id.desc()).limit(int(limit))
        with self.engine.connect() as conn:
            rows = conn.execute(q).mappings().all()
        out = []
        for r in rows:
            d = json.loads(r["report_json"])
            out.append({**d, "id": r["id"], "created_at": r["created_at"]})
        return out

    def export(self, path: str | os.PathLike, fmt: str | None = None, **filters) -> Path:
        from uta_bench.paths import atomic_write_bytes

        path = Path(path)
        fmt = (fmt or path.suffix.lstrip(".")).lower()
        df = self.df(**filters)
        if fmt == "csv":
            data = df.to_csv(index=False).encode()
        elif fmt == "json":
            data = df.to_json(orient="records", indent=1).encode()
        elif fmt == "parquet":
            import io

            from uta_bench.optional import require

            require("pyarrow", "parquet export")
            buf = io.BytesIO()
            df.to_parquet(buf, index=False)
            data = buf.getvalue()
        else:
            raise UtaBenchError(f"unknown export format {fmt!r}; use csv, json or parquet")
        atomic_write_bytes(path, data)
        return path


def copy_rows(src: ResultsStore, dst: ResultsStore) -> tuple[int, int]:
    """Copy every row of store ``src`` into store ``dst`` (e.g. a sqlite file into a shared PostgreSQL
    store) with the runs' predictions; rows ``dst`` already holds (same run, task, metric, source, value)
    are skipped, so a repeated copy adds nothing. Returns (rows copied, rows already there)."""
    from uta_bench.predictions import copy_predictions

    with src.engine.connect() as c:
        rows = [dict(r) for r in c.execute(sa.select(results).order_by(results.c.id)).mappings()]
    with dst.engine.connect() as c:
        have = {(r.run_id, r.task, r.metric, r.source, r.value) for r in
                c.execute(sa.select(results.c.run_id, results.c.task, results.c.metric, results.c.source,
                                    results.c.value))}
    new = [{k: r[k] for k in COLUMNS} for r in rows
           if (r["run_id"], r["task"], r["metric"], r["source"], r["value"]) not in have]
    copy_predictions(src, dst, {r["run_id"] for r in rows})
    if new:
        with dst.engine.begin() as c:
            c.execute(results.insert(), new)
    return len(new), len(rows) - len(new)


Store = ResultsStore        # the name the cross-module spec uses (Store.save_check / Store.checks)
