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
from collections import defaultdict
from pathlib import Path

import jinja2
import markupsafe

from xraybench import check, plots, results
from xraybench.findings import pct, task_findings

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
SETTINGS_HEADERS = ["case", "model", "options", "input", "epochs", "batch", "optimizer", "lr", "weight decay",
                    "scheduler", "loss"]
RESULTS_HEADERS = ["case", "train loss", "train acc", "best val loss", "best val acc", "test acc", "test AUC",
                   "sensitivity", "specificity", "training time", "s/epoch"]


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
    rows = [_labelled(r, doc["cases"]) for r in doc["cases"]]
    ok = [r for r in rows if r["status"] == "ok"]
    software = doc.get("software") or {}
    return {
        "title": "Chest X-ray classification: " + ", ".join(s["title"] for s in _suites(doc, rows).values()),
        "run_id": doc.get("run_id", ""),
        "created": doc.get("datetime", ""),
        "date": (doc.get("datetime") or "")[:10],
        "facts": _facts(doc, software),
        "dataset": _dataset(doc.get("data")),
        "sections": _sections(doc, rows),
        "analysis": _analysis(doc.get("data"), ok),
        "problems": [{"case": r["label"], "status": r["status"], "reason": r.get("reason") or ""}
                     for r in rows if r["status"] != "ok"],
        "appendix": [{"case": r["label"], "hash": r.get("hash", ""), "status": r["status"],
                      "config": json.dumps(r.get("config", {}), indent=2, sort_keys=True)} for r in rows],
        "environment": _environment(doc),
        "check": None,
    }


def _check_section(doc: dict, baseline_path: Path) -> dict:
    baseline = check.read_baseline(baseline_path)
    verdicts = check.compare(doc, baseline)
    return {"baseline": f"{baseline.get('name')} ({baseline_path.name}, {baseline.get('created')})",
            "table": {"headers": check.VERDICT_HEADERS, "rows": check.verdict_rows(verdicts)},
            "warnings": check.environment_warnings(doc, baseline),
            "verdict": "regression" if check.exit_code(verdicts) else "no regression"}


def _labelled(row: dict, all_rows: list[dict]) -> dict:
    several = sum(1 for r in all_rows if r["id"] == row["id"]) > 1
    return {**row, "label": row["id"] + (f" (seed {row.get('seed')})" if several else "")}


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
            ("Device", device), ("Software", versions),
            ("Commit", (commit.get("id") or "unknown")[:12] + (" (uncommitted changes)" if commit.get("dirty") else ""))]


def _dataset(data: dict | None) -> dict:
    if not data:
        return {"name": "no data recorded", "location": "", "notes": [], "table": None}
    splits = data.get("splits", {})
    table = {"headers": ["split", "images", "normal", "pneumonia", "pneumonia share"],
             "rows": [[name, s["images"], s["normal"], s["pneumonia"], pct(s["pneumonia"] / max(s["images"], 1))]
                      for name, s in splits.items()]}
    return {"name": f"{data.get('name')} ({data.get('kind')})", "location": data.get("location", ""),
            "notes": data.get("notes", []), "table": table}


def _sections(doc: dict, rows: list[dict]) -> list[dict]:
    suites = _suites(doc, rows)
    by_task: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in rows:
        by_task[(r.get("suite", ""), r.get("task", ""))].append(r)
    by_id = {r["id"]: r for r in rows}
    sections = []
    for suite, meta in suites.items():
        suite_rows = [r for r in rows if r.get("suite") == suite]
        task_keys = sorted(set(meta["tasks"]) | {t for (s, t) in by_task if s == suite})
        tasks = []
        for task in task_keys:
            members = by_task.get((suite, task), [])
            view = meta["views"].get(task)
            if view:
                content = VIEWS[view](suite_rows, rows)
            elif members:
                content = _task_content(members, by_id)
            else:
                continue  # a declared task none of whose cases ran
            tasks.append({"key": task, "title": meta["tasks"].get(task, ""), **content})
        sections.append({"suite": suite, "title": meta["title"], "tasks": tasks})
    return sections


