"""The results store: one row per (run, task, metric), with provenance.

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

metadata = sa.MetaData()
results = sa.Table(
    "results", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(64), nullable=False, index=True),
    sa.Column("source", sa.String(16), nullable=False, default="measured"),
    sa.Column("task", sa.String(128), nullable=False, index=True),
    sa.Column("metric", sa.String(64), nullable=False),
    sa.Column("value", sa.Float, nullable=False),
    sa.Column("n", sa.Integer),
    sa.Column("ci_low", sa.Float),
    sa.Column("ci_high", sa.Float),
    sa.Column("model", sa.String(128), index=True),
    sa.Column("weights_sha256", sa.String(80)),
    sa.Column("task_version", sa.String(32)),
    sa.Column("dataset_manifest", sa.String(80)),
    sa.Column("harness_version", sa.String(32)),
    sa.Column("git_commit", sa.String(64)),
    sa.Column("torch_version", sa.String(32)),
    sa.Column("open_clip_version", sa.String(32)),
    sa.Column("device", sa.String(32)),
    sa.Column("precision", sa.String(32)),
    sa.Column("seed", sa.Integer),
    sa.Column("started_at", sa.String(40)),
    sa.Column("ended_at", sa.String(40)),
    sa.Column("paper_table", sa.String(16)),
    sa.Column("paper_row", sa.String(128)),
    sa.Column("config_json", sa.Text),
    sa.Column("extra_json", sa.Text),
)
COLUMNS = [c.name for c in results.columns if c.name != "id"]


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
        self.url = store_url(store)
        self.is_sqlite = self.url.startswith("sqlite")
        kwargs = {"connect_args": {"timeout": 60}} if self.is_sqlite else {"pool_pre_ping": True}
        try:
            self.engine = sa.create_engine(self.url, **kwargs)
        except Exception as e:  # noqa: BLE001 - bad URL / missing driver
            raise UtaBenchError(f"cannot open results store {self.url!r}: {e}") from None
        if self.is_sqlite:
            self._sqlite_pragmas()
        try:
            metadata.create_all(self.engine)
        except sa.exc.SQLAlchemyError as e:
            # two writers creating a fresh server database at once: the loser of the CREATE TABLE race
            # (PostgreSQL: duplicate key in pg_type) finds the table there and carries on
            if not self._has_table():
                raise UtaBenchError(f"cannot open results store {self.url!r}: {str(e).splitlines()[0]}") from None

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
                   paper: dict | None = None, extra: dict | None = None, source: str = "measured") -> int:
        """Insert all rows of one task in one transaction; returns the number of rows."""
        from uta_bench.provenance import now

        v = run.versions
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
                paper_row=(paper or {}).get("row"), config_json=json.dumps(run.config, sort_keys=True, default=str),
                extra_json=json.dumps({**(extra or {}), **m.extra}, sort_keys=True, default=str)))
        if not rows:
            return 0
        with self.engine.begin() as conn:
            conn.execute(results.insert(), rows)
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

    def latest(self, model: str | None = None):
        """Latest measured value per (model, task, metric)."""
        df = self.df(model=model)
        if df.empty:
            return df
        df = df[df.source == "measured"]
        return df.sort_values("id").groupby(["model", "task", "metric"], as_index=False).tail(1)

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
