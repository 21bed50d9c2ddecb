"""Progress output when stdout is not a terminal (CI, Slurm, `| tee`): plain lines with done/total, rate
and ETA at a fixed interval, instead of one final frame of a live bar."""
from __future__ import annotations

import os
import re
import subprocess
import sys

SCRIPT = r"""
import time
from uta_bench.progress import make_progress, progress_bar
with progress_bar(True, 6, "encode toy", "img") as advance:
    for _ in range(6):
        time.sleep(0.12)
        advance(1)
with make_progress("step") as bar:                      # the rich-Progress-style API the trainers use
    t = bar.add_task("fine-tune", total=4, completed=1)
    for step in range(2, 5):
        time.sleep(0.12)
        bar.update(t, completed=step, description=f"fine-tune loss {1 / step:.3f}")
"""
LINE = re.compile(r"^(?P<label>[\w .-]+): (?P<done>\d+)/(?P<total>\d+) \((?P<pct>[\d.]+)%\)  "
                  r"(?P<rate>[\d.,]+) (?P<unit>\w+)/s  elapsed \d+s  (ETA (?P<eta>\d+s)|done)$")


def _run(interval: str) -> list[str]:
    env = {**os.environ, "UTA_BENCH_PROGRESS_INTERVAL": interval}
    r = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""                  # progress never mixes into stdout (data, tables)
    return r.stderr.strip().splitlines()


def test_plain_lines_when_not_a_terminal():
    lines = _run("0")                      # interval 0: a line at every step, then the final line
    parsed = [LINE.match(x) for x in lines]
    assert all(parsed), lines
    encode = [m for m in parsed if m["label"] == "encode toy"]
    assert [int(m["done"]) for m in encode] == [1, 2, 3, 4, 5, 6, 6], lines
    for m in encode[:-1]:
        done = int(m["done"])
        assert float(m["pct"]) == round(100 * done / 6, 1) and m["unit"] == "img" and float(m["rate"]) > 0
        assert m["eta"] is not None
    assert encode[-1]["eta"] is None                       # "... done"
    ft = [m for m in parsed if m["label"].startswith("fine-tune")]
    assert [int(m["done"]) for m in ft] == [2, 3, 4, 4] and ft[-1]["label"] == "fine-tune loss 0.250"


def test_interval_rate_and_eta_with_a_fake_clock(monkeypatch):
    import io

    from uta_bench import progress

    now = [1000.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: now[0])
    out = io.StringIO()
    bar = progress.PlainProgress(100, "hash", "B", interval=30, stream=out)
    for _ in range(10):                    # 10 steps of 10 items, 12 s each: lines at 36 s, 72 s, 108 s
        now[0] += 12
        bar.advance(10)
    bar.finish()
    assert out.getvalue().splitlines() == [
        "hash: 30/100 (30.0%)  0.8 B/s  elapsed 36s  ETA 1m24s",
        "hash: 60/100 (60.0%)  0.8 B/s  elapsed 1m12s  ETA 48s",
        "hash: 90/100 (90.0%)  0.8 B/s  elapsed 1m48s  ETA 12s",
        "hash: 100/100 (100.0%)  0.8 B/s  elapsed 2m00s  done"]


def test_long_interval_prints_only_the_final_line():
    lines = _run("30")
    assert [LINE.match(x)["label"] for x in lines] == ["encode toy", "fine-tune loss 0.250"], lines
