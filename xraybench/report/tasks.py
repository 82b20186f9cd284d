"""A task's own section: what was compared, the training and test tables, the paired comparisons,
operating points and findings — or, for a sweep, the sweep's section."""

from __future__ import annotations

import markupsafe

from xraybench import stats
from xraybench.report import plots
from xraybench.report.analysis import operating_section
from xraybench.report.comparisons import Comparison, compare, degrees
from xraybench.report.findings import degenerate_findings, task_findings
from xraybench.report.formatting import interval, mean_sd, min_max, p_value, pct, percent_sd, pp
from xraybench.report.sweeps import sweep_section
from xraybench.report.tables import Table, task
from xraybench.results import CaseResult

# What each case is and costs, then how it was trained; a training setting every case shares is said once, under
# the table, so that the columns left are the differences and the table fits the printed page.
SETTINGS_HEADERS = [
    "case",
    "model",
    "options",
    "input",
    "aug.",
    "params",
    "FLOPs",
    "epochs",
    "batch",
    "optimizer",
    "lr",
    "weight decay",
    "scheduler",
    "loss",
    "seeds",
]
SHARED_ONCE = {"epochs", "batch", "optimizer", "lr", "weight decay", "scheduler", "loss"}
SETTINGS_CAPTION = (
    "aug.: augmentations of the training images. params: the trained model's parameters (and the "
    "trainable ones, where fewer). FLOPs: one forward pass of one image at the input shown "
    "(torch.utils.flop_counter, two per multiply-add; a pretrained backbone with its 1000-class "
    "ImageNet head). seeds: how many ran (which)."
)


TRAINING_HEADERS = [
    "case",
    "seeds",
    "train loss",
    "train acc",
    "best val loss",
    "best val acc",
    "time (s)",
    "s/epoch",
    "img/s",
    "peak MB",
]


TEST_HEADERS = ["case", "test acc", "95% interval", "min–max", "test AUC", "sensitivity", "specificity", "F1"]


COMPARISON_HEADERS = [
    "A vs B",
    "seeds",
    "Δ test acc (A − B)",
    "95% interval",
    "p (t, df)",
    "Δ AUC [95% interval], p",
    "Δ sensitivity; Δ specificity [95% intervals]",
    "these models: sign test p; McNemar p per seed",
    "P(A beats B)",
    "verdict",
]


def not_finished_note(members: list[CaseResult]) -> list[str]:
    """One line for a task whose cases did not all finish; the reasons are in one table at the end."""
    bad = [c for c in members if any(r["status"] != "ok" for r in c.rows)]
    if not bad:
        return []
    kinds = " or ".join(sorted({r["status"] for c in bad for r in c.rows if r["status"] != "ok"}))
    names = ", ".join(c.id for c in bad[:4]) + (", …" if len(bad) > 4 else "")
    return [
        f"{len(bad)} of {len(members)} case(s) did not finish ({kinds}: {names}); their reasons are under "
        f"“Skipped and failed cases”."
    ]


def task_content(doc: dict, members: list[CaseResult], cases: dict[str, CaseResult]) -> dict:
    not_finished = not_finished_note(members)
    if all(c.first.get("sweep") for c in members):
        section = sweep_section(members, not_finished)
        return {**section, "findings": degenerate_findings([c for c in members if c.ok]) + section["findings"]}
    # Cases a member is compared with (declared in another task) join the comparison.
    compared = [cases[c] for m in members for c in m.first.get("compare", []) if c in cases]
    involved = list({c.id: c for c in compared + members}.values())
    done = [c for c in involved if c.ok]
    pairs = [
        (m, cases[other])
        for m in members
        for other in m.first.get("compare", [])
        if other in cases and m.ok and cases[other].ok
    ]
    comparisons, untested = [], []
    for a, b in pairs:
        result = compare(a, b)
        (comparisons.append(result) if result else untested.append((a.id, b.id)))
    tables = []
    if done:
        tables += [_training_table(done), _test_table(doc, done)]
    if comparisons:
        tables.append(_comparison_table(comparisons))
    return task(
        settings=settings_table(involved),
        models=[
            {
                "label": c.id,
                "title": c.first.get("title", ""),
                "description": c.first.get("description", ""),
                "seeds": c.seeds,
                "figure": plots.training_curves([r["history"] for r in c.ok]),
            }
            for c in members
            if c.ok and c.ok[0].get("history")
        ],
        tables=tables,
        findings=task_findings(involved, comparisons, untested),
        not_finished=not_finished,
        analysis=operating_section(doc, done) if done else None,
    )


