"""Per-sample predictions of a run's tasks, kept in the results store so runs can be compared sample by sample.

Since schema 3 they are rows of the store's ``predictions`` table (run_id, task, format, blob, sha256; the
blob is ``numpy.savez_compressed`` bytes), so a shared PostgreSQL store carries them to every machine
that reads it. :meth:`uta_bench.store.ResultsStore.write_task` writes them in the same transaction as
the task's rows. Older uta-bench wrote ``predictions/<run_id>/<task>.npz`` files next to the sqlite file
(``$UTA_BENCH_HOME/predictions`` for a server store): they are still read when the table has no entry,
and :func:`import_legacy` (run by ``uta-bench store upgrade``) moves their bytes into the table.
"""
from __future__ import annotations

import hashlib
import io
import logging
from pathlib import Path

import sqlalchemy as sa

from uta_bench.errors import UtaBenchError
from uta_bench.store_schema import db_message, predictions as table

log = logging.getLogger(__name__)


def file_stem(task: str) -> str:
    """The file name (without .npz) the legacy layout gave ``task``."""
    return task.replace("/", "_").replace(":", "_")


def predictions_dir(store) -> Path:
    """Where an older uta-bench saved the predictions files of ``store`` (read-only since schema 3)."""
    if store.is_sqlite:
        db = Path(store.url.removeprefix("sqlite:///"))
        return db.parent / "predictions"
    from uta_bench.paths import home

    return home() / "predictions"


def encode(preds: dict) -> bytes:
    """``preds`` (name -> array or tensor) as compressed npz bytes."""
    import numpy as np

    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: v.detach().cpu().numpy() if hasattr(v, "cpu") else np.asarray(v)
                                for k, v in preds.items()})
    return buf.getvalue()


def prediction_row(run_id: str, task: str, preds: dict | None = None, blob: bytes | None = None) -> dict:
    blob = encode(preds) if blob is None else blob
    return dict(run_id=run_id, task=task, format="npz", blob=blob, sha256=hashlib.sha256(blob).hexdigest())


def put(conn, row: dict) -> None:
    """Insert (or replace) one predictions row inside the caller's transaction ``conn``."""
    conn.execute(table.delete().where((table.c.run_id == row["run_id"]) & (table.c.task == row["task"])))
    conn.execute(table.insert(), [row])


def save_predictions(store, run_id: str, task: str, preds: dict) -> None:
    """Store one task's predictions on their own (no result rows with them, e.g. a `check --sequential`
    run); a task's rows and predictions go together through ``ResultsStore.write_task(predictions=...)``."""
    row = prediction_row(run_id, task, preds)
    try:
        with store.engine.begin() as conn:
            put(conn, row)
    except sa.exc.SQLAlchemyError as e:
        raise UtaBenchError(f"cannot save the predictions of {run_id}/{task} in {store.display_url}: "
                            f"{db_message(e)}") from None


def _legacy_file(store, run_id: str, task: str) -> Path:
    return predictions_dir(store) / run_id / f"{file_stem(task)}.npz"


def prediction_blob(store, run_id: str, task: str) -> bytes | None:
    """The stored npz bytes of (run, task): the table's entry, else the legacy file, else None."""
    q = sa.select(table.c.blob, table.c.sha256).where((table.c.run_id == run_id) & (table.c.task == task))
    with store.engine.connect() as conn:
        row = conn.execute(q).first()
    if row is not None:
        blob = bytes(row.blob)
        if hashlib.sha256(blob).hexdigest() != row.sha256:
            raise UtaBenchError(f"the stored predictions of {run_id}/{task} in {store.display_url} do not match "
                                "their sha256 (corrupted); re-run the task")
        return blob
    path = _legacy_file(store, run_id, task)
    return path.read_bytes() if path.is_file() else None


def has_predictions(store, run_id: str, task: str) -> bool:
    q = sa.select(table.c.task).where((table.c.run_id == run_id) & (table.c.task == task))
    with store.engine.connect() as conn:
        if conn.execute(q).first() is not None:
            return True
    return _legacy_file(store, run_id, task).is_file()


def load_predictions(store, run_id: str, task: str) -> dict:
    """name -> numpy array of the saved predictions of (run, task); a clear error when there are none."""
    import numpy as np

    blob = prediction_blob(store, run_id, task)
    if blob is None:
        raise UtaBenchError(f"run {run_id} has no saved per-sample predictions for task {task} in "
                            f"{store.display_url}; re-run it with this version")
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise UtaBenchError(f"the saved predictions of {run_id}/{task} cannot be read ({e}); re-run the task") \
            from None


def run_tasks(store, run_id: str) -> dict[str, str]:
    """The tasks of ``run_id`` with saved predictions: {legacy file stem: task name to load them by}."""
    with store.engine.connect() as conn:
        names = [r.task for r in conn.execute(sa.select(table.c.task).where(table.c.run_id == run_id))]
    out = {file_stem(t): t for t in names}
    d = predictions_dir(store) / run_id
    for f in sorted(d.glob("*.npz")) if d.is_dir() else []:
        out.setdefault(f.stem, f.stem)
    return out


def legacy_entries(store) -> list[tuple[str, str, Path]]:
    """(run_id, task, file) of every legacy predictions file of ``store`` (task names recovered from the
    run's result rows where the file name had to replace '/' or ':')."""
    from uta_bench.store_schema import results

    root = predictions_dir(store)
    files = sorted(root.glob("*/*.npz")) if root.is_dir() else []
    if not files:
        return []
    with store.engine.connect() as conn:
        pairs = conn.execute(sa.select(results.c.run_id, results.c.task).distinct()).all()
    names = {(r, file_stem(t)): t for r, t in pairs}
    return [(f.parent.name, names.get((f.parent.name, f.stem), f.stem), f) for f in files]


def import_legacy(store) -> int:
    """Copy the legacy predictions files of ``store`` into its table in one transaction (entries the
    table already has are kept; no file is deleted). Returns the number imported."""
    entries = legacy_entries(store)
    if not entries:
        return 0
    with store.engine.connect() as conn:
        have = {(r.run_id, r.task) for r in conn.execute(sa.select(table.c.run_id, table.c.task))}
    rows = [prediction_row(run, task, blob=f.read_bytes()) for run, task, f in entries if (run, task) not in have]
    if rows:
        with store.engine.begin() as conn:
            conn.execute(table.insert(), rows)
        log.info("imported %d predictions files from %s into %s", len(rows), predictions_dir(store),
                 store.display_url)
    return len(rows)


def copy_predictions(src, dst, run_ids) -> int:
    """Copy the predictions of ``run_ids`` (table entries and legacy files) from store ``src`` to ``dst``
    in one transaction; entries ``dst`` already has are kept. Returns the number copied."""
    run_ids = set(run_ids)
    with src.engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(sa.select(table).where(table.c.run_id.in_(run_ids))).mappings()]
    got = {(r["run_id"], r["task"]) for r in rows}
    rows += [prediction_row(run, task, blob=f.read_bytes()) for run, task, f in legacy_entries(src)
             if run in run_ids and (run, task) not in got]
    with dst.engine.connect() as conn:
        have = {(r.run_id, r.task) for r in conn.execute(sa.select(table.c.run_id, table.c.task))}
    new = [r for r in rows if (r["run_id"], r["task"]) not in have]
    if new:
        with dst.engine.begin() as conn:
            conn.execute(table.insert(), new)
    return len(new)
