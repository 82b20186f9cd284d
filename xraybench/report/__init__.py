"""The report: results.json → words, tables and figures → HTML and PDF."""

from xraybench.report.render import build_context, render, render_html  # noqa: F401
