"""Short findings paragraphs generated from a task's numbers; they state only what the numbers show."""

from __future__ import annotations


def pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def pp(x: float) -> str:
    return f"{100 * x:+.1f} pp"


def task_findings(rows: list[dict]) -> list[str]:
    """Sentences comparing the finished cases of one task (rows with status ok)."""
    rows = [r for r in rows if r["status"] == "ok"]
    if not rows:
        return ["No case of this task finished."]
    name = lambda r: r["label"]  # noqa: E731
    out = []
    if len(rows) > 1:
        ranked = sorted(rows, key=lambda r: -r["metrics"]["test_acc"])
        best, worst = ranked[0], ranked[-1]
        out.append(f"{name(best)} reached the highest test accuracy ({pct(best['metrics']['test_acc'])}, AUC "
                   f"{_auc(best)}); {name(worst)} the lowest ({pct(worst['metrics']['test_acc'])}, AUC {_auc(worst)}).")
    gaps = [(r, r["history"][-1]["train_acc"] - r["history"][-1]["val_acc"]) for r in rows]
    text = "; ".join(f"{name(r)} {pp(g)}" for r, g in gaps)
    sentence = f"Train minus validation accuracy at the last epoch: {text}."
    if len(rows) > 1:
        smallest = min(gaps, key=lambda item: abs(item[1]))[0]
        sentence += f" The gap is smallest for {name(smallest)}."
    out.append(sentence)
    loss_gaps = "; ".join(f"{name(r)} {r['history'][-1]['val_loss'] - r['history'][-1]['train_loss']:+.3f}" for r in rows)
    out.append(f"Validation minus training loss at the last epoch: {loss_gaps}.")
    if len(rows) > 1:
        fast = min(rows, key=lambda r: r["metrics"]["s_per_epoch"])
        slow = max(rows, key=lambda r: r["metrics"]["s_per_epoch"])
        if slow is not fast:
            ratio = slow["metrics"]["s_per_epoch"] / fast["metrics"]["s_per_epoch"]
            out.append(f"{name(slow)} took {ratio:.1f}× the time per epoch of {name(fast)} "
                       f"({slow['metrics']['s_per_epoch']:.2f} s vs {fast['metrics']['s_per_epoch']:.2f} s).")
    drops = [r["metrics"]["best_val_acc"] - r["metrics"]["test_acc"] for r in rows]
    out.append(f"Test accuracy is {_span([-d for d in drops])} relative to the best validation accuracy.")
    return out


def _auc(row: dict) -> str:
    auc = row["metrics"].get("test_auc")
    return "n/a" if auc is None else f"{auc:.3f}"


def _span(values: list[float]) -> str:
    lo, hi = min(values), max(values)
    return pp(lo) if abs(hi - lo) < 5e-4 else f"between {pp(lo)} and {pp(hi)}"
