"""Comparisons and findings: a winner is named only when the paired test rejects."""

import numpy as np

from xraybench import results, stats
from xraybench.report import comparisons, findings, tasks

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
            correct = ((probs >= 0.5) == y).mean()
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


def test_difference_inside_the_noise_is_no_detectable_difference():
    doc = doc_with({"a": [0.86, 0.85, 0.87], "b": [0.85, 0.86, 0.85]})
    cases = results.by_case(doc)
    result = comparisons.compare_cases(cases["a"], cases["b"])
    assert result.winner is None and result.accuracy.low < 0 < result.accuracy.high and result.accuracy.p_value >= 0.05
    sentences = findings.task_findings(list(cases.values()), [result])
    assert sentences[0].startswith("a vs b: no detectable difference in test accuracy (Δ = ")
    assert not any("higher test accuracy" in s for s in sentences)


def test_a_clear_difference_names_the_winner():
    doc = doc_with({"strong": [0.95, 0.94, 0.95], "weak": [0.75, 0.76, 0.74]})
    cases = results.by_case(doc)
    result = comparisons.compare_cases(cases["weak"], cases["strong"])
    assert result.winner == "strong" and result.accuracy.p_value < 0.01 and result.accuracy.high < 0
    assert result.beat is None  # P(A beats B) only from 10 seeds a side
    assert result.sentence().startswith("strong has a higher test accuracy than weak (Δ = +")  # the winner's lead
    assert set(result.mcnemar_per_seed) == {0, 1, 2} and result.models_p < 0.001


def test_seed_noise_alone_names_no_winner_though_the_sign_test_rejects():
    """Two settings whose seeds scatter by several points: some pairs of trained models differ (McNemar),
    the settings do not (the procedure-level test) — and the sentence does not say they do."""
    doc = doc_with({"a": [0.90, 0.80, 0.86], "b": [0.81, 0.89, 0.83]})
    cases = results.by_case(doc)
    result = comparisons.compare_cases(cases["a"], cases["b"])
    assert min(result.mcnemar_per_seed.values()) < 0.05 and result.winner is None
    assert "no detectable difference" in result.sentence()


def test_ten_seeds_a_side_show_the_probability_of_beating():
    doc = doc_with(
        {
            "strong": [0.95, 0.94, 0.95, 0.96, 0.94, 0.95, 0.95, 0.94, 0.96, 0.95],
            "weak": [0.75, 0.76, 0.74, 0.75, 0.75, 0.76, 0.74, 0.75, 0.75, 0.74],
        }
    )
    cases = results.by_case(doc)
    result = comparisons.compare_cases(cases["weak"], cases["strong"])
    assert result.beat.p == 0.0 and result.beat.high < 0.5


def test_one_seed_each_tests_nothing_across_seeds_and_says_so():
    doc = doc_with({"a": [0.98], "b": [0.70]})
    cases = results.by_case(doc)
    result = comparisons.compare_cases(cases["a"], cases["b"])
    assert result.beat is None and result.models_p == result.mcnemar_per_seed[0] < 0.001
    assert not result.accuracy.testable and result.winner is None
    assert "not tested across seeds" in result.sentence() and "no winner is named" in result.sentence()


def test_rows_without_predictions_are_not_compared():
    doc = doc_with({"a": [0.9], "b": [0.8]})
    for row in doc["cases"]:
        del row["predictions"]
    cases = results.by_case(doc)
    assert comparisons.compare_cases(cases["a"], cases["b"]) is None
    sentences = findings.task_findings(list(cases.values()), [], [("a", "b")])
    assert "not tested" in sentences[0] and "no winner" in sentences[0]


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
    assert results.stored_probability(0.49996) == 0.4999 and results.stored_probability(0.5) == 0.5
    assert results.stored_probability(0.123456) == 0.1235 and results.stored_probability(0.99999) == 1.0
