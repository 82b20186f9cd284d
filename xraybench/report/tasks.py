"""A task's own section: which cases it compares and which pairs it tests, assembled from its tables (what was
compared, ``settings_table``; training and test, ``results_tables``; the paired comparisons, ``comparison_table``),
training curves, operating points and findings — or, for a sweep, the sweep's section."""

from __future__ import annotations

from xraybench.report import plots
from xraybench.report.analysis import operating_section
from xraybench.report.comparison_table import comparison_tables
from xraybench.report.comparisons import CaseComparison, compare_cases
from xraybench.report.findings import degenerate_findings, task_findings
from xraybench.report.results_tables import majority_class, test_intervals_of, test_set_table, training_table
from xraybench.report.settings_table import flops, seeds_text, settings_table
from xraybench.report.sweeps import sweep_section
from xraybench.report.tables import task
from xraybench.results import CaseResult, Run
from xraybench.results.decisions import decided

# The appendix and the tests import some of the table modules' names from here, where they lived before.
__all__ = [
    "flops",
    "majority_class",
    "not_finished_note",
    "seeds_text",
    "settings_table",
    "task_content",
    "test_intervals_of",
]


def not_finished_note(members: list[CaseResult]) -> list[str]:
    """One line for a task whose cases did not all finish; the reasons are in one table at the end."""
    bad = [c for c in members if any(not r.ok for r in c.rows)]
    if not bad:
        return []
    kinds = " or ".join(sorted({r.status for c in bad for r in c.rows if not r.ok}))
    names = ", ".join(c.id for c in bad[:4]) + (", …" if len(bad) > 4 else "")
    return [
        f"{len(bad)} of {len(members)} case(s) did not finish ({kinds}: {names}); their reasons are under "
        f"“Skipped and failed cases”."
    ]


def task_content(
    run: Run,
    members: list[CaseResult],
    cases: dict[str, CaseResult],
    comparisons: dict[tuple[str, str], CaseComparison] | None = None,
) -> dict:
    """The task's section; its comparisons as ``results.decisions`` decided them (``comparisons``, keyed by (A, B):
    the run's decided comparisons, computed here when not given)."""
    if comparisons is None:
        comparisons = {(d.pair.a, d.pair.b): compare_cases(cases[d.pair.a], cases[d.pair.b], d) for d in decided(run)}
    not_finished = not_finished_note(members)
    if all(c.first.sweep for c in members):
        section = sweep_section(members, not_finished)
        return {**section, "findings": degenerate_findings([c for c in members if c.ok]) + section["findings"]}
    # Cases a member is compared with (declared in another task) join the comparison.
    compared = [cases[c] for m in members for c in m.first.compare if c in cases]
    involved = list({c.id: c for c in compared + members}.values())
    done = [c for c in involved if c.ok]
    pairs = [
        (m, cases[other]) for m in members for other in m.first.compare if other in cases and m.ok and cases[other].ok
    ]
    ours = [comparisons.get((a.id, b.id)) or compare_cases(a, b) for a, b in pairs]
    tables = []
    if done:
        tables += [training_table(done), test_set_table(run, done)]
    if ours:
        tables += comparison_tables(ours)
    return task(
        settings=settings_table(involved),
        models=[
            {
                "label": c.id,
                "title": c.first.title or "",
                "description": c.first.description or "",
                "seeds": c.seeds,
                "figure": plots.training_curves([r.history for r in c.ok]),
            }
            for c in members
            if c.ok and c.ok[0].history
        ],
        tables=tables,
        findings=task_findings(involved, ours),
        not_finished=not_finished,
        analysis=operating_section(run, done) if done else None,
    )