def _training_table(done: list[CaseResult]) -> Table:
    rows = [
        [
            c.id,
            str(c.seeds),
            mean_sd(c.values("train_loss"), ".4f"),
            percent_sd(c.values("train_acc")),
            mean_sd(c.values("best_val_loss"), ".4f"),
            percent_sd(c.values("best_val_acc")),
            mean_sd(c.values("wall_time_s"), ".1f"),
            mean_sd(c.values("s_per_epoch"), ".2f"),
            mean_sd(c.values("train_images_per_s"), ",.0f"),
            mean_sd(c.values("peak_memory_mb"), ",.0f"),
        ]
        for c in done
    ]
    kinds = sorted({r["metrics"].get("peak_memory_kind", "") for c in done for r in c.ok} - {""})
    at_start = [
        r["metrics"]["memory_at_start_mb"] for c in done for r in c.ok if r["metrics"].get("memory_at_start_mb")
    ]
    held = (
        f" (of which {min(at_start):,.0f}–{max(at_start):,.0f} MB were in use when the case started)"
        if at_start
        else ""
    )
    return Table(
        TRAINING_HEADERS,
        rows,
        title="Results: training",
        css_class="results",
        caption="Mean ± sd over seeds (the value alone with one seed); time: training time per seed. img/s: "
        "training images per second in the median epoch (the first carries one-time costs). "
        f"Peak MB: {' / '.join(kinds) or 'peak memory as recorded'}{held}.",
    )


def _test_table(doc: dict, done: list[CaseResult]) -> Table:
    n_test = ((doc.get("data") or {}).get("splits") or {}).get("test", {}).get("images", 0)
    rows = []
    for c in done:
        acc = c.values("test_acc")
        single = test_intervals_of(c.ok[0]) if c.seeds == 1 else {}
        acc_interval = interval(single.get("acc") if c.seeds == 1 else stats.accuracy_interval(acc, n_test))
        rows.append(
            [
                c.id,
                percent_sd(acc),
                acc_interval,
                min_max(acc),
                _with_interval(c, "test_auc", single.get("auc"), ".3f", 1),
                _with_interval(c, "test_sensitivity", single.get("sensitivity")),
                _with_interval(c, "test_specificity", single.get("specificity")),
                _with_interval(c, "test_f1", single.get("f1")),
            ]
        )
    majority = majority_class(doc)
    if majority:
        n, positives = majority
        rows.append(
            [
                "majority class (always PNEUMONIA)",
                pct(positives / n if n else 0.0),
                interval(stats.wilson(positives, n)),
                "–",
                "0.500",
                "100.0 %",
                "0.0 %",
                "–",
            ]
        )
    detectable = stats.resolution([c.summary("test_acc") for c in done], n_test)
    note = ""
    if detectable is not None:
        note = (
            f"Resolution: with {n_test} test images and this seed spread, differences in test accuracy smaller "
            f"than about {100 * detectable:.1f} points cannot be told apart (80% power, two-sided α = 0.05)."
        )
    return Table(
        TEST_HEADERS,
        rows,
        title="Results: test set",
        note=note,
        caption="Test accuracy: mean ± sd over seeds; 95% interval of that mean, counting both the seeds' "
        "spread (t) and the sampling of the test images (binomial), or with one seed Wilson's on the "
        "test images; min–max over seeds. AUC, sensitivity, specificity and F1: "
        "mean ± sd over seeds, or with one seed the value and its 95% interval (DeLong, Wilson, "
        "BCa bootstrap). The majority-class row is the trivial baseline on the same test images.",
    )


