"""Per-sample predictions, saved next to the store so runs can be compared sample by sample."""
from __future__ import annotations

import io
from pathlib import Path


def predictions_dir(store) -> Path:
    if store.is_sqlite:
        db = Path(store.url.removeprefix("sqlite:///"))
        return db.parent / "predictions"
    from uta_bench.paths import home

    return home() / "predictions"


def save_predictions(store, run_id: str, task: str, preds: dict) -> Path:
    import numpy as np

    from uta_bench.paths import atomic_write_bytes

    path = predictions_dir(store) / run_id / f"{task.replace('/', '_').replace(':', '_')}.npz"
    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: v.cpu().numpy() if hasattr(v, "cpu") else np.asarray(v)
                                for k, v in preds.items()})
    atomic_write_bytes(path, buf.getvalue())
    return path


def remove_predictions(path: Path) -> None:
    """Undo :func:`save_predictions` (its rows were not committed); drops the run's folder when empty."""
    for p in (path, path.parent):
        try:
            p.unlink() if p is path else p.rmdir()
        except OSError:
            pass            # already gone, or the run folder holds other tasks' predictions


def load_predictions(store, run_id: str, task: str) -> dict:
    import numpy as np

    path = predictions_dir(store) / run_id / f"{task.replace('/', '_').replace(':', '_')}.npz"
    with np.load(path) as z:
        return {k: z[k] for k in z.files}
