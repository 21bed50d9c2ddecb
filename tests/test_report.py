"""`uta-bench report`: a self-contained HTML page, rendered in a real headless Chromium (Debian's
`chromium`; scripts/test.sh installs it) and checked from the browser's side: no console or load error,
every image decodes, tables present, a screenshot of the expected size that is not blank.

The store holds two small random-init zero-shot runs on generated data (tests/zs_helpers.py), recorded
under ``uta_b16`` so they land in the paper's UTA-B/16 cells (Δ rows and plots), plus a hostile
model name that must come out as text.
"""
from __future__ import annotations

import base64
import html.parser
import io
import json
import re
import shutil
import subprocess

import numpy as np
import pytest
import torch

from zs_helpers import TEMPLATES, cfg, tiny, write_card
from uta_bench.cli.main import main
from uta_bench.data import synthetic as syn

CHROMIUM = shutil.which("chromium")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed "
                                                             "(scripts/test.sh installs it: apt-get install chromium)")
CLASSES = ["red apple", "blue whale", "tabby cat", "fire truck", "snow owl", "sea lion"]
HOSTILE = '<img src=x onerror="document.title=1">evil'
SIZE = (1280, 2400)
# injected into a copy of the page: records load/script errors and console.error, then writes what the
# browser saw (image sizes, tables, resources fetched) into the DOM for --dump-dom
PROBE = """<script>window.__p={errors:[]};
window.addEventListener('error',function(ev){var t=ev.target;__p.errors.push(t&&t!==window?
 'load failed: '+t.tagName+' '+String(t.src||t.href||'').slice(0,120):'error: '+ev.message);},true);
(function(){var ce=console.error;console.error=function(){__p.errors.push('console.error: '+
 Array.prototype.join.call(arguments,' '));ce.apply(console,arguments);};})();
function ink(i){if(!i.naturalWidth)return 0;var c=document.createElement('canvas');c.width=i.naturalWidth;
 c.height=i.naturalHeight;var x=c.getContext('2d');x.drawImage(i,0,0);var d=x.getImageData(0,0,c.width,c.height).data,
 n=0;for(var k=0;k<d.length;k+=4){if(d[k+3]>0&&d[k]+d[k+1]+d[k+2]<600)n++;}return n/(d.length/4);}
window.addEventListener('load',function(){var pre=document.createElement('pre');pre.id='uta-probe';
 pre.textContent=JSON.stringify({errors:__p.errors,title:document.title,
 images:[].slice.call(document.images).map(function(i){var r=i.getBoundingClientRect();
  return {w:i.naturalWidth,h:i.naturalHeight,alt:i.alt,top:r.top,bottom:r.bottom,ink:ink(i)};}),
 tables:[].slice.call(document.querySelectorAll('table')).map(function(t){return t.className+'#'+t.id;}),
 resources:performance.getEntriesByType('resource').map(function(r){return r.name.slice(0,120);})});
 document.body.appendChild(pre);});</script>"""


def cli(capsys, *args) -> tuple[int, str]:
    with pytest.raises(SystemExit) as e:
        main(list(args))
    out = capsys.readouterr()
    return e.value.code, out.out + out.err


