"""The homework-style report, from results.json alone: context → Jinja2 → WeasyPrint.

``render`` reads a run, builds its context (``context``: every section's strings, tables and figures) and
writes it twice: report.html for a browser and report.pdf from the print page. The PDF's dates come from
the run, so the same results.json renders to the same bytes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from pathlib import Path

import jinja2
import markupsafe

from xraybench import results
from xraybench.report.context import build_context, check_section, table_of_contents

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


def render(run_dir: Path, baseline: Path | None = None) -> tuple[Path, Path]:
    """Write report.html and report.pdf into ``run_dir`` from its results.json (and, given a
    baseline file, the regression check against it)."""
    run_dir = Path(run_dir)
    run = results.read(run_dir)
    context = build_context(run)
    if baseline is not None:
        context["check"] = check_section(run, Path(baseline))
    context["toc"] = table_of_contents(context)
    return write_pages(context, "report.html.j2", run_dir, "report", run.datetime)


def write_pages(context: dict, template: str, out: Path, stem: str, date: str | None) -> tuple[Path, Path]:
    """``template`` filled with ``context``, written as ``out/stem.html`` (for a browser: the screen stylesheet,
    a table of contents, tables that scroll) and ``out/stem.pdf`` (WeasyPrint, from the print rendering alone,
    dated ``date`` so that the same context gives the same bytes)."""
    import weasyprint

    out.mkdir(parents=True, exist_ok=True)
    html_path, pdf_path = out / f"{stem}.html", out / f"{stem}.pdf"
    html_path.write_text(render_html(context, template, screen=True), encoding="utf-8")
    with _source_date(date):
        weasyprint.HTML(string=render_html(context, template), base_url=str(TEMPLATES)).write_pdf(pdf_path)
    return html_path, pdf_path


@contextlib.contextmanager
def _source_date(iso: str | None):
    """SOURCE_DATE_EPOCH = the run's date while the PDF is written: the font subsetter
    (fontTools) stamps embedded fonts with it instead of the current time."""
    saved = os.environ.get("SOURCE_DATE_EPOCH")
    try:
        stamp = dt.datetime.fromisoformat(iso) if iso else dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    except ValueError:
        stamp = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    os.environ["SOURCE_DATE_EPOCH"] = str(int(stamp.timestamp()))
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("SOURCE_DATE_EPOCH", None)
        else:
            os.environ["SOURCE_DATE_EPOCH"] = saved


def render_html(context: dict, template: str = "report.html.j2", screen: bool = False) -> str:
    """The page for print (what the PDF is made of), or with ``screen`` for a browser."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    css, screen_css = ((TEMPLATES / name).read_text(encoding="utf-8") for name in ("print.css", "screen.css"))
    return env.get_template(template).render(
        **context,
        css=markupsafe.Markup(css),
        screen=screen,  # our own files
        screen_css=markupsafe.Markup(screen_css),
    )
