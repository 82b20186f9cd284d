"""``--seeds auto``: the four outcomes, the group-sequential levels, the reference that holds when one side scatters,
and the runner's rounds — looks recorded, limits kept, and a run stopped mid-round resumed without training again."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats as scipy_stats

from xraybench import runner, stats
from xraybench.cases import PROFILES, declared_in, load_cases
from xraybench.cli import main
from xraybench.data.sources import SyntheticSource
from xraybench.executors import LocalExecutor
from xraybench.results import decisions
from xraybench.train.precision import Precision

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import driver_kill

SMOKE = ["--profile", "smoke", "--device", "cpu", "--precision", "fp32", "--no-report"]

# Two small real trainings that compare, with no margin of equivalence: their comparison stays undecided, so every
# round runs (a linear model's seeds differ; equal procedures are rarely called different at a look's level).
TWO_CASES = """
suite = "hw3"
[tasks]
A = "a task"
[questions]
A = "Is the second as good as the first?"
[[case]]
id = "hw3-first"
task = "A"
title = "first"
model = { name = "hw3_mlp", options = { hidden = [16], dropout = [0.0] } }
[[case]]
id = "hw3-second"
task = "A"
title = "second"
model = { name = "hw3_mlp", options = { hidden = [16], dropout = [0.0] } }
compare = ["hw3-first"]
margin = { test_acc = 0.0, test_auc = 0.0 }
"""


# ------------------------------------------------------------------- levels and outcomes


def test_one_look_is_the_fixed_test_at_alpha():
    assert stats.nominal_levels((1.0,), alpha=0.05) == pytest.approx((0.05,), abs=1e-9)
    assert stats.nominal_levels((1.0,), alpha=0.05, sides=1) == pytest.approx((0.05,), abs=1e-9)
    assert stats.nominal_levels((1.0,)) == pytest.approx((stats.sequential.SPENT,), abs=1e-9)  # what auto spends


def test_the_looks_together_spend_alpha_once():
    """Brownian paths looked at after 3, 4, 5 of 5 seeds' information cross a boundary 5% of the time."""
    fractions = (0.6, 0.8, 1.0)
    levels = stats.nominal_levels(fractions, alpha=0.05)
    assert levels[0] < levels[1] < levels[2] < 0.05  # early looks spend little
    rng = np.random.default_rng(0)
    steps = rng.normal(size=(200_000, 3)) * np.sqrt(np.diff((0.0, *fractions)))
    z = steps.cumsum(axis=1) / np.sqrt(fractions)
    crossed = (np.abs(z) >= scipy_stats.norm.isf(np.array(levels) / 2)).any(axis=1).mean()
    assert crossed == pytest.approx(0.05, abs=0.002)
    with pytest.raises(ValueError, match="increase"):
        stats.nominal_levels((0.8, 0.6))


def test_each_outcome_rests_on_the_interval_it_prints():
    decide = stats.decide
    better = decide(0.05, 0.01, 10, (3, 3), margin=0.02)
    assert better.outcome == "A better" and better.low > 0 and better.confidence == pytest.approx(0.95)
    assert decide(-0.05, 0.01, 10, (3, 3)).outcome == "B better"
    same = decide(0.001, 0.005, 10, (3, 3), margin=0.02)
    assert same.outcome == "equivalent" and same.low > -0.02 and same.high < 0.02
    assert same.confidence == pytest.approx(0.90)
    open_ = decide(0.01, 0.02, 10, (3, 3), margin=0.02)
    assert open_.outcome == "undecided" and open_.low < 0 < open_.high and open_.detectable > 0.02
    assert decide(0.001, 0.005, 10, (3, 3)).outcome == "undecided"  # no margin: equivalence is not asked
    assert decide(0.05, 0.01, 10, (2, 3)).outcome == "untested"  # a verdict needs 3 seeds a side
    collapsed = decide(0.0, 0.0, float("inf"), (3, 3), margin=0.02)  # every seed alike: nothing to test against
    assert collapsed.outcome == "undecided" and collapsed.low is None
    assert decide(0.05, 0.01, 10, (3, 3), higher_is_better=False).outcome == "B better"  # a gap: smaller is better


def test_the_reference_reads_a_dominant_seed_spread_at_its_few_degrees_of_freedom():
    """3 vs 3 seeds, one side's spread dominating: Welch–Satterthwaite's degrees of freedom from the estimates
    (about 3) are what made 7% false winners; read at their upper bounds they fall toward the 2 the spread has."""
    parts = [(25 / 3, 2), (1 / 3, 2), (1.4, 623)]
    plain = sum(v for v, _ in parts) ** 2 / sum(v**2 / d for v, d in parts)
    assert stats.welch_t(0.0, parts)["df"] < plain
    one = stats.welch_t(0.0, [(4.0, 5)])
    assert float(one["df"]) == pytest.approx(5)  # one part: its own degrees of freedom, as before


# ------------------------------------------------------------------- the runner's rounds


