"""Comparisons and findings: each states the outcome ``results.decisions`` reached — a winner only when the
procedure-level test rejects, equivalence, undecided, or not tested — with the interval that outcome used."""

import numpy as np
from sklearn.metrics import roc_auc_score

from xraybench import results, stats
from xraybench.report import comparisons, findings, tasks
from xraybench.results import decisions

N = 400


def labels(seed=0):
    return (np.random.default_rng(seed).random(N) < 0.625).astype(int)


def predictions(y, accuracy, seed):
    """Probabilities whose thresholded labels are right on about ``accuracy`` of the images."""
    rng = np.random.default_rng(seed)
    right = rng.random(len(y)) < accuracy
    confident = 0.5 + 0.5 * rng.random(len(y))
    p_true = np.where(right, confident, 1 - confident)
    return np.round(np.where(y == 1, p_true, 1 - p_true), 4)


def doc_with(cases: dict[str, list[float]], y=None, compare=None) -> dict:
    """A results document whose case ``id`` has one row per accuracy in its list (one per seed)."""
    y = labels() if y is None else y
    rows = []
    for index, (case_id, accuracies) in enumerate(cases.items()):
        for seed, accuracy in enumerate(accuracies):
            probs = predictions(y, accuracy, 100 * index + seed)
            correct = (results.says_pneumonia(probs) == y).mean()
            rows.append(
                {
                    "id": case_id,
                    "seed": seed,
                    "status": "ok",
                    "suite": "hw3",
                    "task": "A",
                    "compare": (compare or {}).get(case_id, []),
                    "history": [
                        {
                            "epoch": 1,
                            "train_acc": 0.9,
                            "val_acc": 0.85,
                            "train_loss": 0.3,
                            "val_loss": 0.4,
                            "epoch_time_s": 1.0 + 0.01 * seed,
                        }
                    ],
                    "metrics": {"test_acc": float(correct), "best_val_acc": 0.85, "s_per_epoch": 1.0 + 0.01 * seed},
                    "predictions": {"test": probs.tolist()},
                }
            )
    return {
        "schema_version": 2,
        "data": {
            "images": {"test": {"ids": [f"test/{i}" for i in range(N)], "labels": y.tolist()}},
            "splits": {"test": {"images": N, "pneumonia": int(y.sum()), "normal": int(N - y.sum())}},
        },
        "cases": rows,
    }


def test_difference_inside_the_noise_is_undecided_and_says_what_the_seeds_detect():
    doc = doc_with({"a": [0.86, 0.85, 0.87], "b": [0.85, 0.86, 0.85]})
    cases = results.by_case(doc)
    result = comparisons.compare_cases(cases["a"], cases["b"])
    verdict = result.decision.primary
    assert result.winner is None and verdict.outcome == "undecided" and verdict.low < 0 < verdict.high
    sentences = findings.task_findings(list(cases.values()), [result])
    assert sentences[0].startswith("a vs b: test accuracy undecided after 3 and 3 seeds (Δ = ")
    assert "95% interval [" in sentences[0] and "with 80% power" in sentences[0]
    assert "Test AUC: not tested (secondary; test accuracy undecided) — Δ = " in sentences[0]
    assert not any("higher test accuracy" in s or "no detectable" in s for s in sentences)


def test_a_clear_difference_names_the_winner_and_its_lead():
    doc = doc_with({"strong": [0.95, 0.94, 0.95], "weak": [0.75, 0.76, 0.74]})
    cases = results.by_case(doc)
    result = comparisons.compare_cases(cases["weak"], cases["strong"])
    verdict = result.decision.primary
    assert result.winner == "strong" and verdict.outcome == "B better" and verdict.p_value < 0.01 and verdict.high < 0
    assert result.result.beat is None  # P(A beats B) only from 10 seeds a side
    sentence = result.sentence()
    assert sentence.startswith("strong has a higher test accuracy than weak (Δ = +")  # the winner's lead
    lead = sentence.split("95% interval [")[1].split("]")[0]
    assert all(float(bound) > 0 for bound in lead.split(", "))  # as the winner's lead, the interval is above zero
    assert "Secondary: strong has a higher test AUC than weak (Δ = +" in sentence
    assert set(result.result.mcnemar_per_seed) == {0, 1, 2} and result.result.models_p < 0.001