def majority_class(doc: dict) -> tuple[int, int] | None:
    """(test images, pneumonia images) of the run's test split, for the trivial always-PNEUMONIA baseline."""
    images = ((doc.get("data") or {}).get("images") or {}).get("test")
    if images:
        return len(images["labels"]), int(sum(images["labels"]))
    splits = (doc.get("data") or {}).get("splits") or {}
    if "test" not in splits:
        return None
    return splits["test"]["images"], splits["test"]["pneumonia"]


def _with_interval(case: CaseResult, metric: str, single, spec: str = ".1f", scale: float = 100) -> str:
    values = case.values(metric)
    if not values:
        return "n/a"
    if case.seeds > 1:
        text = mean_sd(values, spec, scale)
        return text + (" %" if scale == 100 else "")
    value = format(scale * values[0], spec) + (" %" if scale == 100 else "")
    return value + (f" {interval(single, '.3f' if scale == 1 else '.1f', scale)}" if single else "")


def test_intervals_of(row: dict) -> dict:
    """A row's stored test-metric intervals; for rows written before intervals were stored, Wilson
    intervals from its confusion matrix."""
    if row["metrics"].get("test_intervals"):
        return row["metrics"]["test_intervals"]
    c = row["metrics"].get("test_confusion")
    return stats.confusion_intervals(**c) if c else {}


def _comparison_table(comparisons: list[Comparison]) -> Table:
    rows = []
    for c in comparisons:
        acc = c.accuracy
        models = p_value(c.models_p) + "; " + (", ".join(p_value(p) for p in c.mcnemar_per_seed.values()) or "–")
        if not acc.testable:
            tested, auc, by_class, verdict = ["–", "–"], "–", "–", "not tested (one seed a side)"
        else:
            held_acc, held_auc = c.result.held_p
            tested = [
                interval([acc.low, acc.high]),
                f"{p_value(acc.p_value)} ({degrees(acc.df)})"
                + (f"; Holm {p_value(held_acc)}" if held_acc != acc.p_value else ""),
            ]
            auc = (
                "n/a"
                if c.auc is None
                else f"{c.auc.difference:+.3f} [{c.auc.low:+.3f}, {c.auc.high:+.3f}], {p_value(c.auc.p_value)}"
                + (f"; Holm {p_value(held_auc)}" if held_auc is not None and held_auc != c.auc.p_value else "")
            )
            by_class = (
                "n/a"
                if c.sensitivity is None
                else "; ".join(
                    f"{pp(d.difference)} {interval([d.low, d.high])}" for d in (c.sensitivity, c.specificity)
                )
            )
            verdict = f"{c.winner} higher" if c.winner else "no detectable difference"
        beat = "–" if c.beat is None else f"{c.beat.p:.2f} [{c.beat.low:.2f}, {c.beat.high:.2f}]"
        rows.append(
            [
                markupsafe.Markup("{}<br>vs {}").format(c.a, c.b),
                f"{acc.seeds_a} / {acc.seeds_b}",
                pp(acc.difference),
                *tested,
                auc,
                by_class,
                models,
                beat,
                verdict,
            ]
        )
    return Table(
        COMPARISON_HEADERS,
        rows,
        title="Paired comparisons on the test images",
        css_class="comparisons",
        caption="Δ: mean test accuracy over A's seeds minus B's. Its 95% interval and p test the training "
        "procedures, not these particular networks: the standard error counts each side's "
        "seed-to-seed spread and the sampling of the test images, referred to a t distribution "
        "with Welch–Satterthwaite degrees of freedom (in brackets). Δ AUC: the same test on the mean of "
        "per-seed AUCs (image part from DeLong's components). Δ sensitivity and Δ specificity: the accuracy "
        "test on the pneumonia and the normal images; they trade off along the threshold, so they "
        "carry intervals and no verdict. The verdict names a case when the "
        "accuracy test rejects at 0.05 with the accuracy and AUC claims held together (Holm; the "
        "adjusted p is shown where it differs). With one seed a side the seed "
        "variation is unknown and nothing is tested. The sign test on per-image correctness "
        "(exact McNemar per seed both ran) asks only whether these trained models differ on these "
        "images; it is no verdict on the settings. P(A beats B) over seeds is shown from "
        f"{stats.BEAT_MIN_SEEDS} seeds a side. benchmarks/stat_calibration.py shows these tests "
        "hold their 5% level by simulation.",
    )


