"""`uta-bench report`: one self-contained HTML page about the results store.

``collect.py`` reads the store (paper tables through :mod:`uta_bench.paper.grid`, the same code as
``table --paper --with-runs``; provenance; per-class accuracy of one run from its per-sample
predictions; the latest ``check`` verdicts), ``figures.py`` draws the PNGs (matplotlib, Agg) and
returns them as ``data:`` URIs, ``page.py`` writes the HTML: inline CSS, inline images, no script,
no font or file outside the page, every text escaped.
"""
from uta_bench.report.collect import ReportData, collect
from uta_bench.report.page import render_page

__all__ = ["ReportData", "collect", "render_page"]
