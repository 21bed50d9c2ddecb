"""The report's HTML: inline CSS, images as data: URIs, no script, every text through ``html.escape``."""
from __future__ import annotations

import html
import json

from uta_bench.report import figures
from uta_bench.report.collect import ReportData

CSS = """body{font-family:sans-serif;margin:1.5em;color:#222;max-width:1500px}
h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #ccc;margin-top:2em}
table{border-collapse:collapse;margin:.6em 0;font-size:.85em}caption{text-align:left;font-weight:bold;padding:.3em 0}
th,td{padding:2px 7px;border-bottom:1px solid #eee}thead th{border-bottom:1px solid #000;background:#f6f6f6}
td.num{text-align:right;font-variant-numeric:tabular-nums}tr.ours td{color:#036}
td.better{background:#d5f5e3;color:#145a32}td.worse{background:#fadbd8;color:#7b241c}
td.neutral{background:#eee;color:#555}td[title]{cursor:help}.note{color:#666;font-size:.85em}
.figs{display:flex;flex-wrap:wrap;gap:1em}figure{margin:0}figcaption{font-size:.8em;color:#555}
.provenance td{font-size:.9em;word-break:break-all}code{font-size:.9em}
.pass{color:#145a32;font-weight:bold}.fail{color:#7b241c;font-weight:bold}"""

e = html.escape


def _short(v, n: int = 12) -> str:
    return "" if v is None or v != v else str(v)[:n]


def cell_title(rec: dict | None, prov: dict) -> str:
    """Provenance of one measured cell: run id, model, weights sha, git commit, date (a tooltip)."""
    if not rec:
        return ""
    if rec.get("derived_from"):
        runs = sorted({str(m.get("run_id")) for m in rec["derived_from"]})
        return f"mean of {len(rec['derived_from'])} measured cells; runs {', '.join(runs)}"
    p = prov.get(rec.get("run_id"), {})
    return (f"run {rec.get('run_id')} · model {p.get('model', rec.get('model'))} · task {rec.get('task')} "
            f"· metric {rec.get('metric')} · weights {_short(p.get('weights_sha256')) or 'n/a'} · "
            f"commit {_short(p.get('git_commit')) or 'n/a'} · {p.get('ended_at') or p.get('started_at') or ''}")


def delta_class(rec: dict | None, band: float) -> str:
    d = (rec or {}).get("delta")
    if d is None or d != d:
        return ""
    pts = d * 100
    return "neutral" if abs(pts) <= band else ("better" if pts > 0 else "worse")


def grid_html(g, prov: dict, band: float) -> list[str]:
    out = [f"<table class=\"paper\" id=\"table-{e(g.table)}\"><caption>{e(g.title)}</caption><thead>"]
    for line in g.header:
        out.append("<tr>" + "".join(f'<th colspan="{s}">{e(t)}</th>' if s > 1 else f"<th>{e(t)}</th>"
                                    for t, s in line) + "</tr>")
    out.append("</thead><tbody>")
    for (kind, cells), meta in zip(g.rows, g.meta):
        tds = []
        for i, c in enumerate(cells):
            if i < g.n_stubs:
                tds.append(f"<td>{e(c)}</td>")
                continue
            rec = meta[i - g.n_stubs] if meta else None
            cls = "num" + (f" {delta_class(rec, band)}" if kind == "delta" else "")
            title = cell_title(rec, prov)
            tds.append(f'<td class="{cls.strip()}"' + (f' title="{e(title)}"' if title else "") + f">{e(c)}</td>")
        out.append(f'<tr class="{e(kind)}">{"".join(tds)}</tr>')
    out.append("</tbody></table>")
    out += [f'<p class="note">{e(n)}</p>' for n in g.notes]
    return out


def tables_html(data: ReportData, band: float) -> list[str]:
    out = ["<h2 id=\"tables\">Paper tables with our numbers</h2>",
           f'<p class="note">Paper value, then ↳ ours (95% CI) and ↳ Δ = ours − paper in points: '
           f'<span class="better">&nbsp;better&nbsp;</span> <span class="worse">&nbsp;worse&nbsp;</span> '
           f'<span class="neutral">&nbsp;within ±{band:g}&nbsp;</span>. Hover a number for its provenance.</p>']
    for g in data.grids:
        if any(kind != "paper" for kind, _ in g.rows):
            out += grid_html(g, data.provenance, band)
    rest = [g for g in data.grids if all(kind == "paper" for kind, _ in g.rows)]
    if rest:
        out.append(f'<details><summary>Tables without our runs ({len(rest)})</summary>')
        for g in rest:
            out += grid_html(g, data.provenance, band)
        out.append("</details>")
    return out


def deltas_html(title: str, deltas, band: float, against: str, empty: str) -> list[str]:
    out = [f"<h2>{e(title)}</h2>"]
    figs = figures.delta_figures(deltas, band, against)
    if not figs:
        return out + [f'<p class="note">{e(empty)}</p>']
    out.append('<div class="figs">')
    for task, uri in figs:
        runs = sorted(set(deltas[deltas.task == task].run_id))
        out.append(f'<figure><img class="plot" src="{uri}" alt="{e(task)} delta plot">'
                   f"<figcaption>{e(task)} · runs {e(', '.join(map(str, runs)))}</figcaption></figure>")
    out.append("</div>")
    return out


