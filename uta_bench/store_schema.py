"""The results store's schema (tables, :class:`RunKey`), its versions and the upgrade of an older store in place.

Version 1 (no ``uta_bench_schema`` table) had no run-key columns; version 2 no ``checks`` and
``predictions`` tables (those are created, empty; ``uta-bench store upgrade`` then imports the
predictions files an older uta-bench wrote next to the store, see :mod:`uta_bench.predictions`). :func:`upgrade` adds every column the
current :data:`results` table has and the store lacks (``ALTER TABLE ... ADD COLUMN``,
on sqlite and PostgreSQL alike), back-fills the run key of every row from the row's own provenance
(``config_json``: limit, checkpoint, pretrained; ``device``; ``git_commit``/``harness_version``) and
records the version, all in one transaction: a failed upgrade leaves the store as it was, and no row is
ever deleted. Concurrent openers queue on the table lock (sqlite: BEGIN IMMEDIATE).
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass

import sqlalchemy as sa

from uta_bench.errors import UtaBenchError

log = logging.getLogger(__name__)

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
    # schema 2: the run key (see RunKey)
    sa.Column("device_type", sa.String(16)),
    sa.Column("sample_limit", sa.Integer),
    sa.Column("init", sa.String(16)),
    sa.Column("code_version", sa.String(80)),
    sa.Column("run_key", sa.String(64), index=True),
)
COLUMNS = [c.name for c in results.columns if c.name != "id"]
schema_info = sa.Table(
    "uta_bench_schema", metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
)
# schema 3: `check` verdicts, and per-sample predictions kept in the database (so a shared store has them)
checks = sa.Table(
    "checks", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("candidate_run", sa.String(400)),        # the candidate's run ids, comma-separated
    sa.Column("against", sa.String(256)),
    sa.Column("verdict", sa.String(16)),                # pass | fail
    sa.Column("report_json", sa.Text, nullable=False),  # the whole verdict dict (Store.save_check)
)
predictions = sa.Table(
    "predictions", metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("task", sa.String(128), primary_key=True),
    sa.Column("format", sa.String(16), nullable=False),     # "npz": numpy.savez_compressed bytes
    sa.Column("blob", sa.LargeBinary, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
)
SCHEMA_VERSION = 3          # 1: before the run key (no uta_bench_schema table); 2: run-key columns; 3: checks,
                            # predictions tables


@dataclass(frozen=True)
class RunKey:
    """What a measured number depends on; rows with equal keys are re-usable for each other."""

    model: str
    task: str
    weights_sha256: str | None = None
    precision: str | None = None         # as run, e.g. "fp32", "bf16-autocast"
    device_type: str | None = None       # "cpu", "cuda"
    sample_limit: int | None = None      # --limit
    init: str | None = None              # "checkpoint" | "pretrained" | "random"
    seed: int | None = None
    task_version: str | None = None
    dataset_manifest: str | None = None
    code_version: str | None = None      # git commit (+"-dirty"), else the harness version

    def __post_init__(self):
        for name, conv in (("sample_limit", int), ("seed", int), ("task_version", str)):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, float) and v != v):
                object.__setattr__(self, name, conv(v))
            elif v is not None:
                object.__setattr__(self, name, None)

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()

    def to_dict(self) -> dict:
        return {**asdict(self), "run_key": self.digest()}


def device_type(device: str | None) -> str | None:
    return None if not device else str(device).split(":")[0]


def code_version(versions: dict) -> str | None:
    return versions.get("git_commit") or (f"v{versions['harness_version']}" if versions.get("harness_version")
                                           else None)


def stored_version(conn) -> int:

    if not sa.inspect(conn).has_table("uta_bench_schema"):
        return 1
    v = conn.execute(sa.select(schema_info.c.version).where(schema_info.c.name == "results")).scalar()
    return 1 if v is None else int(v)


def upgrade(store) -> int:
    """Bring ``store`` (a ResultsStore) to :data:`SCHEMA_VERSION`; returns rows back-filled."""

    with store.engine.connect() as conn:
        version = stored_version(conn)
    if version == SCHEMA_VERSION:
        return 0
    if version > SCHEMA_VERSION:
        raise UtaBenchError(f"results store {store.url} has schema version {version}, newer than this uta-bench "
                            f"({SCHEMA_VERSION}); upgrade uta-bench to use it")
    with store.engine.begin() as conn:
        if not store.is_sqlite:
            conn.exec_driver_sql("LOCK TABLE results IN SHARE ROW EXCLUSIVE MODE")
        metadata.create_all(conn, tables=[schema_info, checks, predictions])
        if stored_version(conn) >= SCHEMA_VERSION:       # another process upgraded it meanwhile
            return 0
        _add_missing_columns(conn)
        n = backfill_run_keys(conn)
        _set_version(conn, SCHEMA_VERSION)
    if n:
        log.info("results store %s upgraded to schema %d (%d rows got their run key)", store.url, SCHEMA_VERSION, n)
    return n


def _add_missing_columns(conn) -> None:

    have = {c["name"] for c in sa.inspect(conn).get_columns("results")}
    prep = conn.dialect.identifier_preparer
    for col in results.columns:
        if col.name not in have:
            conn.exec_driver_sql(f"ALTER TABLE results ADD COLUMN {prep.quote(col.name)} "
                                 f"{col.type.compile(dialect=conn.dialect)}")
    if "run_key" not in have:
        conn.exec_driver_sql("CREATE INDEX IF NOT EXISTS ix_results_run_key ON results (run_key)")


def _set_version(conn, version: int) -> None:

    conn.execute(schema_info.delete().where(schema_info.c.name == "results"))
    conn.execute(schema_info.insert().values(name="results", version=version))


def key_columns(row: dict) -> dict:
    """The run-key columns of a stored row, derived from its provenance columns (schema-1 rows)."""

    try:
        cfg = json.loads(row.get("config_json") or "{}")
    except (TypeError, ValueError):
        cfg = {}
    cfg = cfg if isinstance(cfg, dict) else {}
    init = ("checkpoint" if cfg.get("checkpoint") else "pretrained" if cfg.get("pretrained") is True
            else "random" if cfg.get("pretrained") is False else None)
    key = RunKey(model=row["model"], task=row["task"], weights_sha256=row.get("weights_sha256"),
                 precision=row.get("precision"), device_type=device_type(row.get("device")),
                 sample_limit=cfg.get("limit"), init=init, seed=row.get("seed"),
                 task_version=row.get("task_version"), dataset_manifest=row.get("dataset_manifest"),
                 code_version=code_version({"git_commit": row.get("git_commit"),
                                            "harness_version": row.get("harness_version")}))
    d = key.to_dict()
    return {k: d[k] for k in ("device_type", "sample_limit", "init", "code_version", "run_key")}


def backfill_run_keys(conn) -> int:

    rows = conn.execute(sa.select(results).where(results.c.run_key.is_(None))).mappings().all()
    if not rows:
        return 0
    upd = (results.update().where(results.c.id == sa.bindparam("_id"))
           .values({k: sa.bindparam(k) for k in ("device_type", "sample_limit", "init", "code_version", "run_key")}))
    conn.execute(upd, [{"_id": r["id"], **key_columns(dict(r))} for r in rows])
    return len(rows)


def db_message(e: Exception) -> str:
    """The database's own one-line message, without SQLAlchemy's statement and parameters."""
    from uta_bench.validate import redact

    orig = getattr(e, "orig", None)
    text = str(orig if orig is not None else e).strip().splitlines() or [type(e).__name__]
    return redact(text[0])[:300]