def test_seed_noise_alone_names_no_winner_though_the_sign_test_rejects():
    """Two settings whose seeds scatter by several points: some pairs of trained models differ (McNemar),
    the settings do not (the procedure-level test) — and the sentence does not say they do."""
    doc = doc_with({"a": [0.90, 0.80, 0.86], "b": [0.81, 0.89, 0.83]})
    cases = results.by_case(doc)
    result = comparisons.compare_cases(cases["a"], cases["b"])
    assert min(result.result.mcnemar_per_seed.values()) < 0.05 and result.winner is None
    assert "test accuracy undecided after 3 and 3 seeds" in result.sentence()


def test_a_margin_declares_equivalence_on_the_90_percent_interval():
    doc = doc_with({"a": [0.86, 0.85, 0.87], "b": [0.85, 0.86, 0.85]})
    for row in doc["cases"]:
        row["margin"] = {"test_acc": 0.08}
    cases = results.by_case(doc)
    result = comparisons.compare_cases(cases["a"], cases["b"])
    verdict = result.decision.primary
    assert verdict.outcome == "equivalent" and verdict.confidence == 0.9 and -0.08 < verdict.low < verdict.high < 0.08
    assert result.sentence().startswith("a and b are equivalent in test accuracy within ±8 pp (Δ = ")
    assert "90% interval [" in result.sentence()


def test_seeds_that_all_score_alike_are_undecided_without_an_interval():
    """Collapsed seeds (every seed of both sides predicts every image alike, as a degenerate model does): no spread,
    so no test and no interval — the claim says so instead of printing [+0.0, +0.0]."""
    doc = doc_with({"a": [0.9, 0.9, 0.9], "b": [0.9, 0.9, 0.9]})
    for row in doc["cases"]:
        row["predictions"] = doc["cases"][0]["predictions"]
    cases = results.by_case(doc)
    result = comparisons.compare_cases(cases["a"], cases["b"])
    claim = result.claims()[0]
    assert claim.kind == "undecided" and claim.verdict.low is None
    assert result.sentence().startswith("a vs b: test accuracy undecided after 3 and 3 seeds (Δ = +0.0 pp; every seed")
    assert "interval [" not in result.sentence().split("Test AUC")[0]
    assert claim.cells()[1:4] == ["undecided (no spread between seeds)", "+0.0 pp", "–"]


def test_ten_seeds_a_side_show_the_probability_of_beating():
    doc = doc_with(
        {
            "strong": [0.95, 0.94, 0.95, 0.96, 0.94, 0.95, 0.95, 0.94, 0.96, 0.95],
            "weak": [0.75, 0.76, 0.74, 0.75, 0.75, 0.76, 0.74, 0.75, 0.75, 0.74],
        }
    )
    cases = results.by_case(doc)
    result = comparisons.compare_cases(cases["weak"], cases["strong"])
    assert result.result.beat.p == 0.0 and result.result.beat.high < 0.5


def test_fewer_than_three_seeds_a_side_test_nothing_and_say_so():
    for accuracies in ([0.98], [0.98, 0.97]):
        doc = doc_with({"a": accuracies, "b": [0.70] * len(accuracies)})
        cases = results.by_case(doc)
        result = comparisons.compare_cases(cases["a"], cases["b"])
        assert result.result.models_p < 0.001 and result.decision.primary.outcome == "untested"
        assert result.winner is None
        sentence = result.sentence()
        assert sentence.startswith(f"a vs b: not tested: fewer than 3 seeds a side ({len(accuracies)} and ")
        assert "no winner is named" in sentence and "interval" not in sentence  # two seeds' spread is no spread


def test_rows_without_predictions_are_not_compared():
    doc = doc_with({"a": [0.9], "b": [0.8]}, compare={"a": ["b"]})
    for row in doc["cases"]:
        del row["predictions"]
    cases = results.by_case(doc)
    result = comparisons.compare_cases(cases["a"], cases["b"])
    assert result.result is None and all(v is None for v in result.decision.verdicts.values())
    sentences = findings.task_findings(list(cases.values()), [result])
    assert sentences[0] == "a vs b: not tested (these results hold no per-image predictions); no winner is named."


def test_majority_class_and_resolution():
    y = labels()
    doc = doc_with({"a": [0.9, 0.91, 0.89]}, y)
    n, positives = tasks.majority_class(doc)
    low, high = stats.wilson(positives, n)
    assert positives / n == y.mean() and low < y.mean() < high
    detectable = stats.resolution([c.summary("test_acc") for c in results.by_case(doc).values()], N)
    assert 0.03 < detectable < 0.08  # 400 images around 90 %: a few points, not tenths of one