def per_class_html(data: ReportData, k: int) -> list[str]:
    out = [f"<h2 id=\"per-class\">Per-class accuracy of run {e(str(data.run_id))}</h2>"]
    if data.run_id is None:
        return out + ['<p class="note">no measured run in the store</p>']
    for ca in data.per_class:
        rows = ca.rows
        pick = rows if len(rows) <= 2 * k else rows[:k] + rows[-k:]
        where = "all classes" if len(rows) <= 2 * k else f"the {k} worst and the {k} best of {len(rows)} classes"
        out.append(f"<h3>{e(ca.task)}: {e(where)}</h3>")
        if ca.note:
            out.append(f'<p class="note">{e(ca.note)}</p>')
        out.append(f'<div class="figs"><figure><img class="plot" src="{figures.class_figure(ca.task, pick)}" '
                   f'alt="{e(ca.task)} per-class accuracy"></figure>')
        out.append('<table class="per-class"><thead><tr><th>class</th><th>samples</th><th>top-1 %</th></tr></thead>'
                   "<tbody>")
        title = e(cell_title({"run_id": data.run_id, "task": ca.task, "metric": "top1 per class"}, data.provenance))
        out += [f'<tr><td>{e(name)}</td><td class="num">{n}</td><td class="num" title="{title}">{acc * 100:.1f}</td>'
                "</tr>" for name, n, acc in pick]
        out.append("</tbody></table></div>")
    out += [f'<p class="note">{e(n)}</p>' for n in data.per_class_notes]
    return out


def _fmt(v) -> str:
    if isinstance(v, float) and v != v:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (dict, list)):
        return json.dumps(v, default=str)[:300]
    return "" if v is None else str(v)


FIRST = ("task", "metric", "status", "baseline", "candidate", "delta", "ci_low", "ci_high", "p_value", "noise")
HEAD = ("time", "model", "checkpoint", "against", "tolerance")
STATUS = {"regression": "worse", "improved": "better", "pass": "neutral", "noise": "neutral"}


def checks_html(checks: list | None) -> list[str]:
    out = ["<h2 id=\"checks\">Latest check verdicts</h2>"]
    if not checks:
        return out + ['<p class="note">no check verdicts stored</p>']
    for c in checks:
        rows = c.get("verdicts") or []
        head = {k: c[k] for k in dict.fromkeys([*HEAD, *c]) if k in c and k not in ("verdicts", "verdict")
                and c[k] is not None and not isinstance(c[k], (dict, list))}
        head["candidate runs"] = ", ".join(map(str, c.get("candidate_runs") or []))
        ok = c["verdict"] == "pass" if "verdict" in c else (
            c.get("exit_code", 0) == 0 and not any(r.get("status") == "regression" for r in rows))
        out.append(f'<p><span class="{"pass" if ok else "fail"}">{"PASS" if ok else "FAIL"}</span> '
                   + " · ".join(f"{e(str(k))}: <code>{e(_fmt(v))}</code>" for k, v in head.items()) + "</p>")
        keys = dict.fromkeys([*FIRST, *(k for r in rows for k in r)])
        cols = [k for k in keys if any(r.get(k) not in (None, "") and not isinstance(r.get(k), (dict, list))
                                       for r in rows)]
        if rows:
            out.append('<table class="checks"><thead><tr>' + "".join(f"<th>{e(str(k))}</th>" for k in cols)
                       + "</tr></thead><tbody>")
            out += ["<tr>" + "".join(f'<td class="{STATUS.get(r.get(k), "")}">{e(_fmt(r.get(k)))}</td>'
                                     if k == "status" else f"<td>{e(_fmt(r.get(k)))}</td>" for k in cols) + "</tr>"
                    for r in rows]
            out.append("</tbody></table>")
    return out


def provenance_html(prov: dict) -> list[str]:
    cols = ("run id", "model", "weights sha256", "git commit", "started", "ended", "device", "precision",
            "source", "tasks")
    out = ["<h2 id=\"provenance\">Provenance</h2>", '<table class="provenance"><thead><tr>'
           + "".join(f"<th>{c}</th>" for c in cols) + "</tr></thead><tbody>"]
    for run_id, p in prov.items():
        vals = (run_id, p.get("model"), p.get("weights_sha256"), p.get("git_commit"), p.get("started_at"),
                p.get("ended_at"), p.get("device"), p.get("precision"), p.get("source"), ", ".join(p["tasks"]))
        out.append(f'<tr id="run-{e(str(run_id))}">' + "".join(f"<td>{e(_fmt(v))}</td>" for v in vals) + "</tr>")
    out.append("</tbody></table>")
    return out


def render_page(data: ReportData, band: float = 0.5, k: int = 10) -> str:
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           "<title>uta-bench report</title>", f"<style>{CSS}</style></head><body>",
           "<h1>uta-bench report</h1>",
           f'<p class="note">store <code>{e(data.store)}</code> · generated {e(data.generated_at)} · '
           f"{len(data.provenance)} runs</p>"]
    out += deltas_html("Δ ± 95% CI against the paper, per task", data.deltas, band, "paper",
                       "no measured value has a paper value to compare with")
    if data.baseline is not None:
        out += deltas_html(f"Δ of run {data.run_id} against run {data.baseline}, per task (error bars: "
                           "our run's 95% CI)", data.baseline_deltas, band, "baseline",
                           "the two runs share no task/metric")
    out += tables_html(data, band)
    out += per_class_html(data, k)
    out += checks_html(data.checks)
    out += provenance_html(data.provenance)
    out.append("</body></html>")
    return "\n".join(out)
