"""``--seeds auto``: seeds added in rounds to the cases of comparisons still undecided, until each is decided or a limit
is hit.

Every compared case starts with its usual seeds, at least the 3 a verdict needs. After each round every comparison
not yet decided is looked at (``results.decisions.take_look``: its first metric at the look's group-sequential
level); the cases of those still undecided get one more seed, up to ``max_seeds``, and the next round trains them
on the executor like any other trainings. A decided comparison is not looked at again. Each look is recorded in
results.json (``run.looks``) so a reader can audit why the seeds stopped where they did. The looks are a function of
the rows alone: a run killed mid-round and started again recomputes them from the rows it kept and trains only the
seeds still missing. No round starts that would end past ``budget_s`` (its time estimated from the last round's).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from xraybench import results, stats
from xraybench.cases import Case, Profile
from xraybench.results import Run, decisions
from xraybench.runner.plan import RunError, RunPlan, seed_counts


def default_max_seeds(profile: Profile) -> int:
    """Twice the first round's seeds: quick 6, full 10."""
    return 2 * max(profile.seeds, stats.MIN_SEEDS)


def first_counts(cases: list[Case], plan: RunPlan) -> dict[str, int]:
    """Round 1: each case's usual seeds, at least the ``stats.MIN_SEEDS`` for a case in a comparison of this run."""
    counts = seed_counts(cases, plan)
    ids = set(counts)
    compared = {c.id for c in cases for other in c.compare if other in ids} | {
        other for c in cases for other in c.compare if other in ids and c.id in ids
    }
    counts = {i: max(n, stats.MIN_SEEDS) if i in compared else n for i, n in counts.items()}
    over = {i: n for i, n in counts.items() if n > plan.max_seeds}
    if over:
        case_id, n = next(iter(over.items()))
        raise RunError(
            f"--max-seeds {plan.max_seeds}: below the {n} seeds {case_id} starts with; give --max-seeds {n} or more"
        )
    return counts


def run_rounds(run: Run, cases: list[Case], plan: RunPlan, train: Callable[[dict[str, int], int], None], save, log):
    """Train round after round (``train(counts, round)`` trains what ``counts`` asks and is not yet in ``run``),
    looking at the undecided comparisons after each; ``save()`` writes results.json."""
    started, counts, ids = time.monotonic(), first_counts(cases, plan), {c.id for c in cases}
    fractions: dict[tuple[str, str], tuple[float, ...]] = {}
    run.looks, open_keys, round_ = [], None, 1
    while True:
        round_started = time.monotonic()
        train(counts, round_)
        cases_now = results.by_case(run)
        open_pairs = [
            p
            for p in decisions.pairs(run)
            if p.a in ids and p.b in ids and (open_keys is None or (p.a, p.b) in open_keys)
        ]
        still_open, at_most = {}, {}
        for pair in open_pairs:
            decision = decisions.take_look(
                pair, cases_now, counts, round_, fractions.get((pair.a, pair.b), ()), plan.max_seeds
            )
            if decision is None:  # no new seed (a training failed): still open
                still_open[pair.a, pair.b] = pair
                continue
            look = decision.look
            run.looks.append(look)
            fractions[pair.a, pair.b] = (*fractions.get((pair.a, pair.b), ()), look.fraction)
            if look.outcome in ("undecided", "untested"):
                (still_open if look.fraction < 1 else at_most)[pair.a, pair.b] = pair
        save()
        log(_round_line(round_, run.looks, len(open_pairs), len(still_open)))
        if at_most:
            log(f"seeds: {len(at_most)} comparison(s) undecided at the most seeds a case gets, {plan.max_seeds}")
        grow = sorted({c for a, b in still_open for c in (a, b) if counts[c] < plan.max_seeds})
        if not grow:
            return
        elapsed, last = time.monotonic() - started, time.monotonic() - round_started
        if plan.budget_s is not None and elapsed + last > plan.budget_s:
            log(
                f"seeds: budget of {plan.budget_s:.0f}s reached ({elapsed:.0f}s spent, a round takes about "
                f"{last:.0f}s); {len(still_open)} comparison(s) stay undecided"
            )
            return
        for case_id in grow:
            counts[case_id] += 1
        open_keys, round_ = set(still_open), round_ + 1


def _round_line(round_: int, looks: list, looked: int, still_open: int) -> str:
    decided = [look for look in looks if look.round == round_ and look.outcome not in ("undecided", "untested")]
    words = "; ".join(f"{look.a} vs {look.b}: {look.outcome}" for look in decided)
    return (
        f"seeds: round {round_}: {looked} comparison(s) looked at, {len(decided)} decided"
        + (f" ({words})" if words else "")
        + (f", {still_open} still open" if still_open else "")
    )
