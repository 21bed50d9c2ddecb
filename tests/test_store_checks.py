"""Schema 3: `check` verdicts kept in the store (``checks`` table), read newest first; a schema-2 store
(tests/data/store_schema2: results.sqlite + predictions/ written by `uta-bench run zeroshot` of the
schema-2 version) upgrades in place with every row kept."""
from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from store_backends import store_url_any  # noqa: F401  (fixture)
from test_check import cli, gate_env  # noqa: F401  (fixture)

V2 = Path(__file__).parent / "data" / "store_schema2"


def test_save_check_and_checks_newest_first(store_url_any):  # noqa: F811
    from uta_bench.store import ResultsStore, Store

    s = Store(store_url_any)
    assert Store is ResultsStore and s.checks() == []
    for i in range(3):
        s.save_check({"candidate_runs": [f"run{i}"], "against": "paper", "tolerance": 0.5, "verdict": "pass",
                      "time": f"2026-01-0{i + 1}T00:00:00+00:00",
                      "verdicts": [{"task": "t", "metric": "top1", "delta": -0.01 * i, "status": "pass"}]})
    got = ResultsStore(store_url_any).checks()
    assert [c["candidate_runs"] for c in got] == [["run2"], ["run1"], ["run0"]]
    assert got[0]["verdicts"][0]["delta"] == pytest.approx(-0.02) and got[0]["created_at"].startswith("2026-01-03")
    assert [c["candidate_runs"] for c in s.checks(limit=1)] == [["run2"]]


def test_check_stores_its_verdict_and_a_storage_failure_is_only_a_warning(gate_env, tmp_path, capsys,  # noqa: F811
                                                                         monkeypatch):
    from uta_bench.store import ResultsStore

    args = ("check", "--model", "uta_tiny", "--checkpoint", str(gate_env), "--against", "paper", "--paper-as",
            "uta_b16", "--tasks", "gate_photos", "--json", str(tmp_path / "r.json"))

    def broken(self, verdict):
        raise RuntimeError("disk on fire")

    with monkeypatch.context() as m:
        m.setattr(ResultsStore, "save_check", broken)
        code, out = cli(capsys, *args)
    assert code == 1 and "verdict was not stored" in out and "disk on fire" in out, out
    assert ResultsStore().checks() == []
    code, out = cli(capsys, *args)                              # re-uses the evaluation
    assert code == 1, out
    report = json.loads((tmp_path / "r.json").read_text())
    (saved,) = ResultsStore().checks()
    assert saved["verdict"] == "fail" and saved["against"] == "paper" and saved["tolerance"] == 0.5
    assert saved["candidate_runs"] == report["candidate_runs"] and saved["verdicts"] == report["verdicts"]
    assert saved["verdicts"][0]["status"] == "regression" and saved["time"] == saved["created_at"]


def test_schema2_store_upgrades_in_place(tmp_path, capsys):
    from uta_bench.cli.main import main
    from uta_bench.store import SCHEMA_VERSION, ResultsStore

    db = tmp_path / "results.sqlite"
    shutil.copy(V2 / "results.sqlite", db)
    con = sqlite3.connect(db)
    before = con.execute("SELECT * FROM results ORDER BY id").fetchall()
    assert con.execute("SELECT version FROM uta_bench_schema").fetchall() == [(2,)]
    con.close()
    with pytest.raises(SystemExit) as e:
        main(["store", "upgrade", "--store", str(db)])
    assert e.value.code == 0, capsys.readouterr()
    con = sqlite3.connect(db)
    assert con.execute("SELECT * FROM results ORDER BY id").fetchall() == before
    assert con.execute("SELECT version FROM uta_bench_schema").fetchall() == [(SCHEMA_VERSION,)] == [(3,)]
    con.close()
    s = ResultsStore(db)
    s.save_check({"candidate_runs": ["x"], "against": "paper", "verdict": "pass"})
    assert s.checks()[0]["candidate_runs"] == ["x"]