def _task(settings=None, models=(), results=None, tables=(), findings=(), not_finished=()) -> dict:
    """The parts a task section may have; the template shows those that are not empty."""
    return {"settings": settings, "models": list(models), "results": results, "tables": list(tables),
            "findings": list(findings), "not_finished": list(not_finished)}


def _task_content(members: list[dict], by_id: dict) -> dict:
    not_finished = [r["label"] for r in members if r["status"] != "ok"]
    if all(r.get("sweep") for r in members):
        return _task(tables=[_sweep_table(members)], findings=_sweep_findings(members), not_finished=not_finished)
    # Cases a member is compared with (declared in another task) join the comparison.
    compared = [by_id[c] for r in members for c in r.get("compare", []) if c in by_id]
    involved = list({r["label"]: r for r in compared + members}.values())
    return _task(
        settings={"headers": SETTINGS_HEADERS, "rows": [_settings_row(r) for r in involved]},
        models=[{"label": r["label"], "title": r.get("title", ""), "description": r.get("description", ""),
                 "figure": plots.training_curves(r["history"])}
                for r in members if r["status"] == "ok" and r.get("history")],
        results={"headers": RESULTS_HEADERS, "rows": [_results_row(r) for r in involved if r["status"] == "ok"]},
        findings=task_findings(involved), not_finished=not_finished)


def _sweep_table(members: list[dict]) -> dict:
    keys = list(dict.fromkeys(k for r in members for k in r.get("sweep_params", {})))
    rows = []
    for r in members:
        m = r.get("metrics") or {}
        done = r["status"] == "ok"
        rows.append([r["label"], *(f"{r['sweep_params'].get(k, '')}" for k in keys),
                     _duration(m["wall_time_s"]) if done else r["status"], f"{m['test_loss']:.4f}" if done else "–",
                     pct(m["test_acc"]) if done else "–"])
    return {"caption": f"Sweep of {members[0]['sweep']}: one row per point of the grid.",
            "headers": ["case", *(k.split(".")[1] for k in keys), "training time", "test loss", "test acc"],
            "rows": rows}


def _sweep_findings(members: list[dict]) -> list[str]:
    ok = [r for r in members if r["status"] == "ok"]
    if not ok:
        return [f"None of the {len(members)} points of the sweep finished."]
    best = max(ok, key=lambda r: r["metrics"]["best_val_acc"])
    params = ", ".join(f"{k.split('.')[1]} {v}" for k, v in best["sweep_params"].items())
    return [f"{len(ok)} of {len(members)} points finished. The best validation accuracy "
            f"({pct(best['metrics']['best_val_acc'])}) came with {params}; its test accuracy is "
            f"{pct(best['metrics']['test_acc'])}."]


# --------------------------------------------------------------------- views across a suite


def _model_selection(suite_rows: list[dict], all_rows: list[dict]) -> dict:
    seen, rows = set(), []
    for r in suite_rows:
        info, model = r.get("model_info") or {}, r.get("config", {}).get("model", {}).get("name", "")
        if model in seen or "params" not in info:
            continue
        seen.add(model)
        rows.append([model, info.get("weights") or "–", info["input"], f"{info['params'] / 1e6:.2f}",
                     f"{info['flops'] / 1e9:.2f}", _opt(info.get("file_size_mb"), ".1f"),
                     _opt(info.get("imagenet_acc1"), ".1f"), f"{info['latency_ms']:.1f}"])
    table = {"caption": "Candidate backbones at the input size of this run. GFLOPs: floating-point operations of "
                        "one forward pass, counted by torch.utils.flop_counter (two per multiply-add; torchvision's "
                        "meta calls the multiply-add count GFLOPS, half this). Parameters are counted with the "
                        "ImageNet head. Latency: median of 10 forward passes of one image on the run's device.",
             "headers": ["model", "weights", "input", "params (M)", "GFLOPs", "file (MB)", "ImageNet acc@1 (%)",
                         "latency (ms)"], "rows": rows, "numeric_from": 3}
    if not rows:
        return _task(findings=["No model costs were recorded in this run."])
    cheapest = min(rows, key=lambda row: float(row[4]))
    return _task(tables=[table], findings=[f"{len(rows)} candidate models; the cheapest per image is {cheapest[0]} "
                                           f"({cheapest[4]} GFLOPs at {cheapest[2]})."])


