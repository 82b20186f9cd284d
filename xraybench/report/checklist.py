"""The report's reporting checklist: CLAIM 2024 (Tejani et al., Radiology: Artificial Intelligence 2024;
44 items) and the TRIPOD+AI items (Collins et al., BMJ 2024) that add to it, each with the part of this report
that answers it, or what only the author can supply. Item texts are short paraphrases, not the checklists'
wording; the numbers are the 2024 CLAIM numbering (the 2020 version had 42 items, numbered otherwise)."""

from __future__ import annotations

from xraybench.report.tables import Table

AUTHOR = "to be supplied by the author"
CONFIG = "Appendix: case configurations (and results.json)"
CARD = "Model card"
TASKS = "each task: What was compared, Results"
ANALYSIS = "each task: Operating points and calibration"

# (guideline, item, paraphrase, where this report answers it)
ITEMS = [
    (
        "CLAIM",
        "1",
        "name the AI technique in the title or abstract",
        "title: deep learning classifiers (case list in Appendix: case configurations)",
    ),
    ("CLAIM", "2", "structured abstract", AUTHOR),
    ("CLAIM", "3", "background, intended use and clinical role", f"{CARD}: intended use, out-of-scope use"),
    (
        "CLAIM",
        "4",
        "aims and hypotheses stated in advance",
        "the suites' tasks (section titles); hypotheses: " + AUTHOR,
    ),
    ("CLAIM", "5", "prospective or retrospective", "retrospective, public or built-in data (title page: Dataset)"),
    ("CLAIM", "6", "study goal", "benchmark of training procedures (How to read the numbers)"),
    ("CLAIM", "7", "data sources, with links for public sets", "title page: Dataset; Model card: data accounting"),
    (
        "CLAIM",
        "8",
        "inclusion and exclusion criteria",
        "title page: Dataset notes (skipped unreadable images, per-split limits)",
    ),
    ("CLAIM", "9", "preprocessing, replicable", f"{CONFIG}: image size, resize, padding, normalisation, augmentation"),
    ("CLAIM", "10", "selection of data subsets", "title page: Dataset notes (profile limits, carved validation split)"),
    ("CLAIM", "11", "de-identification", AUTHOR + " (the public sources are de-identified by their publishers)"),
    (
        "CLAIM",
        "12",
        "missing data and the bias it may bring",
        "title page: Dataset notes (unreadable files skipped and listed)",
    ),
    ("CLAIM", "13", "image acquisition protocol", AUTHOR + " (not in the public sources)"),
    ("CLAIM", "14", "reference standard, replicable", f"{CARD}: data accounting (the source's labels)"),
    ("CLAIM", "15", "why that reference standard", AUTHOR),
    ("CLAIM", "16", "who labelled, with what qualifications", AUTHOR + " (the source's publication)"),
    ("CLAIM", "17", "test-set labelling procedure and tools", AUTHOR + " (the source's publication)"),
    ("CLAIM", "18", "inter- and intra-rater variability", AUTHOR),
    (
        "CLAIM",
        "19",
        "how data were assigned to partitions, proportions",
        f"title page: Dataset table; {CARD}: data accounting",
    ),
    (
        "CLAIM",
        "20",
        "level at which partitions are disjoint",
        f"{CARD}: data accounting (patients by file name, identical images)",
    ),
    (
        "CLAIM",
        "21",
        "test-set size and how it was set",
        "each task: Results: test set, resolution line (smallest detectable difference)",
    ),
    (
        "CLAIM",
        "22",
        "model description: inputs, outputs, layers",
        f"{CONFIG}; Model selection view (parameters, GFLOPs, input)",
    ),
    ("CLAIM", "23", "software and versions", "Appendix: environment; title page: Software"),
    (
        "CLAIM",
        "24",
        "parameter initialisation",
        f"{CONFIG} (pretrained weights or from scratch); banner for random initialisation",
    ),
    (
        "CLAIM",
        "25",
        "training details: augmentation, hyperparameters, stopping, number of models",
        f"{CONFIG}; {TASKS}; seeds per case",
    ),
    (
        "CLAIM",
        "26",
        "how the final model was selected",
        "How to read the numbers; the epoch kept by validation (select_by)",
    ),
    ("CLAIM", "27", "ensembling", "none: each seed is one model, reported over seeds"),
    ("CLAIM", "28", "metrics and why", "How to read the numbers; each task: Results: test set"),
    (
        "CLAIM",
        "29",
        "statistics for significance and uncertainty",
        "How to read the numbers; every interval; comparisons' tests",
    ),
    ("CLAIM", "30", "robustness or sensitivity analyses", "seeds (each case's spread); sweeps where declared"),
    (
        "CLAIM",
        "31",
        "explainability methods and their validation",
        "each task: Error gallery (misclassified images); saliency: " + AUTHOR,
    ),
    (
        "CLAIM",
        "32",
        "internal test; train versus test performance",
        "Test-set analysis: validation vs test; Results: training",
    ),
    (
        "CLAIM",
        "33",
        "external test, or say there was none",
        "the test split's source (title page: Dataset); external data: " + AUTHOR,
    ),
    ("CLAIM", "34", "trial registration", "not applicable to a benchmark; " + AUTHOR),
    (
        "CLAIM",
        "35",
        "cases included and excluded (flow)",
        f"title page: Dataset table and notes; {CARD}: data accounting",
    ),
    (
        "CLAIM",
        "36",
        "characteristics per partition",
        "title page: Dataset table (classes per split); Test-set analysis: intensity histograms; demographics: "
        + AUTHOR,
    ),
    (
        "CLAIM",
        "37",
        "performance on every partition and subgroup",
        "Results: training and test set; subgroups: " + AUTHOR + " (no demographics in the data)",
    ),
    ("CLAIM", "38", "estimates with their precision", "every number's 95% interval; Appendix: per-seed test metrics"),
    (
        "CLAIM",
        "39",
        "analysis of misclassified cases",
        "each task: Error gallery; Test-set analysis: confusion matrices",
    ),
    ("CLAIM", "40", "limitations", f"{CARD}: limitations"),
    ("CLAIM", "41", "implications for practice", f"{CARD}: intended use, out-of-scope use (no clinical use)"),
    ("CLAIM", "42", "where the protocol and details are", "the case files (benchmarks/cases) and results.json"),
    (
        "CLAIM",
        "43",
        "availability of code, models and data",
        "xraybench and its case files; data: the source's licence; weights: " + AUTHOR,
    ),
    ("CLAIM", "44", "funding", AUTHOR),
    (
        "TRIPOD+AI",
        "12e",
        "calibration and clinical utility beside discrimination",
        f"{ANALYSIS} (Brier score, ECE, reliability)",
    ),
    (
        "TRIPOD+AI",
        "13",
        "class imbalance and its handling",
        "title page: Dataset table; majority-class row in each test table",
    ),
    ("TRIPOD+AI", "14", "approaches to fairness", AUTHOR),
    (
        "TRIPOD+AI",
        "15",
        "output type and how thresholds were chosen",
        f"{ANALYSIS}: thresholds chosen on validation only",
    ),
    (
        "TRIPOD+AI",
        "16",
        "differences between development and evaluation data",
        "Test-set analysis: validation vs test, intensity histograms",
    ),
    ("TRIPOD+AI", "17", "ethics approval and consent", AUTHOR),
    (
        "TRIPOD+AI",
        "18e–f",
        "availability of data and analysis code",
        "results.json (every prediction) and the case files",
    ),
    ("TRIPOD+AI", "19", "patient and public involvement", AUTHOR),
    ("TRIPOD+AI", "23a", "performance in key subgroups, with intervals", AUTHOR + " (no demographics in the data)"),
]


def checklist_table() -> Table:
    return Table(
        ["guideline", "item", "what it asks (paraphrase)", "where this report answers it"],
        [list(item) for item in ITEMS],
        numeric_from=99,
        css_class="checklist",
        title="Appendix: reporting checklist (CLAIM 2024, TRIPOD+AI)",
        caption=f"CLAIM 2024 (Tejani et al., Radiology: Artificial Intelligence 2024), all 44 items in its "
        f"numbering, and the TRIPOD+AI items (Collins et al., BMJ 2024) that add to it; item texts are "
        f"paraphrases. “{AUTHOR}”: what only the study's author can state (ethics, clinical setting, "
        f"the data's provenance beyond its public source).",
    )
