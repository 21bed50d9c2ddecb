"""Results-store back-ends for the store tests: sqlite always; PostgreSQL when UTA_BENCH_TEST_PG_URL is set.

Start a throwaway server with ``eval "$(scripts/pg_test_server.sh start)"``. Each PostgreSQL test gets
its own fresh database (created and dropped here), so tests never see each other's rows.
"""
from __future__ import annotations

import os
import uuid

import pytest

PG_URL = os.environ.get("UTA_BENCH_TEST_PG_URL")
BACKENDS = ["sqlite", pytest.param("postgresql", marks=[
    pytest.mark.postgres,
    pytest.mark.skipif(not PG_URL, reason="set UTA_BENCH_TEST_PG_URL (scripts/pg_test_server.sh start)")])]


def _admin_engine():
    import sqlalchemy as sa

    from uta_bench.store import store_url

    return sa.create_engine(store_url(PG_URL), isolation_level="AUTOCOMMIT")


def fresh_pg_database() -> str:
    """Create an empty database on the test server; returns its URL."""
    import sqlalchemy as sa

    name = f"uta_t_{uuid.uuid4().hex[:12]}"
    eng = _admin_engine()
    with eng.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    eng.dispose()
    return sa.engine.make_url(PG_URL).set(database=name).render_as_string(hide_password=False)


def drop_pg_database(url: str) -> None:
    import sqlalchemy as sa

    name = sa.engine.make_url(url).database
    eng = _admin_engine()
    with eng.connect() as c:
        c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    eng.dispose()


@pytest.fixture(params=BACKENDS)
def store_url_any(request, tmp_path):
    """A fresh, empty store URL/path of each back-end."""
    if request.param == "sqlite":
        yield str(tmp_path / "store.sqlite")
        return
    url = fresh_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(url)