def test_predictions_are_read_from_the_run_and_a_row_may_carry_its_own_images():
    run = results.parse(doc_with({"a": [0.9]}), "a run")
    ids, y, probs = results.predictions(run, run.cases[0])
    assert ids[0] == "test/0" and len(y) == len(probs) == N
    run.cases[0].images = {"test": results.SplitImages(ids=["x"] * N, labels=y.tolist())}
    assert results.predictions(run, run.cases[0])[0][0] == "x"
    assert results.predictions(run, results.Row(id="b", status="ok")) is None


def test_stored_probabilities_never_cross_the_threshold():
    # P > 0.5 says PNEUMONIA: 0.50004 must not round down to 0.5, which says NORMAL; 0.49996 may round up to it.
    assert results.stored_probability(0.50004) == 0.5001 and results.stored_probability(0.5) == 0.5
    assert results.stored_probability(0.49996) == 0.5 and not results.says_pneumonia(0.5)


def test_files_from_before_the_strict_rule_keep_their_labels():
    """Older files stored a probability in [0.5, 0.50005) as 0.5, which then said PNEUMONIA: reading them
    gives 0.5001, which still does."""
    row = {"id": "a", "status": "ok", "predictions": {"test": [0.5, 0.4999, 0.7]}}
    old = results.parse({"schema_version": 2, "cases": [row]}, "an older run")
    assert old.cases[0].predictions["test"] == [0.5001, 0.4999, 0.7]
    new = results.parse({"schema_version": results.SCHEMA_VERSION, "cases": [row]}, "a run")
    assert new.cases[0].predictions["test"] == [0.5, 0.4999, 0.7]
    assert results.stored_probability(0.123456) == 0.1235 and results.stored_probability(0.99999) == 1.0


# A run in which every outcome occurs, from per-image predictions drawn as a training would leave them: each image has
# a difficulty every model shares, each case a skill, each seed an offset and each prediction some noise.
FOUR_OUTCOMES = {  # case: task, skill, seed sd, noise, seeds, train − validation gap, compared with
    "hw3-a-cnn": ("A", 2.0, 0.05, 0.3, 5, 0.10, []),
    "hw3-a-cnn-dropout": ("A", 2.0, 0.05, 0.3, 5, 0.02, ["hw3-a-cnn"]),  # smaller gap; test accuracy equivalent
    "hw3-b-mlp": ("B", 1.0, 0.05, 0.5, 3, 0.05, ["hw3-a-cnn"]),  # the CNN better, in accuracy and then AUC
    "hw3-c-gap": ("C", 1.9, 0.4, 0.5, 5, 0.05, ["hw3-a-cnn"]),  # seeds scatter: undecided, AUC not tested
    "hw3-d-wide": ("D", 2.0, 0.1, 0.5, 2, 0.05, ["hw3-a-cnn"]),  # two seeds: not tested
}
QUESTIONS = {
    "A": {"text": "Does dropout reduce overfitting?", "answer_on": ["train_val_gap", "test_acc"]},
    "B": {"text": "Is a CNN better than an MLP?", "answer_on": ["test_acc", "test_auc"]},
    "C": {"text": "Does global average pooling keep the accuracy?", "answer_on": ["test_acc", "test_auc"]},
}
IMAGES = 600
# Dropout's test accuracy is equivalent within ±3 pp: also at --seeds auto's first look (3 seeds a side, a level of
# 0.003), where ±2 pp is too tight for this noise.
MARGINS = {"hw3-a-cnn-dropout": {"test_acc": 0.03}}


def _probabilities(y, difficulty, skill, seed_sd, noise, rng):
    logit = skill + rng.normal(0, seed_sd) + difficulty + rng.normal(0, noise, len(y))
    right = np.clip(np.round(1 / (1 + np.exp(-logit)), 4), 0.0001, 0.9999)
    right = np.where(right == 0.5, 0.5001, right)
    return np.where(y == 1, right, 1 - right)


