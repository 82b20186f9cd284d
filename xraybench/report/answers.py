"""The report's opening: each task's question and what its declared comparisons answer — the outcome in plain words,
the evidence as ``claims`` words it (Δ, the interval the outcome used, the test, the seeds) and a link to the task's
section — so that a reader gets the answers before the method; and, under ``--seeds auto``, how the seeds were chosen
(every look of ``run.looks``), so the stopping can be audited. Rows only; the template loops over them."""

from __future__ import annotations

from collections import defaultdict

import markupsafe

from xraybench import stats
from xraybench.report.claims import FEW_SEEDS, UNMEASURED, Units, title
from xraybench.report.comparisons import CaseComparison
from xraybench.report.formatting import p_value
from xraybench.report.tables import Table
from xraybench.results import Run

CAPTION = (
    "Each task's question (its title where none is declared), answered by the comparisons its cases declare. A case "
    "is better when the two-sided t test rejects (its interval excludes zero); equivalent within ±margin when both "
    "one-sided tests reject a larger difference (its interval lies inside the margin); undecided when neither (its "
    f"interval holds zero); not tested with fewer than {stats.MIN_SEEDS} seeds a side. The first metric a question "
    "names decides; each next one is tested only once every one before it was decided. Each interval is the one "
    "its outcome used{where}. The task's section has the details."
)

LOOK_HEADERS = ["A vs B", "metric", "outcome", "look (round)", "seeds", "Δ (A − B)", "p", "this look's level"]


def answers(run: Run, comparisons: list[CaseComparison], links: dict[tuple[str, str], str]) -> dict:
    """The Answers: a row per comparison, grouped by task (``links``: (suite, task) → the anchor of its section),
    the question on the first row of its task; and the looks of --seeds auto."""
    by_task: dict[tuple[str, str], list[CaseComparison]] = defaultdict(list)
    for c in comparisons:
        by_task[c.decision.pair.suite, c.decision.pair.task].append(c)
    asked = {(s, t) for s, info in run.suites.items() for t in info.questions}
    present = {(r.suite or "", r.task or "") for r in run.cases}
    rows = []
    for suite, task in sorted(set(by_task) | (asked & present), key=lambda k: (_suite_order(run, k[0]), k[1])):
        found = by_task.get((suite, task), [])
        head = {
            "question": _question(run, suite, task),
            "task": f"{suite} task {task}",
            "anchor": links.get((suite, task)),
            "rowspan": max(len(found), 1),
        }
        if not found:
            rows.append({**head, "answer": "No declared comparison of this task finished in this run.", "evidence": []})
        for i, c in enumerate(found):
            rows.append({**(head if i == 0 else {"question": None}), "answer": answer(c), "evidence": evidence(c)})
    return {
        "rows": rows,
        "caption": CAPTION.format(
            where=", at the level of the look where its seeds stopped" if run.settings.seeds == "auto" else ""
        ),
        "empty": "No task of this run declares a comparison between cases that finished.",
        "seeds": seeds_chosen(run, comparisons),
    }


def answer(c: CaseComparison) -> str:
    """ "hw3-a-cnn-dropout vs hw3-a-cnn: hw3-a-cnn-dropout has the smaller train − validation accuracy gap; test
    accuracy undecided after 5 and 5 seeds"."""
    said = c.claims()
    if all(claim.kind == UNMEASURED for claim in said):
        return f"{c.a} vs {c.b}: not tested ({said[0].unmeasured})"
    if said[0].kind == FEW_SEEDS:
        said = said[:1]
    return f"{c.a} vs {c.b}: " + "; ".join(claim.phrase() for claim in said)


def evidence(c: CaseComparison) -> list[str]:
    """The claims as the findings state them, one sentence each (the primary one with its seeds)."""
    said = c.claims()
    if said[0].kind == FEW_SEEDS:
        return [said[0].sentence()]
    return [claim.sentence() for claim in said if claim.kind != UNMEASURED]


def seeds_chosen(run: Run, comparisons: list[CaseComparison]) -> dict | None:
    """Under --seeds auto: what the procedure did, and each look at each comparison (None for a fixed number)."""
    if run.settings.seeds != "auto":
        return None
    limits = [f"up to {run.settings.max_seeds} seeds a case"] if run.settings.max_seeds else []
    if run.settings.budget_s:
        limits.append(f"no round started past {run.settings.budget_s:.0f} s of training")
    text = (
        f"--seeds auto: each compared case started with at least {stats.MIN_SEEDS} seeds. After each round, every "
        "comparison not yet decided was looked at: its first metric was tested at the look's level, which spends "
        f"{stats.sequential.SPENT} over the looks (O'Brien–Fleming type, so an early stop needs a clear result; "
        f"{stats.sequential.SPENT} rather than α = {stats.ALPHA} because simulation showed the looks' small-sample "
        "tests together run a little over their level); the cases of comparisons still undecided got one more seed"
        + (f" ({'; '.join(limits)})" if limits else "")
        + ". A comparison's outcome is the one at its last look; the report states it at that look's level."
    )
    rows, shown = [], set()
    order = {(c.a, c.b): i for i, c in enumerate(comparisons)}
    looks = sorted(enumerate(run.looks), key=lambda x: (order.get((x[1].a, x[1].b), len(order)), x[0]))
    count: dict[tuple[str, str], int] = defaultdict(int)
    for _, look in looks:
        key = (look.a, look.b)
        count[key] += 1
        u = Units(look.metric)
        rows.append(
            [
                "" if key in shown else markupsafe.Markup("{}<br>vs {}").format(look.a, look.b),
                title(look.metric),
                {"A better": f"{look.a} better", "B better": f"{look.b} better", "untested": "not tested"}.get(
                    look.outcome, look.outcome
                ),
                f"{count[key]} ({look.round})",
                f"{look.seeds_a} / {look.seeds_b}",
                u.signed(look.difference),
                "–" if look.p_value is None else p_value(look.p_value),
                f"{look.level:.2g}",
            ]
        )
        shown.add(key)
    table = Table(LOOK_HEADERS, rows, numeric_from=3, css_class="looks")
    return {"text": text, "table": table if rows else None}


def _question(run: Run, suite: str, task: str) -> str:
    info = run.suites.get(suite)
    if info is None:
        return f"Task {task}"
    question = info.questions.get(task)
    return question.text if question else info.tasks.get(task) or f"Task {task}"


def _suite_order(run: Run, suite: str) -> int:
    names = list(dict.fromkeys(r.suite or "" for r in run.cases))
    return names.index(suite) if suite in names else len(names)
