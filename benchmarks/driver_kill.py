"""Fault injection: SIGKILL the driver of a run mid-way, run the same command again, count the trainings.

    python benchmarks/driver_kill.py [--executor slurm|ray] [--cases 4] [--seconds 6] [--auto MAX_SEEDS]

The driver trains ``--cases`` cases on the smoke profile; each case's model takes ``--seconds`` to build
(the first one 0.1 s), so when the first row is in, the others are still training. Then the driver is
killed with SIGKILL — no handler runs, nothing is cancelled — and the same run is started again. Slurm runs
through submitit's local executor (jobs as local processes). Prints what was finished at the kill, what
the second driver adopted or trained, and how many trainings ran twice: on Slurm every submitted job is
adopted (0 repeated); on Ray the tasks die with their driver, so the cases that were running train again
and only the rows written before the kill are kept.

With ``--auto MAX_SEEDS`` the run adds seeds in rounds (``--seeds auto``): the cases compare with each other, with no
margin of equivalence, so their comparisons stay undecided and every round runs; the driver is killed once a row of
round 2 is in (the slow case's seed still training), and the second driver must recompute round 1's looks from the
rows alone and train only the seeds still missing.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

DRIVER = '''
import sys, time
from pathlib import Path
import torch
from torch import nn
from xraybench import runner
from xraybench.cases import PROFILES, declared_in, load_cases
from xraybench.data.sources import SyntheticSource
from xraybench.executors import ExecutorOptions
from xraybench.models import register_model
from xraybench.train.precision import Precision


@register_model
def sleepy_model(
    *, in_channels: int, image_size: int, num_outputs: int, seconds: float = 1.0, log: str = ""
) -> nn.Module:
    """A linear model that takes ``seconds`` to build; each training (a build inside train_case, not the
    model-cost probe's) appends a line to ``log``."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_name != "train_case":
        frame = frame.f_back
    if log and frame is not None:
        with open(log, "a") as out:
            out.write("training\\n")
    time.sleep(seconds)
    return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * image_size * image_size, num_outputs))


out, cases_file, executor_name, most = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
cases, suites = load_cases([cases_file])
cases = declared_in(cases, [cases_file])
plan = runner.RunPlan(profile=PROFILES["smoke"], device=torch.device("cpu"), out=out, run_id="killed",
                      source=SyntheticSource(PROFILES["smoke"].synthetic_sizes), precision=Precision("fp32", "fixed"),
                      auto=most > 0, max_seeds=most or None)
if executor_name == "slurm":
    from xraybench.executors.slurm_executor import SlurmExecutor
    executor = SlurmExecutor(ExecutorOptions(name="slurm", device="cpu", log_dir=out / "logs"), cluster="local")
else:
    import ray
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    from xraybench.executors.ray_executor import RayExecutor
    executor = RayExecutor(ExecutorOptions(name="ray", device="cpu"))
try:
    runner.run(cases, plan, suites, executor=executor)
finally:
    executor.close()
'''


@dataclass
class Outcome:
    executor: str
    cases: int
    finished_at_kill: int  # rows in results.json when the driver was killed
    kept: int  # of those, rows the second driver left exactly as they were
    trainings: int  # trainings started, over both drivers
    repeated: int  # trainings beyond one per row
    rows_ok: int  # ok rows in results.json at the end
    second_driver_s: float
    second_driver_out: str


def case_file(path: Path, cases: int, seconds: float, log: Path, compared: bool = False) -> Path:
    """``cases`` sleepy cases (the first quick); ``compared``: each compares with the first, with no margin."""
    compare = '\ncompare = ["hw3-sleepy-0"]\nmargin = { test_acc = 0.0, test_auc = 0.0 }' * compared
    blocks = [
        f'[[case]]\nid = "hw3-sleepy-{n}"\ntask = "A"\ntitle = "sleepy {n}"\n'
        f'model = {{ name = "sleepy_model", options = {{ seconds = {0.1 if n == 0 else seconds}, '
        f'log = "{log}" }} }}' + (compare if n else "") + "\n"
        for n in range(cases)
    ]
    path.write_text('suite = "hw3"\n[tasks]\nA = "a task"\n' + "\n".join(blocks))
    return path


def run(work: Path, executor: str = "slurm", cases: int = 4, seconds: float = 6.0, auto: int = 0) -> Outcome:
    """Start a driver, SIGKILL it once the first row is written (``auto``: the first row of round 2, seeds added
    up to ``auto`` a case), start it again; count what trained."""
    log = work / "trainings.log"
    script = work / "driver.py"
    script.write_text(DRIVER)
    command = [
        sys.executable,
        str(script),
        str(work / "out"),
        str(case_file(work / "cases.toml", cases, seconds, log, compared=auto > 0)),
        executor,
        str(auto),
    ]
    kill_at = 3 * cases + 1 if auto else 1  # round 1 trains 3 seeds a compared case
    results_path = work / "out" / "killed" / "results.json"
    driver = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while len(_rows(results_path)) < kill_at:
        if driver.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the first driver ended before a row was written: {driver.stderr.read()[-2000:]}")
        time.sleep(0.05)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    before = _rows(results_path)
    start = time.perf_counter()
    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if again.returncode != 0:
        raise RuntimeError(f"the resumed driver failed: {again.stderr[-2000:]}")
    trainings = len(log.read_text().splitlines())
    rows = _rows(results_path)
    kept = sum(row in rows for row in before)
    return Outcome(
        executor,
        cases,
        len(before),
        kept,
        trainings,
        trainings - len(rows),
        sum(r["status"] == "ok" for r in rows),
        time.perf_counter() - start,
        again.stdout,
    )


def _rows(path: Path) -> list[dict]:
    try:
        return json.loads(path.read_text())["cases"]
    except (FileNotFoundError, ValueError, KeyError):
        return []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executor", choices=["slurm", "ray"], default="slurm")
    parser.add_argument("--cases", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--auto", type=int, default=0, metavar="MAX_SEEDS", help="--seeds auto up to MAX_SEEDS")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        o = run(Path(tmp), args.executor, args.cases, args.seconds, args.auto)
    print(
        f"{o.executor}{' --seeds auto' * bool(args.auto)}: {o.cases} cases; {o.finished_at_kill} row(s) written "
        f"when the driver was SIGKILLed "
        f"({o.kept} of them kept as they were); "
        f"after the second driver ({o.second_driver_s:.0f} s): {o.rows_ok} ok row(s), {o.trainings} training(s) "
        f"in all, {o.repeated} repeated"
    )


if __name__ == "__main__":
    main()
