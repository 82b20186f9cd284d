"""The report's "Published results": each case that reproduces a published result, our mean and 95% interval
beside the published value, the difference with its interval, and a verdict only where the run is the
protocol itself; every way the run differs from the published protocol is listed."""

from __future__ import annotations

from xraybench import stats
from xraybench.data import medmnist_names as medmnist
from xraybench.report.formatting import METRIC_LABELS, interval, p_is
from xraybench.report.tables import Table
from xraybench.results import CaseResult, Run

HEADERS = ["case", "metric", "ours: mean [95% interval]", "published", "ours − published [95% interval]", "verdict"]
SHORTENED = "protocol shortened — not a reproduction"
DIFFERS = "protocol differs — no verdict"
REPRODUCTION_PROFILE = "full"  # the profile that runs a protocol as declared: no caps, no overrides


def published_section(run: Run, members: list[CaseResult]) -> dict | None:
    """The section for one suite's cases that carry a published reference; None when none does."""
    cited = [c for c in members if c.first.published]
    if not cited:
        return None
    ran = [c for c in cited if c.ok]
    not_run: dict[str, list[str]] = {}
    for c in cited:
        if not c.ok and c.first.requires_data:
            not_run.setdefault(c.first.requires_data, []).append(c.id)
    rows, deviations = [], []
    for case in ran:
        rows += _rows(run, case)
        deviations.append({"case": case.id, "differences": differences(run, case)})
    sources = dict.fromkeys(
        f"{c.first.published['source']} — {c.first.published['table']}; protocol: {c.first.published['protocol']}"
        for c in cited
    )
    return {
        "table": Table(HEADERS, rows, numeric_from=2, caption=_caption(run)) if rows else None,
        "deviations": deviations,
        "sources": list(sources),
        "not_run": [
            f"{len(ids)} case(s) need --data {need} (this run's data is {_data_name(run)}): "
            f"xraybench run '{_suite(cited)}*' --data {need} --profile {REPRODUCTION_PROFILE} fetches it "
            f"and runs them"
            for need, ids in not_run.items()
        ],
    }


def _rows(run: Run, case: CaseResult) -> list[list[str]]:
    ref = case.first.published  # the case's published reference, as its file declared it
    block = _why_no_verdict(run, case)
    rows = []
    for metric, label in METRIC_LABELS.items():
        published = ref.get(metric) or 0.0
        values = case.values(metric)
        if not published or not values:
            continue
        sd = ref.get(f"{metric}_sd") or 0.0
        runs = int(ref.get("runs") or 1)
        result = stats.against_published(values, published, sd, runs)
        ours = f"{100 * result.ours:.1f} {interval(case.mean_interval(metric))}"
        theirs = f"{100 * published:.1f}" + (
            f" ± {100 * sd:.1f} (sd, {runs} runs)" if sd else f" ({runs} run{'s' * (runs > 1)}, no sd)"
        )
        diff = f"{100 * result.difference:+.1f}" + (
            f" [{100 * result.low:+.1f}, {100 * result.high:+.1f}]" if result.testable else ""
        )
        rows.append([case.id, label, ours, theirs, diff, block or _verdict(result)])
    return rows


def _verdict(result: stats.Reproduction) -> str:
    """Ours higher or lower where the test says so; else consistent, within the smallest difference the test
    could have called with these seeds (without a published spread it is ours that sets it)."""
    if not result.testable:
        return "one seed: no verdict (the seed spread is unknown)"
    if result.direction:
        return f"{'ours higher' if result.direction > 0 else 'ours lower'} ({p_is(result.p_value)})"
    return f"consistent within ±{100 * result.critical_difference:.1f} pp ({p_is(result.p_value)})"