def chromium(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--no-first-run", *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def populated(tmp_path, monkeypatch, official_ckpt, capsys):
    """Two runs of a 6-class generated ImageFolder task mapped to Table 1's IN-1K column, one hostile row,
    and a real `uta-bench check` verdict (a random-init checkpoint against the paper: a regression)."""
    from uta_bench.store import Metric, ResultsStore, RunInfo
    from uta_bench.zeroshot.run import evaluate_loaded

    store = ResultsStore()
    store.write_task(RunInfo(run_id="hostile-run", model=HOSTILE, weights_sha256="<b>sha</b>"), "gen6",
                     [Metric("top1", 0.5, 24, 0.3, 0.7)])
    syn.make_imagefolder(tmp_path / "data" / "gen6", CLASSES, per_class=4)
    (tmp_path / "cards").mkdir()
    monkeypatch.setenv("UTA_BENCH_TASKS", str(tmp_path / "cards"))      # the card's paper cell is found by name
    card = write_card(tmp_path / "cards", "gen6", type="classification", dataset={"path": "gen6"}, classes="folder",
                      templates=TEMPLATES, metrics=["top1", "top5"], expected_samples=24,
                      paper={"table": "1", "column": "IN-1K"})
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        runs = [evaluate_loaded(tiny(seed), [str(card)], cfg(tmp_path, [card], use_cache=False),
                                model_name="uta_b16") for seed in (0, 1)]
        ckpt, _ = official_ckpt("uta_tiny_p16", fmt="safetensors")
        code, msg = cli(capsys, "check", "--model", "uta_tiny", "--checkpoint", str(ckpt), "--against", "paper",
                        "--paper-as", "uta_b16", "--tasks", "gen6", "--tolerance", "0.5",
                        "--data-root", str(tmp_path / "data"))
        assert code == 1 and "REGRESSION" in msg, msg
    finally:
        torch.set_num_threads(threads)
    return store, runs


class Tags(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def test_report_page_contents(populated, tmp_path, capsys):
    from PIL import Image

    from uta_bench.predictions import load_predictions

    store, (base, run) = populated
    out = tmp_path / "report.html"
    code, msg = cli(capsys, "report", "-o", str(out), "--run", run, "--baseline", base)
    assert code == 0, msg
    page = out.read_text()
    # self-contained: no script, no stylesheet/font link, every src a data: URI
    tags = Tags()
    tags.feed(page)
    assert not [t for t, _ in tags.tags if t in ("script", "link", "iframe", "object", "embed")]
    srcs = [a["src"] for t, a in tags.tags if "src" in a]
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert not re.search(r"url\(|@import|https?://", page)
    for s in srcs:                     # complete PNGs (PIL decodes every pixel)
        img = Image.open(io.BytesIO(base64.b64decode(s.split(",", 1)[1])))
        img.load()
        assert img.format == "PNG" and min(img.size) > 100
    # user text escaped, never markup
    assert HOSTILE not in page and '<b>sha</b>' not in page
    assert "&lt;img src=x onerror=&quot;document.title=1&quot;&gt;evil" in page
    # Table 1 with our latest run under the paper's UTA B/16 row; delta coloured from the stored value
    rows = store.df(run_id=run)
    top1 = rows[rows.metric == "top1"].iloc[0]
    delta_pts = (top1.value - 0.77) * 100
    want_cls = "neutral" if abs(delta_pts) <= 0.5 else ("better" if delta_pts > 0 else "worse")
    m = re.search(r'<td class="num ([a-z]+)" title="run ([^ ]+) · model uta_b16 · task gen6 · metric top1 · '
                  r'weights ([^ ]+) · commit [^·]+ · [^"]+">([+-][0-9.]+)</td>', page)
    assert m, "no coloured delta cell with provenance"
    assert (m[1], m[2], m[4]) == (want_cls, run, f"{delta_pts:+.1f}")
    assert m[3] == str(top1.weights_sha256)[:12]
    # per-class table of the latest run: independent count from the stored predictions (pandas groupby;
    # ImageFolder class indices follow the sorted folder names)
    import pandas as pd

    p = load_predictions(store, run, "gen6")
    df = pd.DataFrame({"c": np.asarray(p["target"]), "ok": np.asarray(p["correct1"])})
    want = {sorted(CLASSES)[c]: round(g.ok.mean() * 100, 1) for c, g in df.groupby("c")}
    got = dict((name, float(acc)) for name, acc in re.findall(
        r'<tr><td>([a-z ]+)</td><td class="num">4</td><td class="num" title="[^"]*">([0-9.]+)</td></tr>', page))
    assert got == want
    assert page.count('class="plot"') == 3        # Δ vs paper, Δ vs baseline, per-class
    assert f'id="run-{run}"' in page and f'id="run-{base}"' in page and 'id="run-hostile-run"' in page
    # the check verdict as stored (Store.checks): FAIL, its regression row, its candidate run in the provenance
    (verdict,) = store.checks(5)
    (cand,) = verdict["candidate_runs"]
    assert verdict["verdict"] == "fail" and cand not in (base, run)
    section = page.split('id="checks"', 1)[1].split('id="provenance"', 1)[0]
    assert '<span class="fail">FAIL</span>' in section and f"<code>{cand}</code>" in section
    assert '<td class="worse">regression</td>' in section and "<td>gen6</td>" in section
    delta = verdict["verdicts"][0]["delta"]
    assert f"<td>{delta:.4g}</td>" in section and f'id="run-{cand}"' in page


@needs_chromium
def test_report_in_headless_chromium(populated, tmp_path, capsys):
    from PIL import Image

    out = tmp_path / "report.html"
    code, msg = cli(capsys, "report", "-o", str(out))
    assert code == 0, msg
    shot = tmp_path / "shot.png"
    # the screenshot, exactly as a user would take it
    r = chromium("--enable-logging=stderr", "--v=0", f"--screenshot={shot}", f"--window-size={SIZE[0]},{SIZE[1]}",
                 out.resolve().as_uri())
    assert r.returncode == 0, r.stderr[-2000:]
    console = [ln for ln in r.stderr.splitlines() if ":CONSOLE" in ln]
    assert not console, console
    img = Image.open(io.BytesIO(shot.read_bytes()))
    assert img.format == "PNG" and img.size == SIZE
    px = np.asarray(img.convert("L"))
    assert (px < 200).mean() > 0.02, "screenshot is (nearly) blank"
    # what the browser saw: no error, every image decoded, the tables present
    probe = tmp_path / "probe.html"
    probe.write_text(out.read_text().replace("<head>", "<head>" + PROBE, 1))
    r = chromium("--virtual-time-budget=5000", f"--window-size={SIZE[0]},{SIZE[1]}", "--dump-dom",
                 probe.resolve().as_uri())
    assert r.returncode == 0, r.stderr[-2000:]
    m = re.search(r'<pre id="uta-probe">(.*?)</pre>', r.stdout, re.S)
    assert m, r.stdout[-2000:]
    seen = json.loads(__import__("html").unescape(m[1]))
    assert seen["errors"] == [] and seen["resources"] == [], seen
    assert seen["title"] == "uta-bench report"                  # the hostile name did not run
    # every image decoded and drawn: its size, and ink (dark pixels) when painted onto a canvas
    assert len(seen["images"]) == 2 and all(i["w"] > 100 and i["h"] > 100 and i["ink"] > 0.01
                                            for i in seen["images"]), seen
    delta_plot = next(i for i in seen["images"] if "delta" in i["alt"])
    assert 0 <= delta_plot["top"] < delta_plot["bottom"] <= SIZE[1], "the Δ plot is not in the screenshot"
    assert "paper#table-1" in seen["tables"] and "per-class#" in seen["tables"] and "provenance#" in seen["tables"]


def test_bad_output_path_is_one_line_before_work(tmp_path, capsys):
    (tmp_path / "dir").mkdir()
    code, msg = cli(capsys, "report", "-o", str(tmp_path / "dir"))
    assert code == 2 and "is a directory" in msg and len(msg.strip().splitlines()) == 1
    # empty store: a clear line, nothing written
    code, msg = cli(capsys, "report", "-o", str(tmp_path / "r.html"))
    assert code == 2 and "has no rows" in msg and not (tmp_path / "r.html").exists()
    from uta_bench.store import Metric, ResultsStore, RunInfo

    ResultsStore().write_task(RunInfo(run_id="r1", model="uta_b16"), "imagenet1k", [Metric("top1", 0.7, 10)])
    for opt in ("--run", "--baseline"):
        code, msg = cli(capsys, "report", "-o", str(tmp_path / "r.html"), opt, "nope")
        assert code == 2 and f"{opt} nope: no such run" in msg and not (tmp_path / "r.html").exists()
    code, msg = cli(capsys, "report", "-o", str(tmp_path / "r.html"), "--tables", "9")
    assert code == 2 and "unknown table '9'" in msg
    # a store of rows without predictions (e.g. imported) still renders, saying what is missing
    code, msg = cli(capsys, "report", "-o", str(tmp_path / "r.html"))
    page = (tmp_path / "r.html").read_text()
    assert code == 0 and "imagenet1k: no per-sample predictions readable" in page and "-7.0" in page