def _compare_modes(suite_rows: list[dict], all_rows: list[dict]) -> dict:
    by_id = {r["id"]: r for r in all_rows}
    pairs = [(by_id[c], r) for r in suite_rows for c in r.get("compare", [])
             if c in by_id and by_id[c].get("mode") != r.get("mode")]
    rows, faster, better = [], [], 0
    for a, b in pairs:
        if a["status"] != "ok" or b["status"] != "ok":
            continue
        ma, mb = a["metrics"], b["metrics"]
        speedup = ma["s_per_epoch"] / mb["s_per_epoch"]
        faster.append(speedup)
        better += ma["test_acc"] > mb["test_acc"]
        rows.append([a.get("config", {}).get("model", {}).get("name", a["label"]), f"{a['mode']} / {b['mode']}",
                     f"{pct(ma['test_acc'])} / {pct(mb['test_acc'])}", f"{pct(ma['best_val_acc'])} / {pct(mb['best_val_acc'])}",
                     f"{ma['s_per_epoch']:.2f} / {mb['s_per_epoch']:.2f}", f"{speedup:.1f}×",
                     f"{_oscillation(a):.1f} / {_oscillation(b):.1f}"])
    if not rows:
        return _task(findings=["No pair of cases compared across modes finished in this run."])
    table = {"caption": "Each backbone in both modes (first / second). Oscillation: mean absolute change of the "
                        "validation accuracy from one epoch to the next, in percentage points.",
             "headers": ["model", "modes", "test acc", "best val acc", "s/epoch", "speed-up of the second",
                         "oscillation (pp)"], "rows": rows, "numeric_from": 2}
    span = f"{min(faster):.1f}×" if max(faster) - min(faster) < 0.05 else f"{min(faster):.1f}–{max(faster):.1f}×"
    findings = [f"The second mode ran {span} faster per epoch (a frozen backbone's features are computed once).",
                f"The first mode reached the higher test accuracy for {better} of {len(rows)} models."]
    return _task(tables=[table], findings=findings)


def _test_gap(suite_rows: list[dict], all_rows: list[dict]) -> dict:
    ok = [r for r in suite_rows if r["status"] == "ok"]
    if not ok:
        return _task(findings=["No case of this suite finished."])
    rows = [[r["label"], pct(r["metrics"]["best_val_acc"]), pct(r["metrics"]["test_acc"]),
             f"{100 * (r['metrics']['test_acc'] - r['metrics']['best_val_acc']):+.1f} pp"] for r in ok]
    table = {"caption": "Validation vs test accuracy. The test split may come from another acquisition than "
                        "train and validation (for the built-in data it does), so the gap measures the shift.",
             "headers": ["case", "best val acc", "test acc", "test − val"], "rows": rows}
    gaps = [r["metrics"]["test_acc"] - r["metrics"]["best_val_acc"] for r in ok]
    findings = [f"Test accuracy is between {100 * min(gaps):+.1f} and {100 * max(gaps):+.1f} pp from the best "
                f"validation accuracy (mean {100 * sum(gaps) / len(gaps):+.1f} pp)."]
    scratch = [r for r in all_rows if r["status"] == "ok" and r.get("mode") == "from scratch"]
    if scratch:
        best = max(scratch, key=lambda r: r["metrics"]["test_acc"])
        above = [r["label"] for r in ok if r["metrics"]["test_acc"] > best["metrics"]["test_acc"]]
        findings.append(f"The best model trained from scratch in this run, {best['label']}, reached "
                        f"{pct(best['metrics']['test_acc'])} test accuracy; {len(above)} of {len(ok)} cases here "
                        f"score above it{': ' + ', '.join(above) if above else ''}.")
    else:
        findings.append("No model trained from scratch is in this run to compare with.")
    return _task(tables=[table], findings=findings)