def _why_no_verdict(run: Run, case: CaseResult) -> str | None:
    """A verdict compares the published protocol with ours: not for a shortened run, nor from random weights,
    nor on other data, nor where the model or what it sees differs (a precision other than the published
    fp32, other weights or normalisation the case declares)."""
    if run.profile != REPRODUCTION_PROFILE:
        return SHORTENED
    if run.settings.random_init:
        return "random initialisation — no verdict"
    if not _on_published_file(run, case):
        return "not MedMNIST's own file — no verdict"  # which file, and its MD5: in the differences below
    other = _other_precisions(run, case)
    if other:
        return f"{DIFFERS}: {other}"
    declared = case.first.published.get("protocol_differs") or []
    if declared:
        return f"{DIFFERS}: {'; '.join(declared)}"
    return None


def _on_published_file(run: Run, case: CaseResult) -> bool:
    """Whether the run read MedMNIST's own file of the size the case requires (a case that names none never
    does: nothing says which file its published value was measured on)."""
    need = case.first.requires_data or ""
    official = ((run.data.medmnist if run.data else None) or {}).get("official", "")
    return bool(need) and official == medmnist.canonical(need)


def differences(run: Run, case: CaseResult) -> list[str]:
    """Every way this run differs from the published protocol: the run's own (profile, data, seeds, precision,
    hardware), then those the case declares."""
    ref, first = case.first.published, case.ok[0]
    config = first.config
    found = []
    if run.profile != REPRODUCTION_PROFILE:
        train, data = config.get("train", {}), config.get("data", {})
        found.append(
            f"profile {run.profile}: {train.get('epochs')} epochs at {data.get('image_size')} px"
            f"{_limit(run)}, a shortened protocol"
        )
    if not _on_published_file(run, case):
        md5 = ((run.data.medmnist if run.data else None) or {}).get("md5", "unknown")
        found.append(f"data: {run.data.name if run.data else None}, not MedMNIST's file (MD5 {md5[:12]}…)")
    runs = int(ref.get("runs") or 1)
    if case.seeds != runs:
        found.append(f"{case.seeds} seed{'s' * (case.seeds > 1)} (published: {runs} run{'s' * (runs > 1)})")
    settings = run.settings
    if settings.random_init:
        found.append("--random-init: pretrained backbones started from random weights")
    if other := _other_precisions(run, case):
        found.append(other)
    software = run.software
    gpu = software.get("gpu")
    gpu = gpu.get("name") if isinstance(gpu, dict) else gpu
    found.append(
        f"hardware: {gpu or software.get('device', 'unknown device').upper()}, torch {software.get('torch', '?')}"
    )
    return found + list(ref.get("protocol_differs") or []) + list(ref.get("deviations") or [])


def _other_precisions(run: Run, case: CaseResult) -> str | None:
    """What the case's trainings ran in where any ran in other than the published fp32, e.g. "bf16 autocast in 2 of
    5 trainings (published: fp32)"; None where all ran in fp32."""
    trained = [r.metrics.precision or run.settings.precision.name for r in case.ok]
    other = sorted(set(trained) - {"fp32"})
    if not other:
        return None
    n = sum(p != "fp32" for p in trained)
    mixed = f" in {n} of {len(trained)} trainings" if n < len(trained) else ""
    return f"{' and '.join(other)} autocast{mixed} (published: fp32)"


def _limit(run: Run) -> str:
    notes = run.data.notes if run.data else []
    return "".join(f", {n}" for n in notes if "per split" in n)


def _caption(run: Run) -> str:
    return (
        "Ours: the mean over seeds and its 95% interval counting the seeds' spread and the sampling of the "
        "test images (Wilson or DeLong with one seed). Published: its mean, with its sd over runs where "
        "published. The verdict tests ours − published (two-sided t, α = 0.05) with the seed spread of both "
        "sides — the published sd where given, else ours, as a reproduction would have it; the test images "
        'are the same, so their sampling cancels. "Consistent within ±d": d is the smallest difference '
        "the test could have called with these seeds. benchmarks/stat_calibration.py shows it calls a faithful "
        "reproduction different in 3.5–5.9% of simulated runs (4.6% pooled). "
        "A verdict is given only for the full profile on "
        "MedMNIST's own file, in fp32, with the protocol's model."
    )


def _data_name(run: Run) -> str:
    return (run.data.name if run.data else None) or "another source"


def _suite(cases: list[CaseResult]) -> str:
    return cases[0].first.suite or ""
