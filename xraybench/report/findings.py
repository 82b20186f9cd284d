"""Short findings paragraphs generated from a task's numbers; they state only what the numbers show.

A sentence that names a better case, an equivalence or an undecided comparison states the outcome
``results.decisions`` reached, with the interval it used (``report.comparisons``); every other number is given with
its spread over seeds.
"""

from __future__ import annotations

from xraybench import results, stats
from xraybench.report.comparisons import CaseComparison
from xraybench.report.formatting import mean_sd, p_is, plural, pp
from xraybench.results import CaseResult, Epoch


def task_findings(cases: list[CaseResult], comparisons: list[CaseComparison]) -> list[str]:
    """Sentences about the finished cases of one task and the comparisons declared between them."""
    cases = [c for c in cases if c.ok]
    if not cases:
        return ["No case of this task finished."]
    out = degenerate_findings(cases)  # first: they say what the accuracies and comparisons below are worth
    out += [c.sentence() for c in comparisons]
    gaps = "; ".join(f"{c.id} {mean_sd([h.train_acc - h.val_acc for h in _last(c)], write=pp)}" for c in cases)
    out.append(f"Train minus validation accuracy at the last epoch (mean ± sd over seeds): {gaps}.")
    loss_gaps = "; ".join(
        f"{c.id} {mean_sd([h.val_loss - h.train_loss for h in _last(c)], write=_loss)}" for c in cases
    )
    out.append(f"Validation minus training loss at the last epoch: {loss_gaps}.")
    out += _time_findings(cases)
    drops = [gap for c in cases for r in c.ok if (gap := r.metrics.test_val_gap) is not None]
    out.append(f"Test accuracy is {_span(drops)} relative to the best validation accuracy (every seed of every case).")
    return out


def degenerate_findings(cases: list[CaseResult]) -> list[str]:
    """A sentence per case with degenerate seeds (``results.row_degeneracy``): an accuracy that reads like learning
    may be one class called for every image."""
    out = []
    for case in cases:
        found = {r.seed: why for r in case.ok if (why := results.row_degeneracy(case.run, r))}
        if not found:
            continue
        details = "; ".join(f"seed {seed}: {str(why).replace('; ', ', ')}" for seed, why in found.items())
        out.append(
            f"{case.id}: {len(found)} of {plural(len(case.ok), 'seed')} "
            f"{'are' if len(found) > 1 else 'is'} degenerate ({details}): {_worth(found)}."
        )
    return out


def _worth(found: dict) -> str:
    """What degenerate seeds are worth: the class they call for (nearly) every image, or a chance ranking."""
    called = {seed: why.called for seed, why in found.items() if why.called}
    ranked = [seed for seed in found if seed not in called]
    both, parts = called and ranked, []
    if called:
        labels = set(called.values())
        parts.append(
            f"no better than predicting {labels.pop() if len(labels) == 1 else 'one class'} for every image"
            + (f" ({_seeds(called)})" if both else "")
        )
    if ranked:
        which = _seeds(ranked) + ", " if both else ""
        values = ", ".join(f"{found[seed].auc:.3f}" for seed in ranked)
        parts.append(f"ranks the test images no better than chance ({which}AUC {values})")
    return ", and ".join(parts)


def _seeds(seeds) -> str:
    seeds = list(seeds)
    return f"seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}"


def _time_findings(cases: list[CaseResult]) -> list[str]:
    """The slowest against the fastest case per epoch, tested over each seed's median epoch time (Welch's t;
    a seed's epochs share its machine state and are no independent samples)."""
    if len(cases) < 2:
        return []
    mean_time = {c.id: stats.across_seeds(c.values("s_per_epoch")).mean for c in cases}
    fast = min(cases, key=lambda c: mean_time[c.id])
    slow = max(cases, key=lambda c: mean_time[c.id])
    if slow is fast:
        return []
    slow_s, fast_s = (mean_sd(c.values("s_per_epoch"), write=_seconds) for c in (slow, fast))
    times = f"{slow_s} vs {fast_s}"
    ratio = f"{mean_time[slow.id] / mean_time[fast.id]:.1f}×"
    b, n = fast.epoch_medians(), slow.epoch_medians()
    if len(b) < 2 or len(n) < 2:
        return [
            f"{slow.id} took {ratio} the time per epoch of {fast.id} ({times}; fewer than 2 seeds a side: "
            f"a measurement, not a tested difference)."
        ]
    p = stats.welch_worse(b, n, higher_is_better=False)
    if not stats.significant(p):
        return [f"No detectable difference in time per epoch between {slow.id} and {fast.id} ({times})."]
    return [
        f"{slow.id} took {ratio} the time per epoch of {fast.id} ({times}; Welch's t over each seed's median "
        f"epoch time, {p_is(p)})."
    ]


def _last(case: CaseResult) -> list[Epoch]:
    """Each ok seed's last epoch (seeds without a history left out)."""
    return [r.history[-1] for r in case.ok if r.history]


def _loss(x: float) -> str:
    return f"{x:+.3f}"


def _seconds(x: float) -> str:
    return f"{x:.2f} s"


def _span(values: list[float]) -> str:
    lo, hi = min(values), max(values)
    return pp(lo) if abs(hi - lo) < 5e-4 else f"between {pp(lo)} and {pp(hi)}"
