"""When a model says PNEUMONIA (``THRESHOLD``), and when a difference is declared: the one rule behind every
"A is higher", "ours lower" and "worse" that the report, the findings and the history state.

A difference is declared only when its test could be run (``testable``: each side has the seeds a spread needs)
and its p — Holm-adjusted where the test is one of a family of claims — is below ``ALPHA``; its direction is then
the sign of Δ. A one-sided test asks about one direction only, so there ``significant`` alone decides.

The regression check reads its tests by a rule of its own (``check.metric_verdicts``): a change beyond the
tolerance is a regression unless a test says it is noise, so an untestable change is decided by the tolerance,
and p = α counts (as its Mann–Whitney feasibility check assumes).
"""

from __future__ import annotations

ALPHA = 0.05
THRESHOLD = 0.5  # P(pneumonia) above it says PNEUMONIA (``says_pneumonia``)


def says_pneumonia(probs):
    """The decision rule, in one place: PNEUMONIA where P(pneumonia) > 0.5, strictly — MedMNIST's evaluator
    (``y_score > threshold``), Keras's binary accuracy and an argmax over two classes all call a tie NORMAL.
    Takes and returns numpy arrays or torch tensors alike."""
    return probs > THRESHOLD


def accuracy(labels, probs) -> float:
    """The share of images the rule labels right (labels 1 = PNEUMONIA)."""
    return float((says_pneumonia(probs) == (labels == 1)).mean())


def significant(p: float | None, testable: bool = True) -> bool:
    """Whether a test declares a difference: it could be run and its p (Holm-adjusted in a family) is below α."""
    return testable and p is not None and p < ALPHA


def direction(delta: float, p: float | None, testable: bool = True) -> int | None:
    """+1 (Δ > 0) or −1 where a difference is declared, 0 where the test finds none, None where nothing was
    tested (``testable`` false, or no p)."""
    if not testable or p is None:
        return None
    if not significant(p):
        return 0
    return 1 if delta > 0 else -1
