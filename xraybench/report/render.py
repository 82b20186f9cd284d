"""The homework-style report, from results.json alone: context → figures → Jinja2 → WeasyPrint.

``build_context`` turns the results into a plain structure of strings, tables and figure data
URIs, section by section (``tasks``, ``views``, ``sweeps``, ``published``, ``analysis``, ``model_card``,
``appendix``); the template only loops over it. The PDF's dates come from the run, so the same
results.json renders to the same bytes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections import defaultdict
from pathlib import Path

import jinja2
import markupsafe

from xraybench import check, results, stats
from xraybench.report import appendix, console
from xraybench.report.analysis import test_set_analysis
from xraybench.report.checklist import checklist_table
from xraybench.report.formatting import pct
from xraybench.report.model_card import model_card
from xraybench.report.published import published_section
from xraybench.report.tables import Table
from xraybench.report.tasks import task_content
from xraybench.report.views import VIEWS
from xraybench.results import CaseResult, by_case

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"

RANDOM_INIT_BANNER = (
    "Random initialisation — not a pretrained result. This run built its ImageNet backbones from "
    "random weights (xraybench run --random-init) to exercise the code; its transfer-learning "
    "numbers say nothing about pretrained models."
)


def render(run_dir: Path, baseline: Path | None = None) -> tuple[Path, Path]:
    """Write report.html and report.pdf into ``run_dir`` from its results.json (and, given a
    baseline file, the regression check against it)."""
    run_dir = Path(run_dir)
    doc = results.read(run_dir)
    context = build_context(doc)
    if baseline is not None:
        context["check"] = _check_section(doc, Path(baseline))
    context["toc"] = table_of_contents(context)
    return write_pages(context, "report.html.j2", run_dir, "report", doc.get("datetime"))


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


def build_context(doc: dict) -> dict:
    rows = doc["cases"]
    cases = by_case(doc)
    software = doc.get("software") or {}
    return {
        "title": "Chest X-ray classification: " + ", ".join(s["title"] for s in _suites(doc, rows).values()),
        "run_id": doc.get("run_id", ""),
        "created": doc.get("datetime", ""),
        "date": (doc.get("datetime") or "")[:10],
        "facts": _facts(doc, software),
        "banner": RANDOM_INIT_BANNER if results.settings(doc)["random_init"] else None,
        "dataset": _dataset(doc.get("data")),
        "method": _method(doc, cases),
        "sections": _sections(doc, cases),
        "analysis": test_set_analysis(doc.get("data"), [c for c in cases.values() if c.ok]),
        "per_seed": appendix.per_seed_table(cases),
        "problems": appendix.problems(cases),
        "appendix": appendix.configurations(cases),
        "environment": appendix.environment(doc),
        "workers": appendix.workers(rows),
        "checklist": checklist_table(),
        "check": None,
        "anchors": ANCHORS,
    }


# Where the browser's table of contents leads: the report's fixed sections (a suite's and a task's are theirs).
ANCHORS = {
    "method": "how-to-read",
    "analysis": "test-set-analysis",
    "check": "regression-check",
    "problems": "problems",
    "per_seed": "appendix-seeds",
    "appendix": "appendix-configurations",
    "checklist": "appendix-checklist",
    "environment": "appendix-environment",
}


def table_of_contents(context: dict) -> list[dict]:
    """The report's sections, tasks and their findings, in page order, with the anchors their headings carry on
    screen."""

    def entry(anchor: str, label: str, level: int = 2) -> dict:
        return {"anchor": anchor, "label": label, "level": level}

    entries = [entry(ANCHORS["method"], "How to read the numbers", 3)]
    for section in context["sections"]:
        entries.append(entry(section["anchor"], section["title"]))
        if section["published"]:
            entries.append(entry(section["published_anchor"], "Published results", 3))
        for task in section["tasks"]:
            title = f"Task {task['key']}" + (f": {task['title']}" if task["title"] else "")
            entries.append(entry(task["anchor"], title, 3))
            if task["findings"]:  # what a task concluded, one click away
                entries.append(entry(task["findings_anchor"], "Findings", 4))
        if section["card"]:
            entries.append(entry(section["card_anchor"], "Model card", 3))
    entries.append(entry(ANCHORS["analysis"], "Test-set analysis"))
    if context["check"]:
        entries.append(entry(ANCHORS["check"], "Regression check"))
    entries.append(entry(ANCHORS["problems"], "Skipped and failed cases"))
    if context["per_seed"]:
        entries.append(entry(ANCHORS["per_seed"], "Appendix: per-seed test metrics"))
    return [
        *entries,
        entry(ANCHORS["appendix"], "Appendix: case configurations"),
        entry(ANCHORS["checklist"], "Appendix: reporting checklist"),
        entry(ANCHORS["environment"], "Appendix: environment"),
    ]


def _check_section(doc: dict, baseline_path: Path) -> dict:
    baseline = check.read_baseline(baseline_path)
    try:
        verdicts = check.compare(doc, baseline)
    except check.CheckError as exc:  # another profile, data or test images: the report says so and compares nothing
        return {
            "baseline": f"{baseline.get('name')} ({baseline_path.name}, {baseline.get('created')})",
            "table": None,
            "warnings": [str(exc)],
            "verdict": "not compared",
        }
    return {
        "baseline": f"{baseline.get('name')} ({baseline_path.name}, {baseline.get('created')})",
        "table": Table(console.VERDICT_HEADERS, console.verdict_rows(verdicts), numeric_from=99),
        "warnings": check.environment_warnings(doc, baseline)
        + [f"{n} case(s) with {check.ONE_SEED}" for n in [sum(check.ONE_SEED in v.note for v in verdicts)] if n],
        "verdict": "regression" if check.exit_code(verdicts) else "no regression",
    }


def _suites(doc: dict, rows: list[dict]) -> dict:
    declared = doc.get("suites") or {}
    names = list(dict.fromkeys(r.get("suite", "") for r in rows))
    return {
        n: {
            "title": declared.get(n, {}).get("title", n.upper()),
            "tasks": declared.get(n, {}).get("tasks", {}),
            "views": declared.get(n, {}).get("views", {}),
        }
        for n in names
    }


def _facts(doc: dict, software: dict) -> list[tuple[str, str]]:
    commit = doc.get("commit_info") or {}
    gpu = software.get("gpu")
    device = software.get("device", "")
    if gpu:
        device += f" ({gpu['name']}, {gpu['memory_gb']} GB)"
    versions = ", ".join(f"{k} {software[k]}" for k in ("xraybench", "torch", "torchvision", "cuda") if software.get(k))
    return [
        ("Run", doc.get("run_id", "")),
        ("Date", doc.get("datetime", "")),
        ("Profile", doc.get("profile", "")),
        ("Device", device),
        ("Precision", _precision(doc)),
        ("Deterministic", _deterministic(doc, software)),
        ("Software", versions),
        ("Commit", (commit.get("id") or "unknown")[:12] + (" (uncommitted changes)" if commit.get("dirty") else "")),
    ]


def _deterministic(doc: dict, software: dict) -> str:
    if results.settings(doc)["deterministic"]:
        return "yes (deterministic algorithms only)"
    return "no (cuDNN autotuning)" if software.get("device") == "cuda" else "no"


def _precision(doc: dict) -> str:
    recorded = (doc.get("settings") or {}).get("precision") or {}
    name = results.settings(doc)["precision"]
    if name == "fp32":
        text = "fp32"
    else:
        text = f"{name} autocast (output layer and loss in fp32{', loss scaling' if name == 'fp16' else ''})"
    return text + (f"; {recorded['reason']}" if recorded.get("reason") else "")


def _dataset(data: dict | None) -> dict:
    if not data:
        return {"name": "no data recorded", "location": "", "notes": [], "table": None}
    splits = data.get("splits", {})
    table = Table(
        ["split", "images", "normal", "pneumonia", "pneumonia share"],
        [
            [name, s["images"], s["normal"], s["pneumonia"], pct(s["pneumonia"] / max(s["images"], 1))]
            for name, s in splits.items()
        ],
    )
    return {
        "name": f"{data.get('name')} ({data.get('kind')})",
        "location": data.get("location", ""),
        "notes": data.get("notes", []),
        "table": table,
    }


def _method(doc: dict, cases: dict[str, CaseResult]) -> list[str]:
    """How to read the numbers: seeds, intervals, tests."""
    counts = sorted({len(c.rows) for c in cases.values() if c.ok})
    seeds = " or ".join(str(n) for n in counts) or "no"
    text = [
        f"Each case ran with {seeds} seed(s) (a seed sets initialisation, data order, dropout and augmentation). "
        "Numbers are means ± sd over seeds. A 95% interval of a mean over seeds counts the seeds' spread and "
        "the sampling of the test images; a case with one seed gets the interval on its test images (Wilson for "
        "proportions, DeLong for AUC, BCa bootstrap for F1).",
        f"A sentence names a better case only when a test of the two training procedures rejects at α = "
        f"{stats.ALPHA}: the difference of their mean test accuracy (or AUC) over seeds, with a standard error "
        "that counts each side's seed-to-seed spread and the sampling of the test images, referred to a t "
        "distribution with Welch–Satterthwaite degrees of freedom, the reference of the difference's 95% "
        "interval too. A comparison's accuracy and AUC claims are held together (Holm), and so are the pairs a "
        "view tests at once; the adjusted p is shown where it differs. With one seed a side the seed variation "
        "is unknown and nothing is tested. The sign test on per-image correctness (exact McNemar per seed) "
        "is shown too, as a statement "
        "about these trained networks only. A simulation in benchmarks/stat_calibration.py shows that these "
        "tests keep their 5% level when seeds vary.",
    ]
    if len(counts) > 1:
        fewer = [c.id for c in cases.values() if c.ok and len(c.rows) == counts[0]]
        text.append(
            f"Cases with {counts[0]} seed(s) here: the profile runs fewer seeds for them to keep the run "
            f"short ({', '.join(fewer[:6])}{', …' if len(fewer) > 6 else ''}); their intervals are wider."
        )
    return text


def _sections(doc: dict, cases: dict[str, CaseResult]) -> list[dict]:
    rows = list(doc["cases"])
    suites = _suites(doc, rows)
    by_task: dict[tuple[str, str], list[CaseResult]] = defaultdict(list)
    for case in cases.values():
        by_task[(case.first.get("suite", ""), case.first.get("task", ""))].append(case)
    sections = []
    for suite, meta in suites.items():
        suite_cases = [c for c in cases.values() if c.first.get("suite") == suite]
        if not any(c.ok for c in suite_cases):  # nothing to show but why: one line, and the published block
            sections.append(
                _section(
                    suite,
                    meta["title"],
                    [],
                    published_section(doc, suite_cases),
                    None,
                    f"No case of this suite finished ({len(suite_cases)} case(s)); the reasons "
                    f"are under “Skipped and failed cases”.",
                )
            )
            continue
        task_keys = sorted(set(meta["tasks"]) | {t for (s, t) in by_task if s == suite})
        tasks = []
        for key in task_keys:
            members = by_task.get((suite, key), [])
            view = meta["views"].get(key)
            if view:
                content = VIEWS[view](suite_cases, cases)
            elif members:
                content = task_content(doc, members, cases)
            else:
                continue  # a declared task none of whose cases ran
            anchor = f"suite-{suite}-{key}"
            tasks.append(
                {
                    "key": key,
                    "title": meta["tasks"].get(key, ""),
                    "anchor": anchor,
                    "findings_anchor": f"{anchor}-findings",
                    **content,
                }
            )
        sections.append(
            _section(suite, meta["title"], tasks, published_section(doc, suite_cases), model_card(doc, suite_cases))
        )
    return sections


def _section(
    suite: str, title: str, tasks: list[dict], published: dict | None, card: dict | None, note: str = ""
) -> dict:
    """A suite's part of the report, with the anchors its headings carry (the table of contents links them)."""
    anchor = f"suite-{suite}"
    return {
        "suite": suite,
        "title": title,
        "tasks": tasks,
        "published": published,
        "card": card,
        "note": note,
        "anchor": anchor,
        "published_anchor": f"{anchor}-published",
        "card_anchor": f"{anchor}-card",
    }
