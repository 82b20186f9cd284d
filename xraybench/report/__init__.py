"""The report: results.json → words, tables and figures → HTML and PDF (``render``), and the terminal's
summary table (``console``)."""

from xraybench.report.render import build_context, render, render_html

__all__ = ["build_context", "render", "render_html"]