def four_outcomes_doc(spec: dict = FOUR_OUTCOMES) -> dict:
    """A results document of schema 2 whose declared comparisons end as A better, B better, equivalent, undecided and
    not tested (``results.decisions``), with the suite's questions."""
    rng = np.random.default_rng(7)
    y = (rng.random(IMAGES) < 0.6).astype(int)
    difficulty = rng.normal(0, 2.0, IMAGES)
    rows = []
    for index, (case_id, (task, skill, seed_sd, noise, seeds, gap, compare)) in enumerate(spec.items()):
        for seed in range(seeds):
            seed_rng = np.random.default_rng(1000 * index + seed)
            probs = _probabilities(y, difficulty, skill, seed_sd, noise, seed_rng)
            val_acc = 0.8 + seed_rng.normal(0, 0.01)
            train_acc = val_acc + gap + seed_rng.normal(0, 0.01)
            confusion = results.confusion(y, probs)
            rows.append(
                {
                    "id": case_id,
                    "seed": seed,
                    "status": "ok",
                    "suite": "hw3",
                    "task": task,
                    "title": case_id,
                    "compare": compare,
                    **({"margin": MARGINS[case_id]} if case_id in MARGINS else {}),
                    "history": [
                        {
                            "epoch": 1,
                            "train_acc": train_acc,
                            "val_acc": val_acc,
                            "train_loss": 0.3,
                            "val_loss": 0.4,
                            "epoch_time_s": 1.0,
                        }
                    ],
                    "metrics": {
                        "test_acc": float((results.says_pneumonia(probs) == y).mean()),
                        "test_auc": float(roc_auc_score(y, probs)),
                        "test_sensitivity": confusion.tp / (confusion.tp + confusion.fn),
                        "test_specificity": confusion.tn / (confusion.tn + confusion.fp),
                        "test_confusion": confusion.model_dump(),
                        "best_val_acc": val_acc,
                        "train_acc": train_acc,
                        "train_loss": 0.3,
                        "s_per_epoch": 1.0 + 0.01 * seed,
                    },
                    "predictions": {"test": probs.tolist()},
                }
            )
    return {
        "schema_version": 2,
        "run_id": "four-outcomes",
        "datetime": "2025-01-01T00:00:00+00:00",
        "suites": {
            "hw3": {
                "title": "HW3: CNNs from scratch",
                "tasks": {"A": "Dropout", "B": "MLP vs CNN", "C": "Global average pooling", "D": "A wider head"},
                "questions": QUESTIONS,
            }
        },
        "data": {
            "images": {"test": {"ids": [f"test/{i}" for i in range(IMAGES)], "labels": y.tolist()}},
            "splits": {"test": {"images": IMAGES, "pneumonia": int(y.sum()), "normal": int(IMAGES - y.sum())}},
        },
        "cases": rows,
    }


def with_looks(doc: dict, max_seeds: int = 6) -> dict:
    """``doc`` as ``--seeds auto`` would have left it: each comparison looked at from 3 seeds a side, one more a side
    per look, at the group-sequential levels, until decided or out of seeds (``run.looks``)."""
    run = results.parse(doc, "auto")
    cases, looks = results.by_case(run), []
    for pair in decisions.pairs(run):
        have, fractions = (cases[pair.a].seeds, cases[pair.b].seeds), ()
        for k in range(stats.MIN_SEEDS, max(have) + 1):
            seeds = (min(k, have[0]), min(k, have[1]))
            fractions = (*fractions, min(seeds) / max_seeds)
            if len(fractions) > 1 and fractions[-1] <= fractions[-2]:
                break  # no new seed on the side that has fewest
            level = stats.nominal_levels(fractions)[-1]
            equivalence = stats.nominal_levels(fractions, sides=1)[-1]
            decision = decisions.decide(pair, cases, seeds, level, equivalence)
            verdict, d = decision.primary, decision.differences[pair.metrics[0]]
            looks.append(
                {
                    "round": len(fractions),
                    "a": pair.a,
                    "b": pair.b,
                    "metric": pair.metrics[0],
                    "seeds_a": seeds[0],
                    "seeds_b": seeds[1],
                    "fraction": fractions[-1],
                    "level": level,
                    "equivalence_level": equivalence,
                    "margin": pair.margin(pair.metrics[0]),
                    "difference": d.difference,
                    "se": d.se,
                    "df": d.df,
                    "p_value": verdict.p_value,
                    "outcome": verdict.outcome,
                }
            )
            if verdict.decided:
                break
    return {**doc, "settings": {"seeds": "auto", "max_seeds": max_seeds}, "looks": looks}


def test_the_four_outcomes_run_holds_every_outcome():
    outcomes = {
        (d.pair.a, m): v.outcome
        for d in decisions.decided(results.parse(four_outcomes_doc(), "x"))
        for m, v in d.verdicts.items()
    }
    assert outcomes == {
        ("hw3-a-cnn-dropout", "train_val_gap"): "A better",
        ("hw3-a-cnn-dropout", "test_acc"): "equivalent",
        ("hw3-b-mlp", "test_acc"): "B better",
        ("hw3-b-mlp", "test_auc"): "B better",
        ("hw3-c-gap", "test_acc"): "undecided",
        ("hw3-c-gap", "test_auc"): "untested",
        ("hw3-d-wide", "test_acc"): "untested",
        ("hw3-d-wide", "test_auc"): "untested",
    }
