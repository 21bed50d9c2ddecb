"""`uta-bench store upgrade|copy`: bring a results store to the current schema; copy one store into another."""
from __future__ import annotations

from typing import Optional

import typer


def _shown(url: str) -> str:
    """A store URL for printing: never its password."""
    import sqlalchemy as sa

    return sa.engine.make_url(url).render_as_string(hide_password=True)


def register(app: typer.Typer, run_app: typer.Typer) -> None:
    store_app = typer.Typer(no_args_is_help=True, help="Results-store schema upgrades and copies.")
    app.add_typer(store_app, name="store")

    @store_app.command("upgrade")
    def upgrade(store: Optional[str] = typer.Option(None, "--store", envvar="UTA_BENCH_STORE",
                                                     help="sqlite path or database URL.")):
        """Upgrade a store in place to the current schema (new columns and tables added, run keys back-filled;
        no row lost) and move the predictions files an older uta-bench wrote next to it into the store."""
        from uta_bench.predictions import import_legacy, predictions_dir
        from uta_bench.store import SCHEMA_VERSION, ResultsStore

        s = ResultsStore(store)            # opening upgrades the schema
        n = import_legacy(s)
        moved = f"; {n} predictions files from {predictions_dir(s)} imported (the files are kept)" if n else ""
        typer.echo(f"{_shown(s.url)}: schema version {SCHEMA_VERSION}, {len(s.df())} rows{moved}")

    @store_app.command("copy")
    def copy(src: str = typer.Argument(..., help="Store to read (e.g. results/results.sqlite)."),
             dst: str = typer.Argument(..., help="Store to write (e.g. postgresql://host/uta)."),
             ):
        """Copy every row (and the runs' per-sample predictions) of SRC into DST, e.g. today's sqlite file into a shared
        PostgreSQL store. Both are upgraded to the current schema first; rows DST already has are skipped."""
        from pathlib import Path

        from uta_bench.errors import UtaBenchError
        from uta_bench.store import ResultsStore
        from uta_bench.store import copy_rows

        if "://" not in src and not Path(src).expanduser().is_file():
            raise UtaBenchError(f"store {src} does not exist; give the sqlite file to copy from")
        a, b = ResultsStore(src), ResultsStore(dst)
        if a.url == b.url:
            raise UtaBenchError("source and destination are the same store")
        copied, skipped = copy_rows(a, b)
        typer.echo(f"copied {copied} rows from {_shown(a.url)} to {_shown(b.url)} ({skipped} already there)")