class Counting(LocalExecutor):
    """The local executor, counting what it is asked to train; ``stop_after`` completions, it is interrupted."""

    def __init__(self, stop_after: int | None = None):
        super().__init__()
        self.trained: list[tuple[str, int]] = []
        self.stop_after = stop_after

    def completions(self):
        for job, rows in super().completions():
            self.trained += [(case.id, case.train.seed) for case in job.cases]
            yield job, rows
            if self.stop_after is not None and len(self.trained) >= self.stop_after:
                raise KeyboardInterrupt


def _two_cases(write_cases):
    path = write_cases(TWO_CASES)
    cases, suites = load_cases([path])
    return declared_in(cases, [path]), suites


def _auto_plan(out: Path, most: int = 4, budget_s: float | None = None) -> runner.RunPlan:
    return runner.RunPlan(
        profile=PROFILES["smoke"],
        device=torch.device("cpu"),
        out=out,
        source=SyntheticSource(PROFILES["smoke"].synthetic_sizes),
        precision=Precision("fp32", "test"),
        auto=True,
        max_seeds=most,
        budget_s=budget_s,
    )


def test_undecided_comparisons_get_seeds_in_rounds_and_each_look_is_recorded(tmp_path, write_cases):
    cases, suites = _two_cases(write_cases)
    lines = []
    _, run = runner.run(cases, _auto_plan(tmp_path), suites, log=lines.append, executor=Counting())
    assert run.settings.seeds == "auto" and run.settings.max_seeds == 4
    assert [(look.round, look.seeds_a, look.seeds_b) for look in run.looks][:1] == [(1, 3, 3)]
    for look in run.looks:
        fractions = tuple(x.fraction for x in run.looks if x.round <= look.round)
        assert look.level == pytest.approx(stats.nominal_levels(fractions)[-1])
        assert look.outcome in stats.OUTCOMES
    last = run.looks[-1]
    if last.outcome == "undecided":  # the usual end: seeds added up to the most allowed
        assert (last.round, last.seeds_a) == (2, 4) and any("undecided at the most seeds" in line for line in lines)
    (decision,) = decisions.decided(run)  # the report's verdict is the last look's, on the seeds it had
    assert decision.primary.outcome == last.outcome and decision.seeds == (last.seeds_a, last.seeds_b)


def test_a_run_stopped_mid_round_resumes_without_training_again(tmp_path, write_cases):
    cases, suites = _two_cases(write_cases)
    first = Counting(stop_after=7)  # round 1 is 2 cases × 3 seeds; stopped inside round 2
    with pytest.raises(KeyboardInterrupt):
        runner.run(cases, _auto_plan(tmp_path), suites, log=lambda _: None, executor=first)
    again = Counting()
    _, run = runner.run(cases, _auto_plan(tmp_path), suites, log=lambda _: None, executor=again)
    assert not set(first.trained) & set(again.trained)
    assert sorted(first.trained + again.trained) == sorted((r.id, r.seed) for r in run.cases)
    assert run.looks[0].round == 1  # round 1's look recomputed from the rows kept


def test_no_round_starts_past_the_budget(tmp_path, write_cases):
    cases, suites = _two_cases(write_cases)
    lines = []
    _, run = runner.run(cases, _auto_plan(tmp_path, budget_s=0.001), suites, log=lines.append, executor=Counting())
    assert {look.round for look in run.looks} == {1} and len(run.cases) == 6
    assert any("budget" in line and "stay undecided" in line for line in lines)


def test_slurm_driver_killed_mid_round_resumes_without_training_again(tmp_path):
    outcome = driver_kill.run(tmp_path, "slurm", cases=2, seconds=6, auto=4)
    assert outcome.finished_at_kill == 7 and outcome.kept == 7  # round 1 (6) and one seed of round 2
    assert outcome.rows_ok == 8 and outcome.repeated == 0


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--seeds", "0"], "a whole number of seeds, at least 1, or auto"),
        (["--seeds", "many"], "a whole number of seeds, at least 1, or auto"),
        (["--seeds", "3", "--max-seeds", "6"], "--max-seeds: only with --seeds auto"),
        (["--budget", "1h"], "--budget: only with --seeds auto"),
        (["--seeds", "auto", "--max-seeds", "2"], "--max-seeds 2: at least 3"),
        (["--seeds", "auto", "--budget", "soon"], "a duration such as 90m"),
    ],
)
def test_seed_options_are_checked_in_one_line(tmp_path, write_cases, capsys, argv, message):
    path = write_cases(TWO_CASES)
    try:
        code = main(["run", "--all", "--cases", str(path), "--out", str(tmp_path / "out"), *SMOKE, *argv])
    except SystemExit as stopped:  # argparse's refusal of a value
        code = stopped.code
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_the_header_says_how_seeds_are_chosen(tmp_path, write_cases, capsys):
    path = write_cases(TWO_CASES)
    argv = ["run", "--all", "--cases", str(path), "--out", str(tmp_path), *SMOKE, "--seeds", "auto"]
    assert main([*argv, "--max-seeds", "3"]) == 0
    out = capsys.readouterr().out
    assert "seeds: auto (chosen)" in out and "at most 3 a case" in out