def settings_table(cases: list[CaseResult]) -> Table:
    """What was compared: a row per case; the training settings all of them share in one line below."""
    rows = [_settings_row(c) for c in cases]
    shared = {i for i, h in enumerate(SETTINGS_HEADERS) if h in SHARED_ONCE and len({row[i] for row in rows}) == 1}
    keep = [i for i in range(len(SETTINGS_HEADERS)) if i not in shared]
    same = "; ".join(f"{SETTINGS_HEADERS[i]} {rows[0][i]}" for i in sorted(shared))
    return Table(
        [SETTINGS_HEADERS[i] for i in keep],
        [[row[i] for i in keep] for row in rows],
        numeric_from=99,
        caption=SETTINGS_CAPTION,
        note=f"The same for every case: {same}." if same else "",
    )


def _settings_row(case: CaseResult) -> list[str]:
    c = case.first.get("config", {})
    model, data, train = c.get("model", {}), c.get("data", {}), c.get("train", {})
    options = ", ".join(f"{k}={v}" for k, v in model.get("options", {}).items()) or "–"
    scheduler = train.get("scheduler", "")
    if train.get("scheduler_options"):
        scheduler += " (" + ", ".join(f"{k}={v}" for k, v in train["scheduler_options"].items()) + ")"
    return [
        case.id,
        model.get("name", ""),
        options,
        f"{data.get('channels')}×{data.get('image_size')}²",
        ", ".join(data.get("augment") or []) or "–",
        *_costs(case),
        str(train.get("epochs", "")),
        str(train.get("batch_size", "")),
        train.get("optimizer", ""),
        f"{train.get('lr', 0):g}",
        f"{train.get('weight_decay', 0):g}",
        scheduler,
        train.get("loss", ""),
        seeds_text([r.get("seed") for r in case.rows]),
    ]


def seeds_text(seeds: list[int]) -> str:
    """How many seeds ran — the settings' sample size, which the seed number itself is not — and, from two
    on, which: "3 (0–2)", or "3 (0, 5, 9)" where they are not consecutive."""
    if len(seeds) < 2:
        return str(len(seeds))
    ordered = sorted(seeds)
    consecutive = ordered == list(range(ordered[0], ordered[0] + len(ordered)))
    which = f"{ordered[0]}–{ordered[-1]}" if consecutive else ", ".join(map(str, ordered))
    return f"{len(seeds)} ({which})"


def _costs(case: CaseResult) -> list[str]:
    """Parameters (exact; the trainable ones too, where fewer) and FLOPs per image of a case's model, from its first
    finished seed: HW3 task C asks what the flatten head costs."""
    if not case.ok:
        return ["–", "–"]
    metrics, info = case.ok[0]["metrics"], case.ok[0].get("model_info") or {}
    params, trained = metrics.get("params"), metrics.get("trainable_params")
    text = "–" if params is None else f"{params:,}"
    if params is not None and trained is not None and trained < params:
        text += f" ({trained:,} trainable)"
    return [text, flops(info["flops"]) if info.get("flops") else "–"]


def flops(n: float) -> str:
    """FLOPs to three significant digits in the unit that suits them: 6.52 MFLOPs, 4.11 GFLOPs (a no-break space
    keeps the unit on the number's line in a narrow column)."""
    n = float(f"{n:.3g}")  # rounded first, so that 999.6 M reads 1 G, not 1e+03 M
    for scale, unit in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= scale:
            return f"{n / scale:.3g}\u00a0{unit}FLOPs"
    return f"{n:.0f}\u00a0FLOPs"
