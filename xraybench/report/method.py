"""The report's method, before any result: how the run was made (machine, precision, determinism, software,
commit), the data it read, and how to read the numbers (seeds, intervals, the tests behind a verdict)."""

from __future__ import annotations

from xraybench import stats
from xraybench.report.formatting import pct
from xraybench.report.tables import Table
from xraybench.results import CaseResult, DataInfo, Run, Settings


def facts(run: Run) -> list[tuple[str, str]]:
    software, commit = run.software, run.commit_info
    gpu = software.get("gpu")
    device = str(software.get("device", ""))
    if isinstance(gpu, dict):
        device += f" ({gpu.get('name', 'a GPU')}, {gpu.get('memory_gb', '?')} GB)"
    elif gpu:
        device += f" ({gpu})"
    versions = ", ".join(f"{k} {software[k]}" for k in ("xraybench", "torch", "torchvision", "cuda") if software.get(k))
    return [
        ("Run", run.run_id or ""),
        ("Date", run.datetime or ""),
        ("Profile", run.profile or ""),
        ("Device", device),
        ("Precision", _precision(run)),
        ("Deterministic", _deterministic(run.settings, software)),
        *([("Seed batching", batched)] if (batched := _seed_batching(run)) else []),
        ("Software", versions),
        ("Commit", str(commit.get("id") or "unknown")[:12] + (" (uncommitted changes)" if commit.get("dirty") else "")),
    ]


def _seed_batching(run: Run) -> str | None:
    """How many trainings shared a pass with other seeds of their case (train/seed_batch.py); None if none did."""
    batched = [r for r in run.cases if r.ok and len(r.metrics.seeds_batched or ()) > 1]
    if not batched:
        return None
    most = max(len(r.metrics.seeds_batched) for r in batched)
    return (
        f"{len(batched)} of {sum(r.ok for r in run.cases)} trainings with the other seeds of their case in one pass "
        f"(up to {most}, as one stacked model); a seed's time is its share of its pass, its peak memory the pass's"
    )


def _deterministic(settings: Settings, software: dict) -> str:
    if settings.deterministic:
        return "yes (deterministic algorithms only)"
    return "no (cuDNN autotuning)" if software.get("device") == "cuda" else "no"


_TF32 = {  # what fp32 meant on CUDA: settings.tf32 (None: a run from before --tf32, under PyTorch's defaults)
    True: " with TF32 products (--tf32)",
    False: " (no TF32)",
    None: " (TF32 unrecorded: PyTorch's defaults, convolutions in TF32)",
}


def _on_cuda(run: Run) -> bool:
    return run.software.get("device") == "cuda"


def _precision(run: Run) -> str:
    """The run's precision, and the trainings that ran in another (a published protocol's fp32 under auto)."""
    name, reason = run.settings.precision.name, run.settings.precision.reason
    ok = [r for r in run.cases if r.ok]
    others = sorted({r.metrics.precision for r in ok if r.metrics.precision not in (None, name)})
    if name == "fp32":
        text = "fp32" + _TF32[run.settings.tf32] * _on_cuda(run)
    else:
        text = f"{name} autocast (output layer and loss in fp32{', loss scaling' if name == 'fp16' else ''})"
    text += f"; {reason}" if reason else ""
    counts = {other: sum(r.metrics.precision == other for r in ok) for other in others}
    return text + "".join(
        f"; {other} in {n} of {len(ok)} trainings (a published protocol trains in fp32 under auto)"
        for other, n in counts.items()
    )


def dataset(data: DataInfo | None) -> dict:
    if not data:
        return {"name": "no data recorded", "location": "", "notes": [], "table": None}
    table = Table(
        ["split", "images", "normal", "pneumonia", "pneumonia share"],
        [
            [name, s.images, s.normal, s.pneumonia, pct(s.pneumonia / max(s.images, 1))]
            for name, s in data.splits.items()
        ],
    )
    return {
        "name": f"{data.name} ({data.kind})",
        "location": data.location or "",
        "notes": data.notes,
        "table": table,
    }


def method(cases: dict[str, CaseResult]) -> list[str]:
    """How to read the numbers: seeds, intervals, tests."""
    counts = sorted({len(c.rows) for c in cases.values() if c.ok})
    seeds = " or ".join(str(n) for n in counts) or "no"
    text = [
        f"Each case ran with {seeds} seed(s) (a seed sets initialisation, data order, dropout and augmentation). "
        "Numbers are means ± sd over seeds. A 95% interval of a mean over seeds counts the seeds' spread and "
        "the sampling of the test images; a case with one seed gets the interval on its test images (Wilson for "
        "proportions, DeLong for AUC, BCa bootstrap for F1).",
        f"Each declared comparison ends in one of four outcomes, decided once (results.decisions) and stated "
        "everywhere the same: a case is better when the two-sided t test of the two training procedures rejects at "
        f"the level (α = {stats.ALPHA} for a fixed number of seeds), and its interval, which excludes zero, is "
        "printed; equivalent within ±margin when both one-sided tests reject a larger difference (the 90% interval "
        "lies inside the margin); undecided otherwise, with its interval, which holds zero, and the smallest "
        f"difference these seeds detect with 80% power; not tested with fewer than {stats.MIN_SEEDS} seeds a side. "
        "The difference of the means over seeds gets a standard error that counts each side's seed-to-seed spread "
        "and the sampling of the test images, referred to a t distribution with Welch–Satterthwaite degrees of "
        "freedom. A task's question names its metrics (test accuracy, then AUC, unless it says otherwise); the "
        "first decides and each next one is tested only once every one before it was decided, which holds the "
        "claims at α without an adjustment. Under --seeds auto each outcome is stated at the level of the look "
        "where its seeds stopped. A view that tests many pairs at once holds them together with Holm's "
        "adjustment. The sign test on per-image correctness (exact McNemar per seed) is shown too, as a "
        "statement about these trained networks only. A simulation in benchmarks/stat_calibration.py shows that "
        "these tests keep their 5% level when seeds vary.",
    ]
    if len(counts) > 1:
        fewer = [c.id for c in cases.values() if c.ok and len(c.rows) == counts[0]]
        text.append(
            f"Cases with {counts[0]} seed(s) here: the profile runs fewer seeds for them to keep the run "
            f"short ({', '.join(fewer[:6])}{', …' if len(fewer) > 6 else ''}); their intervals are wider."
        )
    return text
