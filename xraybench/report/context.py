"""The report's context: results.json turned into a plain structure of strings, tables and figure data URIs,
section by section (``answers``, ``method``, ``tasks``, ``views``, ``sweeps``, ``published``, ``analysis``,
``model_card``, ``appendix``, and the regression check against a baseline), with the anchors the browser's table of
contents leads to; the template only loops over it. The declared comparisons are decided once
(``results.decisions``), and the Answers and the task sections word the same decisions."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from xraybench import check, results
from xraybench.report import appendix, console
from xraybench.report.analysis import test_set_analysis
from xraybench.report.answers import answers
from xraybench.report.checklist import checklist_table
from xraybench.report.comparisons import CaseComparison, compare_cases
from xraybench.report.method import dataset, facts, method
from xraybench.report.model_card import model_card
from xraybench.report.published import published_section
from xraybench.report.tables import Table
from xraybench.report.tasks import task_content
from xraybench.report.views import VIEWS
from xraybench.results import CaseResult, Run, SuiteInfo, by_case, decisions

RANDOM_INIT_BANNER = (
    "Random initialisation — not a pretrained result. This run built its ImageNet backbones from "
    "random weights (xraybench run --random-init) to exercise the code; its transfer-learning "
    "numbers say nothing about pretrained models."
)


def build_context(run: Run | dict) -> dict:
    """What the templates loop over, from a run (or the dict of one)."""
    run = results.coerce(run)
    cases = by_case(run)
    compared = {
        (d.pair.a, d.pair.b): compare_cases(cases[d.pair.a], cases[d.pair.b], d) for d in decisions.decided(run)
    }
    sections = _sections(run, cases, compared)
    links = {(section["suite"], task["key"]): task["anchor"] for section in sections for task in section["tasks"]}
    return {
        "title": "Chest X-ray classification: " + ", ".join(s.title for s in _suites(run).values()),
        "run_id": run.run_id or "",
        "created": run.datetime or "",
        "date": (run.datetime or "")[:10],
        "facts": facts(run),
        "banner": RANDOM_INIT_BANNER if run.settings.random_init else None,
        "dataset": dataset(run.data),
        "answers": answers(run, list(compared.values()), links),
        "method": method(cases),
        "sections": sections,
        "analysis": test_set_analysis(run.data, [c for c in cases.values() if c.ok]),
        "per_seed": appendix.per_seed_table(cases),
        "problems": appendix.problems(cases),
        "appendix": appendix.configurations(cases),
        "environment": appendix.environment(run),
        "workers": appendix.workers(run.cases),
        "checklist": checklist_table(),
        "check": None,
        "anchors": ANCHORS,
    }


# Where the browser's table of contents leads: the report's fixed sections (a suite's and a task's are theirs).
ANCHORS = {
    "answers": "answers",
    "seeds": "how-the-seeds-were-chosen",
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

    entries = [entry(ANCHORS["answers"], "Answers")]
    if context["answers"]["seeds"]:
        entries.append(entry(ANCHORS["seeds"], "How the seeds were chosen", 3))
    entries.append(entry(ANCHORS["method"], "How to read the numbers", 3))
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


def check_section(run: Run, baseline_path: Path) -> dict:
    """The regression check against a stored baseline: its verdict table, or why nothing was compared."""
    baseline = check.read_baseline(baseline_path)
    named = f"{baseline.name} ({baseline_path.name}, {baseline.created})"
    try:
        verdicts = check.compare(run, baseline)
    except check.CheckError as exc:  # another profile, data or test images: the report says so and compares nothing
        return {
            "baseline": named,
            "table": None,
            "warnings": [str(exc)],
            "verdict": "not compared",
        }
    return {
        "baseline": named,
        "table": Table(console.VERDICT_HEADERS, console.verdict_rows(verdicts), numeric_from=99),
        "warnings": check.environment_warnings(run, baseline)
        + [f"{n} case(s) with {check.ONE_SEED}" for n in [sum(check.ONE_SEED in v.note for v in verdicts)] if n],
        "verdict": "regression" if check.exit_code(verdicts) else "no regression",
    }


def _suites(run: Run) -> dict[str, SuiteInfo]:
    """The suites of the run's rows, in order, as declared (a suite the run did not record: its name as title)."""
    names = dict.fromkeys(r.suite or "" for r in run.cases)
    return {n: run.suites.get(n) or SuiteInfo(title=n.upper()) for n in names}


def _sections(run: Run, cases: dict[str, CaseResult], compared: dict[tuple[str, str], CaseComparison]) -> list[dict]:
    suites = _suites(run)
    by_task: dict[tuple[str, str], list[CaseResult]] = defaultdict(list)
    for case in cases.values():
        by_task[(case.first.suite or "", case.first.task or "")].append(case)
    sections = []
    for suite, meta in suites.items():
        suite_cases = [c for c in cases.values() if c.first.suite == suite]
        if not any(c.ok for c in suite_cases):  # nothing to show but why: one line, and the published block
            sections.append(
                _section(
                    suite,
                    meta.title,
                    [],
                    published_section(run, suite_cases),
                    None,
                    f"No case of this suite finished ({len(suite_cases)} case(s)); the reasons "
                    f"are under “Skipped and failed cases”.",
                )
            )
            continue
        task_keys = sorted(set(meta.tasks) | {t for (s, t) in by_task if s == suite})
        tasks = []
        for key in task_keys:
            members = by_task.get((suite, key), [])
            view = meta.views.get(key)
            if view:
                content = VIEWS[view](suite_cases, cases)
            elif members:
                content = task_content(run, members, cases, compared)
            else:
                continue  # a declared task none of whose cases ran
            anchor = f"suite-{suite}-{key}"
            tasks.append(
                {
                    "key": key,
                    "title": meta.tasks.get(key, ""),
                    "anchor": anchor,
                    "findings_anchor": f"{anchor}-findings",
                    **content,
                }
            )
        sections.append(
            _section(suite, meta.title, tasks, published_section(run, suite_cases), model_card(run, suite_cases))
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