def _oscillation(row: dict) -> float:
    val = [h["val_acc"] for h in row.get("history", [])]
    steps = [abs(b - a) for a, b in zip(val, val[1:])]
    return 100 * sum(steps) / len(steps) if steps else 0.0


def _opt(value, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


VIEWS = {"model_selection": _model_selection, "compare_modes": _compare_modes, "test_gap": _test_gap}


def _settings_row(r: dict) -> list[str]:
    c = r.get("config", {})
    model, data, train = c.get("model", {}), c.get("data", {}), c.get("train", {})
    options = ", ".join(f"{k}={v}" for k, v in model.get("options", {}).items()) or "–"
    scheduler = train.get("scheduler", "")
    if train.get("scheduler_options"):
        scheduler += " (" + ", ".join(f"{k}={v}" for k, v in train["scheduler_options"].items()) + ")"
    return [r["label"], model.get("name", ""), options, f"{data.get('channels')}×{data.get('image_size')}²",
            str(train.get("epochs", "")), str(train.get("batch_size", "")), train.get("optimizer", ""),
            f"{train.get('lr', 0):g}", f"{train.get('weight_decay', 0):g}", scheduler, train.get("loss", "")]


def _results_row(r: dict) -> list[str]:
    m = r["metrics"]
    auc = "n/a" if m.get("test_auc") is None else f"{m['test_auc']:.3f}"
    return [r["label"], f"{m['train_loss']:.4f}", pct(m["train_acc"]), f"{m['best_val_loss']:.4f}",
            pct(m["best_val_acc"]), pct(m["test_acc"]), auc, pct(m["test_sensitivity"]),
            pct(m["test_specificity"]), _duration(m["wall_time_s"]), f"{m['s_per_epoch']:.2f}"]


def _duration(seconds: float) -> str:
    minutes, secs = divmod(seconds, 60)
    return f"{int(minutes):02d}:{secs:04.1f}"


def _analysis(data: dict | None, ok: list[dict]) -> dict:
    summary = (data or {}).get("summary") or {}
    table = {"headers": ["case", "best val acc", "test acc", "test − val", "test AUC"],
             "rows": [[r["label"], pct(r["metrics"]["best_val_acc"]), pct(r["metrics"]["test_acc"]),
                       f"{100 * (r['metrics']['test_acc'] - r['metrics']['best_val_acc']):+.1f} pp",
                       "n/a" if r["metrics"].get("test_auc") is None else f"{r['metrics']['test_auc']:.3f}"]
                      for r in ok]}
    return {
        "table": table if ok else None,
        "val_test_figure": plots.val_vs_test([r["label"] for r in ok], [r["metrics"]["best_val_acc"] for r in ok],
                                             [r["metrics"]["test_acc"] for r in ok]) if ok else None,
        "confusion_figure": plots.confusion_matrices([(r["label"], r["metrics"]["test_confusion"]) for r in ok])
        if ok else None,
        "histogram_figure": plots.intensity_histograms(summary["histograms"], summary["histogram_bins"])
        if summary.get("histograms") else None,
        "samples_figure": plots.sample_grid(summary["samples"]) if summary.get("samples") else None,
        "sample_size": summary.get("image_size"),
    }


def _environment(doc: dict) -> list[tuple[str, str]]:
    pairs = []
    for group in ("machine_info", "software", "commit_info"):
        for key, value in (doc.get(group) or {}).items():
            pairs.append((f"{group}.{key}", json.dumps(value) if isinstance(value, (dict, list)) else str(value)))
    return pairs
