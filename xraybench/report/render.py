"""The homework-style report, from results.json alone: context → figures → Jinja2 → WeasyPrint.

``build_context`` turns the results into a plain structure of strings, tables (headers +
rows) and figure data URIs; the template only loops over it. The PDF's dates come from the
run, so the same results.json renders to the same bytes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
from collections import Counter, defaultdict
from pathlib import Path

import jinja2
import markupsafe

from xraybench import check, results, stats
from xraybench.report import plots
from xraybench.report.analysis import operating_section
from xraybench.report.comparisons import CaseResult, Comparison, by_case, compare, majority_class, resolution
from xraybench.report.findings import task_findings
from xraybench.report.model_card import model_card
from xraybench.report.sweeps import sweep_section
from xraybench.report.formatting import interval, mean_sd, min_max, p_value, pct, percent_sd, pp
from xraybench.report.views import VIEWS, task

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
SETTINGS_HEADERS = ["case", "model", "options", "input", "epochs", "batch", "optimizer", "lr", "weight decay",
                    "scheduler", "loss", "seeds"]
TRAINING_HEADERS = ["case", "seeds", "train loss", "train acc", "best val loss", "best val acc", "time (s)",
                    "s/epoch", "img/s", "peak MB"]
TEST_HEADERS = ["case", "test acc", "95% interval", "min–max", "test AUC", "sensitivity", "specificity", "F1"]
COMPARISON_HEADERS = ["A vs B", "seeds a side", "Δ test acc (A − B)", "95% interval", "p (sign test)",
                      "McNemar p per seed", "Δ AUC (DeLong p)", "P(A beats B)", "verdict"]
RANDOM_INIT_BANNER = ("Random initialisation — not a pretrained result. This run built its ImageNet backbones from "
                      "random weights (xraybench run --random-init) to exercise the code; its transfer-learning "
                      "numbers say nothing about pretrained models.")
PER_SEED_HEADERS = ["case", "seed", "test acc", "sensitivity", "specificity", "AUC", "F1"]


def render(run_dir: Path, baseline: Path | None = None) -> tuple[Path, Path]:
    """Write report.html and report.pdf into ``run_dir`` from its results.json (and, given a
    baseline file, the regression check against it)."""
    import weasyprint

    run_dir = Path(run_dir)
    doc = results.read(run_dir)
    context = build_context(doc)
    if baseline is not None:
        context["check"] = _check_section(doc, Path(baseline))
    html = render_html(context)
    html_path, pdf_path = run_dir / "report.html", run_dir / "report.pdf"
    html_path.write_text(html, encoding="utf-8")
    with _source_date(doc.get("datetime")):
        weasyprint.HTML(string=html, base_url=str(TEMPLATES)).write_pdf(pdf_path)
    return html_path, pdf_path


@contextlib.contextmanager
def _source_date(iso: str | None):
    """SOURCE_DATE_EPOCH = the run's date while the PDF is written: the font subsetter
    (fontTools) stamps embedded fonts with it instead of the current time."""
    saved = os.environ.get("SOURCE_DATE_EPOCH")
    try:
        stamp = dt.datetime.fromisoformat(iso) if iso else dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)
    except ValueError:
        stamp = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.timezone.utc)
    os.environ["SOURCE_DATE_EPOCH"] = str(int(stamp.timestamp()))
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("SOURCE_DATE_EPOCH", None)
        else:
            os.environ["SOURCE_DATE_EPOCH"] = saved


def render_html(context: dict) -> str:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    css = (TEMPLATES / "print.css").read_text(encoding="utf-8")
    return env.get_template("report.html.j2").render(**context, css=markupsafe.Markup(css))  # our own file


def build_context(doc: dict) -> dict:
    rows = doc["cases"]
    cases = by_case(doc)
    software = doc.get("software") or {}
    return {
        "title": "Chest X-ray classification: " + ", ".join(s["title"] for s in _suites(doc, rows).values()),
        "run_id": doc.get("run_id", ""),
        "created": doc.get("datetime", ""),
        "date": (doc.get("datetime") or "")[:10],
        "facts": _facts(doc, software),
        "banner": RANDOM_INIT_BANNER if results.settings(doc)["random_init"] else None,
        "dataset": _dataset(doc.get("data")),
        "method": _method(doc, cases),
        "sections": _sections(doc, cases),
        "analysis": _analysis(doc.get("data"), [c for c in cases.values() if c.ok]),
        "per_seed": _per_seed_table(cases),
        "problems": _problems(cases),
        "appendix": _appendix(cases),
        "environment": _environment(doc),
        "workers": _workers(rows),
        "check": None,
    }


def _problems(cases: dict[str, CaseResult]) -> list[dict]:
    """One line per reason (a missing weight file skips a backbone's fine-tuned and frozen cases alike):
    the cases, with their seeds where not all of them stopped, and the status."""
    grouped: dict[tuple[str, str], list[str]] = {}
    for case in cases.values():
        bad = [r for r in case.rows if r["status"] != "ok"]
        if bad:
            seeds = "" if len(bad) == len(case.rows) else \
                f" (seed{'s' if len(bad) > 1 else ''} {', '.join(str(r.get('seed')) for r in bad)})"
            grouped.setdefault((bad[0]["status"], bad[0].get("reason") or ""), []).append(case.id + seeds)
    return [{"case": ", ".join(ids), "status": status, "reason": reason} for (status, reason), ids in grouped.items()]


def _not_finished_note(members: list[CaseResult]) -> list[str]:
    """One line for a task whose cases did not all finish; the reasons are in one table at the end."""
    bad = [c for c in members if any(r["status"] != "ok" for r in c.rows)]
    if not bad:
        return []
    kinds = " or ".join(sorted({r["status"] for c in bad for r in c.rows if r["status"] != "ok"}))
    names = ", ".join(c.id for c in bad[:4]) + (", …" if len(bad) > 4 else "")
    return [f"{len(bad)} of {len(members)} case(s) did not finish ({kinds}: {names}); their reasons are under "
            f"“Skipped and failed cases”."]


def _appendix(cases: dict[str, CaseResult]) -> dict:
    """Configurations as one compact table: per suite, the settings most of its cases share, once; per case,
    what differs from them, its hash and seeds. The full configurations are in results.json (and in the HTML
    report, hidden in print)."""
    flat = {c.id: _flatten(c.first.get("config", {})) for c in cases.values()}
    shared, rows = {}, []
    for suite in dict.fromkeys(c.first.get("suite", "") for c in cases.values()):
        members = [c for c in cases.values() if c.first.get("suite", "") == suite]
        keys = dict.fromkeys(k for c in members for k in flat[c.id])
        # A key most cases lack (an option of one model) is not shared: the cases that set it show it.
        common = {k: Counter(flat[c.id].get(k) for c in members).most_common(1)[0][0] for k in keys}
        common = {k: v for k, v in common.items() if v is not None and k != "train.seed"}  # seeds: a column
        shared[suite] = ", ".join(f"{k} = {v}" for k, v in common.items())
        for c in members:
            seeds = [r.get("seed") for r in c.rows]
            changes = [f"{k} = {v}" for k, v in flat[c.id].items() if k != "train.seed" and common.get(k) != v]
            statuses = ", ".join(f"{n} {s}" for s, n in Counter(r["status"] for r in c.rows).items())
            rows.append([c.id, c.first.get("hash", ""), ", ".join(str(s) for s in seeds), statuses,
                         "; ".join(changes) or "–"])
    return {"shared": shared, "table": {"headers": ["case", "hash", "seeds", "status", "differs from the shared settings"],
                                        "rows": rows},
            "full": [{"case": c.id, "config": json.dumps(c.first.get("config", {}), indent=2, sort_keys=True)}
                     for c in cases.values()]}


def _flatten(config: dict, prefix: str = "") -> dict[str, str]:
    out = {}
    for key, value in sorted(config.items()):
        if isinstance(value, dict) and value:
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = json.dumps(value, sort_keys=True) if isinstance(value, (list, dict)) else str(value)
    return out


def _check_section(doc: dict, baseline_path: Path) -> dict:
    baseline = check.read_baseline(baseline_path)
    verdicts = check.compare(doc, baseline)
    return {"baseline": f"{baseline.get('name')} ({baseline_path.name}, {baseline.get('created')})",
            "table": {"headers": check.VERDICT_HEADERS, "rows": check.verdict_rows(verdicts)},
            "warnings": check.environment_warnings(doc, baseline),
            "verdict": "regression" if check.exit_code(verdicts) else "no regression"}


def _suites(doc: dict, rows: list[dict]) -> dict:
    declared = doc.get("suites") or {}
    names = list(dict.fromkeys(r.get("suite", "") for r in rows))
    return {n: {"title": declared.get(n, {}).get("title", n.upper()), "tasks": declared.get(n, {}).get("tasks", {}),
                "views": declared.get(n, {}).get("views", {})} for n in names}


def _facts(doc: dict, software: dict) -> list[tuple[str, str]]:
    commit = doc.get("commit_info") or {}
    gpu = software.get("gpu")
    device = software.get("device", "")
    if gpu:
        device += f" ({gpu['name']}, {gpu['memory_gb']} GB)"
    versions = ", ".join(f"{k} {software[k]}" for k in ("xraybench", "torch", "torchvision", "cuda") if software.get(k))
    return [("Run", doc.get("run_id", "")), ("Date", doc.get("datetime", "")), ("Profile", doc.get("profile", "")),
            ("Device", device), ("Precision", _precision(doc)),
            ("Deterministic", _deterministic(doc, software)),
            ("Software", versions),
            ("Commit", (commit.get("id") or "unknown")[:12] + (" (uncommitted changes)" if commit.get("dirty") else ""))]


def _deterministic(doc: dict, software: dict) -> str:
    if results.settings(doc)["deterministic"]:
        return "yes (deterministic algorithms only)"
    return "no (cuDNN autotuning)" if software.get("device") == "cuda" else "no"


def _precision(doc: dict) -> str:
    recorded = ((doc.get("settings") or {}).get("precision") or {})
    name = results.settings(doc)["precision"]
    if name == "fp32":
        text = "fp32"
    else:
        text = f"{name} autocast (output layer and loss in fp32{', loss scaling' if name == 'fp16' else ''})"
    return text + (f"; {recorded['reason']}" if recorded.get("reason") else "")


def _dataset(data: dict | None) -> dict:
    if not data:
        return {"name": "no data recorded", "location": "", "notes": [], "table": None}
    splits = data.get("splits", {})
    table = {"headers": ["split", "images", "normal", "pneumonia", "pneumonia share"],
             "rows": [[name, s["images"], s["normal"], s["pneumonia"], pct(s["pneumonia"] / max(s["images"], 1))]
                      for name, s in splits.items()]}
    return {"name": f"{data.get('name')} ({data.get('kind')})", "location": data.get("location", ""),
            "notes": data.get("notes", []), "table": table}


def _method(doc: dict, cases: dict[str, CaseResult]) -> list[str]:
    """How to read the numbers: seeds, intervals, tests."""
    counts = sorted({len(c.rows) for c in cases.values() if c.ok})
    seeds = " or ".join(str(n) for n in counts) or "no"
    text = [f"Each case ran with {seeds} seed(s) (a seed sets initialisation, data order, dropout and augmentation). "
            "Numbers are means ± sd over seeds. A 95% interval of a mean over seeds counts the seeds' spread and "
            "the sampling of the test images; a case with one seed gets the interval on its test images (Wilson for "
            "proportions, DeLong for AUC, BCa bootstrap for F1).",
            f"A sentence names a better case only when a test rejects at α = {stats.ALPHA}: the exact sign test on "
            "per-image correctness pooled over seeds (exact McNemar with one seed each) and a 95% interval of the "
            "difference that excludes zero (test-image sampling plus the seeds' spread). AUCs are compared with "
            "DeLong's test; P(A beats B) over seeds follows Bouthillier et al. (2021)."]
    if len(counts) > 1:
        fewer = [c.id for c in cases.values() if c.ok and len(c.rows) == counts[0]]
        text.append(f"Cases with {counts[0]} seed(s) here: the profile runs fewer seeds for them to keep the run "
                    f"short ({', '.join(fewer[:6])}{', …' if len(fewer) > 6 else ''}); their intervals are wider.")
    return text


def _sections(doc: dict, cases: dict[str, CaseResult]) -> list[dict]:
    rows = list(doc["cases"])
    suites = _suites(doc, rows)
    by_task: dict[tuple[str, str], list[CaseResult]] = defaultdict(list)
    for case in cases.values():
        by_task[(case.first.get("suite", ""), case.first.get("task", ""))].append(case)
    sections = []
    for suite, meta in suites.items():
        suite_cases = [c for c in cases.values() if c.first.get("suite") == suite]
        task_keys = sorted(set(meta["tasks"]) | {t for (s, t) in by_task if s == suite})
        tasks = []
        for key in task_keys:
            members = by_task.get((suite, key), [])
            view = meta["views"].get(key)
            if view:
                content = VIEWS[view](suite_cases, cases)
            elif members:
                content = _task_content(doc, members, cases)
            else:
                continue  # a declared task none of whose cases ran
            tasks.append({"key": key, "title": meta["tasks"].get(key, ""), **content})
        sections.append({"suite": suite, "title": meta["title"], "tasks": tasks,
                         "card": model_card(doc, suite_cases)})
    return sections


def _task_content(doc: dict, members: list[CaseResult], cases: dict[str, CaseResult]) -> dict:
    not_finished = _not_finished_note(members)
    if all(c.first.get("sweep") for c in members):
        return sweep_section(members, not_finished)
    # Cases a member is compared with (declared in another task) join the comparison.
    compared = [cases[c] for m in members for c in m.first.get("compare", []) if c in cases]
    involved = list({c.id: c for c in compared + members}.values())
    done = [c for c in involved if c.ok]
    pairs = [(m, cases[other]) for m in members for other in m.first.get("compare", [])
             if other in cases and m.ok and cases[other].ok]
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
        settings={"headers": SETTINGS_HEADERS, "rows": [_settings_row(c) for c in involved]},
        models=[{"label": c.id, "title": c.first.get("title", ""), "description": c.first.get("description", ""),
                 "seeds": c.seeds, "figure": plots.training_curves([r["history"] for r in c.ok])}
                for c in members if c.ok and c.ok[0].get("history")],
        tables=tables, findings=task_findings(involved, comparisons, untested), not_finished=not_finished,
        analysis=operating_section(doc, done) if done else None)


def _training_table(done: list[CaseResult]) -> dict:
    rows = [[c.id, str(c.seeds), mean_sd(c.values("train_loss"), ".4f"), percent_sd(c.values("train_acc")),
             mean_sd(c.values("best_val_loss"), ".4f"), percent_sd(c.values("best_val_acc")),
             mean_sd(c.values("wall_time_s"), ".1f"), mean_sd(c.values("s_per_epoch"), ".2f"),
             mean_sd(c.values("train_images_per_s"), ",.0f"), mean_sd(c.values("peak_memory_mb"), ",.0f")]
            for c in done]
    kinds = sorted({r["metrics"].get("peak_memory_kind", "") for c in done for r in c.ok} - {""})
    at_start = [r["metrics"]["memory_at_start_mb"] for c in done for r in c.ok if r["metrics"].get("memory_at_start_mb")]
    held = f" (of which {min(at_start):,.0f}–{max(at_start):,.0f} MB were in use when the case started)" \
        if at_start else ""
    return {"title": "Results: training", "headers": TRAINING_HEADERS, "rows": rows,
            "caption": "Mean ± sd over seeds (the value alone with one seed); time: training time per seed. img/s: "
                       "training images per second in the median epoch (the first carries one-time costs). "
                       f"Peak MB: {' / '.join(kinds) or 'peak memory as recorded'}{held}.",
            "note": ""}


def _test_table(doc: dict, done: list[CaseResult]) -> dict:
    n_test = ((doc.get("data") or {}).get("splits") or {}).get("test", {}).get("images", 0)
    rows = []
    for c in done:
        acc = c.values("test_acc")
        single = (c.ok[0]["metrics"].get("test_intervals") or _confusion_intervals(c.ok[0])) if c.seeds == 1 else {}
        acc_interval = interval(single.get("acc") if c.seeds == 1 else stats.accuracy_interval(acc, n_test))
        rows.append([c.id, percent_sd(acc), acc_interval, min_max(acc),
                     _with_interval(c, "test_auc", single.get("auc"), ".3f", 1), _with_interval(c, "test_sensitivity", single.get("sensitivity")),
                     _with_interval(c, "test_specificity", single.get("specificity")), _with_interval(c, "test_f1", single.get("f1"))])
    majority = majority_class(doc)
    if majority:
        rows.append(["majority class (always PNEUMONIA)", pct(majority["acc"]), interval(majority["acc_interval"]),
                     "–", "0.500", "100.0 %", "0.0 %", "–"])
    detectable = resolution(done, n_test)
    note = ""
    if detectable is not None:
        note = (f"Resolution: with {n_test} test images and this seed spread, differences in test accuracy smaller "
                f"than about {100 * detectable:.1f} points cannot be told apart (80% power, two-sided α = 0.05).")
    return {"title": "Results: test set", "headers": TEST_HEADERS, "rows": rows, "note": note,
            "caption": "Test accuracy: mean ± sd over seeds; 95% interval of that mean, counting both the seeds' "
                       "spread (t) and the sampling of the test images (binomial), or with one seed Wilson's on the "
                       "test images; min–max over seeds. AUC, sensitivity, specificity and F1: "
                       "mean ± sd over seeds, or with one seed the value and its 95% interval (DeLong, Wilson, "
                       "BCa bootstrap). The majority-class row is the trivial baseline on the same test images."}


def _with_interval(case: CaseResult, metric: str, single, spec: str = ".1f", scale: float = 100) -> str:
    values = case.values(metric)
    if not values:
        return "n/a"
    if case.seeds > 1:
        text = mean_sd(values, spec, scale)
        return text + (" %" if scale == 100 else "")
    value = format(scale * values[0], spec) + (" %" if scale == 100 else "")
    return value + (f" {interval(single, '.3f' if scale == 1 else '.1f', scale)}" if single else "")


def _confusion_intervals(row: dict) -> dict:
    """Wilson intervals from the confusion matrix, for rows written before intervals were stored."""
    c = row["metrics"].get("test_confusion")
    return stats.confusion_intervals(**c) if c else {}


def _comparison_table(comparisons: list[Comparison]) -> dict:
    rows = []
    for c in comparisons:
        acc = c.accuracy
        per_seed = ", ".join(p_value(p) for p in c.mcnemar_per_seed.values()) or "–"
        auc = "n/a" if c.auc is None else f"{c.auc.difference:+.3f} ({p_value(c.auc.p_value)})"
        beat = "–" if c.beat is None else f"{c.beat.p:.2f} [{c.beat.low:.2f}, {c.beat.high:.2f}]"
        verdict = f"{c.winner} higher" if c.winner else "no detectable difference"
        rows.append([markupsafe.Markup("{}<br>vs {}").format(c.a, c.b), str(acc.seeds_a), pp(acc.difference),
                     interval([acc.low, acc.high]), p_value(acc.p_value), per_seed, auc, beat, verdict])
    return {"title": "Paired comparisons on the test images", "headers": COMPARISON_HEADERS, "rows": rows, "note": "",
            "class": "comparisons",
            "caption": "On as many seeds a side (the seeds both ran first). Δ: mean test accuracy of A minus B; its "
                       "95% interval counts test-image sampling and the seeds' spread. p: exact sign test on per-image "
                       "correctness pooled over seeds (exact McNemar with one seed a side); McNemar per seed for the "
                       "seeds both ran. Δ AUC: DeLong's test per pair of seeds, combined. P(A beats B): over all "
                       "seeds (≥ 2 each), bootstrap interval. A verdict names a case only when p < 0.05 and the "
                       "interval excludes zero. With one seed a side the test sees the sampling of the test images "
                       "but not the spread between seeds (Dietterich 1998): run more seeds before trusting a verdict "
                       "on a case that is sensitive to its seed."}


def _settings_row(case: CaseResult) -> list[str]:
    c = case.first.get("config", {})
    model, data, train = c.get("model", {}), c.get("data", {}), c.get("train", {})
    options = ", ".join(f"{k}={v}" for k, v in model.get("options", {}).items()) or "–"
    scheduler = train.get("scheduler", "")
    if train.get("scheduler_options"):
        scheduler += " (" + ", ".join(f"{k}={v}" for k, v in train["scheduler_options"].items()) + ")"
    seeds = [r.get("seed") for r in case.rows]
    seed_text = str(seeds[0]) if len(seeds) == 1 else f"{len(seeds)} ({min(seeds)}–{max(seeds)})"
    return [case.id, model.get("name", ""), options, f"{data.get('channels')}×{data.get('image_size')}²",
            str(train.get("epochs", "")), str(train.get("batch_size", "")), train.get("optimizer", ""),
            f"{train.get('lr', 0):g}", f"{train.get('weight_decay', 0):g}", scheduler, train.get("loss", ""), seed_text]


def _per_seed_table(cases: dict[str, CaseResult]) -> dict | None:
    rows = []
    for case in cases.values():
        for r in case.ok:
            m = r["metrics"]
            ci = m.get("test_intervals") or _confusion_intervals(r)
            rows.append([case.id, str(r.get("seed")), f"{pct(m['test_acc'])} {interval(ci.get('acc'))}",
                         f"{pct(m['test_sensitivity'])} {interval(ci.get('sensitivity'))}",
                         f"{pct(m['test_specificity'])} {interval(ci.get('specificity'))}",
                         "n/a" if m.get("test_auc") is None else f"{m['test_auc']:.3f} {interval(ci.get('auc'), '.3f', 1)}",
                         f"{pct(m['test_f1'])} {interval(ci.get('f1'))}" if m.get("test_f1") is not None else "n/a"])
    return {"headers": PER_SEED_HEADERS, "rows": rows} if rows else None


def _analysis(data: dict | None, ok: list[CaseResult]) -> dict:
    summary = (data or {}).get("summary") or {}
    table = {"headers": ["case", "seeds", "best val acc", "test acc", "test − val", "test AUC"],
             "rows": [[c.id, str(c.seeds), percent_sd(c.values("best_val_acc")), percent_sd(c.values("test_acc")),
                       mean_sd([r["metrics"]["test_acc"] - r["metrics"]["best_val_acc"] for r in c.ok], "+.1f", 100)
                       + " pp", mean_sd(c.values("test_auc"), ".3f") if c.values("test_auc") else "n/a"]
                      for c in ok]}
    return {
        "table": table if ok else None,
        "val_test_figure": plots.val_vs_test([c.id for c in ok], [c.values("best_val_acc") for c in ok],
                                             [c.values("test_acc") for c in ok]) if ok else None,
        "confusion_figure": plots.confusion_matrices([(c.id, _summed_confusion(c)) for c in ok]) if ok else None,
        "histogram_figure": plots.intensity_histograms(summary["histograms"], summary["histogram_bins"])
        if summary.get("histograms") else None,
        "samples_figure": plots.sample_grid(summary["samples"]) if summary.get("samples") else None,
        "sample_size": summary.get("image_size"),
    }


def _summed_confusion(case: CaseResult) -> dict:
    return {k: sum(r["metrics"]["test_confusion"][k] for r in case.ok) for k in ("tn", "fp", "fn", "tp")}


def _workers(rows: list[dict]) -> dict | None:
    """Who trained the cases, when an executor spread them (Ray, Slurm): one line per executor, host, device
    and GPU, with the trainings it ran. None for the local executor (the environment says its device) and
    for results from before executors recorded it."""
    counts = Counter()
    for row in rows:
        w = row.get("worker")
        if w and "host" in w and w.get("executor") != "local":
            counts[(w["executor"], w["host"], w["device"], w.get("gpu") or "–",
                    w.get("cuda_visible_devices") if w.get("cuda_visible_devices") is not None else "–")] += 1
    if not counts:
        return None
    return {"headers": ["executor", "host", "device", "GPU", "CUDA_VISIBLE_DEVICES", "trainings"],
            "rows": [[*key, n] for key, n in sorted(counts.items())]}


def _environment(doc: dict) -> list[tuple[str, str]]:
    pairs = []
    for group in ("machine_info", "software", "settings", "commit_info"):
        for key, value in (doc.get(group) or {}).items():
            pairs.append((f"{group}.{key}", json.dumps(value) if isinstance(value, (dict, list)) else str(value)))
    return pairs
