"""Executors: the same rows from Ray and from this process, one GPU per concurrent case, a worker that
dies, resume, and Slurm through submitit's local executor (its sbatch text through a fake sbatch)."""

import dataclasses
import itertools
import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import ray
import submitit
import torch

from xraybench import environment, executors, report, results, runner
from xraybench.cases import PROFILES, declared_in, load_cases, select
from xraybench.cli import main
from xraybench.data.cache import CachedData
from xraybench.data.sources import SyntheticSource
from xraybench.executors import ExecutorOptions, LocalExecutor
from xraybench.executors.slurm_executor import SlurmExecutor, _last_line
from xraybench.train import worker
from xraybench.train.precision import Precision
from xraybench.train.worker import Job

SMOKE = ["--profile", "smoke", "--device", "cpu", "--precision", "fp32", "--no-report"]
COMPARED = (
    "test_acc",
    "test_auc",
    "test_loss",
    "test_sensitivity",
    "test_specificity",
    "test_confusion",
    "best_val_acc",
    "best_epoch",
    "train_acc",
    "train_loss",
)

KILLED_AND_FINE = """
suite = "hw3"
[tasks]
A = "a task"
[[case]]
id = "hw3-killed"
task = "A"
title = "dies"
model = {{ name = "crash_model", options = {{ attempts = "{attempts}" }} }}
[[case]]
id = "hw3-fine"
task = "A"
title = "fine"
model = {{ name = "hw3_gap_cnn" }}
"""


@pytest.fixture(scope="module")
def ray_two_gpus():
    """A local Ray instance with 2 CPUs and 2 pretend GPUs: Ray hands them out through CUDA_VISIBLE_DEVICES."""
    ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def rows_of(out: Path, run_id: str = "smoke-cpu-synthetic") -> dict:
    return {(r.id, r.seed): r for r in results.read(out / run_id).cases}


def test_ray_gives_the_rows_of_the_local_executor(tmp_path, ray_two_gpus, capsys):
    # One thread on both sides (a Ray task with one CPU gets OMP_NUM_THREADS=1): fp32 sums over another
    # number of threads round differently.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["run", "hw3*", *SMOKE, "--out", str(tmp_path / "local")]) == 0
    finally:
        torch.set_num_threads(threads)
    assert (
        main(
            [
                "run",
                "hw3*",
                *SMOKE,
                "--out",
                str(tmp_path / "ray"),
                "--executor",
                "ray",
                "--gpus-per-case",
                "1",
                "--cpus-per-case",
                "1",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    local, on_ray = rows_of(tmp_path / "local"), rows_of(tmp_path / "ray")
    assert list(local) == list(on_ray) and len(local) == 5  # the same rows, in the plan's order
    for key, row in on_ray.items():
        assert row.status == "ok" and row.hash == local[key].hash
        assert {m: getattr(row.metrics, m) for m in COMPARED} == {
            m: getattr(local[key].metrics, m) for m in COMPARED
        }, key
        assert row.predictions == local[key].predictions
        assert row.worker["executor"] == "ray" and row.worker["pid"] != os.getpid()
    assert local[("hw3-a-cnn", 0)].worker["pid"] == os.getpid()  # the local executor: this process
    assert "submitted 5 training(s) to ray" in out and "[ray " in out and "CUDA_VISIBLE_DEVICES=" in out
    logs = tmp_path / "ray" / "smoke-cpu-synthetic" / "logs"  # written by the Ray workers, as the epochs end
    assert sorted(p.parent.name for p in logs.glob("*/seed-0.csv")) == sorted(case for case, _ in on_ray)
    html, _ = report.render(tmp_path / "ray" / "smoke-cpu-synthetic")  # the environment lists the workers
    table = html.read_text().split("<h3>Workers</h3>")[1].split("<tbody>")[1].split("</tbody>")[0]
    cells = [re.findall(r"<td[^>]*>([^<]*)</td>", tr) for tr in table.split("</tr>") if "<td" in tr]
    assert {(c[0], c[2]) for c in cells} == {("ray", "cpu")} and {c[4] for c in cells} <= {"0", "1"}
    assert sum(int(c[5]) for c in cells) == 5


def test_a_case_without_a_gpu_trains_on_the_cpu(tmp_path, ray_two_gpus, capsys):
    """Ray leaves CUDA_VISIBLE_DEVICES alone for tasks without GPUs: such a case is told the CPU."""
    assert executors.device_for("auto", 0) == executors.device_for("cpu", 0) == "cpu"
    assert executors.device_for("auto", 1) == "auto"
    argv = ["run", "hw3-b-mlp", "--profile", "smoke", "--no-report", "--out", str(tmp_path), "--executor", "ray"]
    assert main([*argv, "--device", "cuda", "--gpus-per-case", "0"]) == 2
    assert "--device cuda with --gpus-per-case 0" in capsys.readouterr().err
    assert main([*argv, "--gpus-per-case", "0"]) == 0
    assert rows_of(tmp_path)[("hw3-b-mlp", 0)].worker["device"] == "cpu"


def test_a_case_uses_device_0_of_the_gpus_it_sees(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert environment.worker_device("auto") == environment.worker_device("cuda") == torch.device("cuda", 0)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert environment.worker_device("auto") == torch.device("cpu")


def test_concurrent_ray_cases_see_different_gpus(tmp_path, write_cases, ray_two_gpus, capsys):
    cases = write_cases(
        """
suite = "t"
[tasks]
A = "slow"
"""
        + "".join(
            f"""
[[case]]
id = "t-slow{i}"
task = "A"
title = "slow {i}"
model = {{ name = "slow_model", options = {{ seconds = 1.0 }} }}
"""
            for i in range(4)
        )
    )
    assert (
        main(
            [
                "run",
                "--all",
                "--cases",
                str(cases),
                *SMOKE,
                "--out",
                str(tmp_path),
                "--executor",
                "ray",
                "--gpus-per-case",
                "1",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "executor: ray" not in printed and printed.count("submitted 4 training(s) to ray") == 1  # once, no -v
    workers = [r.worker for r in rows_of(tmp_path).values()]
    assert all(w["cuda_visible_devices"] in ("0", "1") for w in workers)  # one GPU each, of the two
    assert all(w["device"] == "cpu" for w in workers)  # pretend GPUs: torch finds no CUDA (cuda:0 on real ones)
    overlapping = [
        (a, b)
        for a, b in itertools.combinations(workers, 2)
        if a["started_unix"] < b["finished_unix"] and b["started_unix"] < a["finished_unix"]
    ]
    assert overlapping, "with two GPUs, some cases must have run at the same time"
    assert all(a["cuda_visible_devices"] != b["cuda_visible_devices"] for a, b in overlapping)
    assert len({w["pid"] for w in workers}) == 2  # one process per GPU, kept from case to case
    for pid in {w["pid"] for w in workers}:  # and always on the GPU it started with
        assert len({w["cuda_visible_devices"] for w in workers if w["pid"] == pid}) == 1


def test_a_worker_that_kills_itself_is_retried_then_recorded(tmp_path, write_cases, ray_two_gpus, capsys):
    attempts = tmp_path / "attempts.txt"
    cases = write_cases(KILLED_AND_FINE.format(attempts=attempts))
    code = main(
        [
            "run",
            "--all",
            "--cases",
            str(cases),
            *SMOKE,
            "--out",
            str(tmp_path),
            "--executor",
            "ray",
            "--max-retries",
            "1",
        ]
    )
    assert code == 1
    rows = {r.id: r for r in results.read(tmp_path / "smoke-cpu-synthetic").cases}  # valid results.json
    assert rows["hw3-fine"].status == "ok"
    killed = rows["hw3-killed"]
    assert killed.status == "failed" and killed.seed == 0 and killed.hash
    assert "ActorDiedError" in killed.reason and "2 attempt(s)" in killed.reason
    assert "logs" in killed.reason and killed.worker["log"]
    assert len(attempts.read_text().split()) == 2  # the first attempt and one retry
    assert "hw3-killed: FAILED: ActorDiedError" in capsys.readouterr().out


class Spy(LocalExecutor):
    def __init__(self):
        super().__init__()
        self.submitted = []

    def submit(self, job):
        self.submitted += [(case.id, case.train.seed) for case in job.cases]
        super().submit(job)


def _plan(out: Path, profile: str = "smoke") -> runner.RunPlan:
    import torch

    return runner.RunPlan(
        profile=PROFILES[profile],
        device=torch.device("cpu"),
        out=out,
        source=SyntheticSource(PROFILES[profile].synthetic_sizes),
        precision=Precision("fp32", "test"),
    )


def test_resume_submits_only_the_missing_cases(tmp_path):
    cases, suites = load_cases()
    hw3 = select(cases, ["hw3*"])
    first = Spy()
    runner.run(select(cases, ["hw3-a*"]), _plan(tmp_path), suites, log=lambda _: None, executor=first)
    assert first.submitted == [("hw3-a-cnn", 0), ("hw3-a-cnn-dropout", 0)]
    again = Spy()
    _, doc = runner.run(hw3, _plan(tmp_path), suites, log=lambda _: None, executor=again)
    assert again.submitted == [("hw3-b-mlp", 0), ("hw3-c-gap", 0), ("hw3-c-gap-wide", 0)]
    assert [r.id for r in doc.cases] == [c.id for c in hw3]
    _, doc = runner.run(
        select(cases, ["hw3-b*"]), dataclasses.replace(_plan(tmp_path), force=True), suites, log=lambda _: None
    )
    assert [r.id for r in doc.cases] == [c.id for c in hw3]  # a partial re-run keeps the others' places


def test_slurm_backend_through_submitits_local_executor(tmp_path):
    cases, suites = load_cases()
    chosen = select(cases, ["hw3-a*"])
    options = ExecutorOptions(name="slurm", device="cpu", log_dir=tmp_path / "slurm-logs", partition="gpu")
    on_slurm = SlurmExecutor(options, cluster="local")
    try:
        _, doc = runner.run(chosen, _plan(tmp_path / "slurm"), suites, log=lambda _: None, executor=on_slurm)
    finally:
        on_slurm.close()
    _, local = runner.run(chosen, _plan(tmp_path / "local"), suites, log=lambda _: None)
    assert [r.status for r in doc.cases] == ["ok", "ok"]
    for row, expected in zip(doc.cases, local.cases):
        assert {m: getattr(row.metrics, m) for m in COMPARED} == {m: getattr(expected.metrics, m) for m in COMPARED}
        assert row.worker["executor"] == "slurm" and row.worker["pid"] != os.getpid()
    assert list((tmp_path / "slurm-logs").glob("*/*_log.err"))  # submitit's per-job logs
    live = tmp_path / "slurm" / doc.run_id / "logs"  # the jobs' own per-epoch logs in the run directory
    assert sorted(p.parent.name for p in live.glob("*/seed-0.csv")) == ["hw3-a-cnn", "hw3-a-cnn-dropout"]


def test_a_slurm_job_that_dies_is_resubmitted_then_recorded(tmp_path, write_cases, monkeypatch):
    monkeypatch.setattr(submitit.local.local.LocalJob, "_results_timeout_s", 1)  # it waits 15 s for NFS
    attempts = tmp_path / "attempts.txt"
    path = write_cases(KILLED_AND_FINE.format(attempts=attempts))
    cases, suites = load_cases([path])
    cases = declared_in(cases, [path])
    on_slurm = SlurmExecutor(
        ExecutorOptions(name="slurm", device="cpu", log_dir=tmp_path / "logs", max_retries=1), cluster="local"
    )
    try:
        _, _doc = runner.run(cases, _plan(tmp_path), suites, log=lambda _: None, executor=on_slurm)
    finally:
        on_slurm.close()
    rows = {r.id: r for r in results.read(tmp_path / "smoke-cpu-synthetic").cases}
    assert rows["hw3-fine"].status == "ok"
    killed = rows["hw3-killed"]
    assert killed.status == "failed" and "died without a result" in killed.reason
    assert "after 2 attempt(s)" in killed.reason and killed.worker["log"].endswith("_log.err")
    assert len(attempts.read_text().split()) == 2


def test_a_worker_that_cannot_open_the_data_returns_a_failed_row(tmp_path):
    """Not an exception out of the worker: a cache that is not on a shared filesystem is a row saying so."""
    case = select(load_cases()[0], ["hw3-b-mlp"])[0]
    job = Job(
        case=case,
        data=CachedData(tmp_path / "not-shared", "synthetic", "synthetic", "x", 32),
        max_per_split=None,
        eval_batch_size=64,
        device="cpu",
        executor="slurm",
    )
    [row] = worker.run_job(job)
    assert row.status == "failed" and row.id == "hw3-b-mlp" and row.hash == case.config_hash
    assert "FileNotFoundError" in row.reason and "on the worker, before training" in row.reason


def test_slurm_reasons_carry_the_jobs_own_error_and_timeouts_are_not_retried(tmp_path):
    local = submitit.AutoExecutor(folder=tmp_path / "%j", cluster="local")
    failing = local.submit(int, "not a number")
    with pytest.raises(submitit.core.utils.FailedJobError) as caught:
        failing.result()
    assert _last_line(caught.value) == "ValueError: invalid literal for int() with base 10: 'not a number'"

    class TimedOut:
        job_id, state, paths = "77_3", "TIMEOUT", type("Paths", (), {"stderr": tmp_path / "77_3_log.err"})

        def result(self):
            raise submitit.core.utils.UncompletedJobError("no output")

    executor = SlurmExecutor(
        ExecutorOptions(name="slurm", log_dir=tmp_path, time_min=20, max_retries=3), cluster="local"
    )
    case = select(load_cases()[0], ["hw3-b-mlp"])[0]
    [row] = executor._rows(TimedOut(), Job(case=case, data=None, max_per_split=None, eval_batch_size=64), 1)
    assert "reached its time limit of 20 min; raise --time-min" in row.reason and not executor._running


def test_slurm_sbatch_text_carries_the_partition_and_the_gpu_request(tmp_path, monkeypatch):
    """Through a fake srun and sbatch on PATH: the job array's script, as Slurm would receive it."""
    bin_dir, captured = tmp_path / "bin", tmp_path / "captured.sh"
    bin_dir.mkdir()
    for name, body in {
        "srun": "exit 0",
        "sbatch": f'cp "$1" {captured}\necho "Submitted batch job 4242"',
        "scancel": "exit 0",
    }.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    cases, _suites = load_cases()
    options = ExecutorOptions(
        name="slurm",
        log_dir=tmp_path / "logs",
        partition="a100",
        account="imaging",
        time_min=30,
        array_parallelism=4,
        gpus_per_case=1,
        max_retries=0,
    )
    executor = SlurmExecutor(options)
    for case in select(cases, ["hw3*"]):
        executor.submit(Job(case=case, data=None, max_per_split=None, eval_batch_size=64, executor="slurm"))
    executor.launch()
    executor.close()
    script = captured.read_text()
    assert "#SBATCH --partition=a100" in script and "#SBATCH --account=imaging" in script
    assert "#SBATCH --gpus-per-node=1" in script and "#SBATCH --time=30" in script
    assert "#SBATCH --array=0-4%4" in script  # the five cases in one array, at most 4 at once


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--partition", "gpu"], "--partition is an option of --executor slurm (this run: --executor local)"),
        (["--executor", "ray", "--log-dir", "x"], "--log-dir is an option of --executor slurm"),
        (["--executor", "slurm"], "--executor slurm needs --log-dir DIR"),
        (["--max-retries", "2"], "--max-retries applies to --executor ray or slurm"),
        (["--executor", "ray", "--max-retries", "-1"], "--max-retries -1: must be at least 0"),
        (["--executor", "ray", "--gpus-per-case", "2"], "--gpus-per-case 2: a case trains on one GPU"),
        (["--executor", "slurm", "--log-dir", "x", "--gpus-per-case", "0.5"], "Slurm hands out whole GPUs; use 0 or 1"),
    ],
)
def test_executor_flags_are_checked(tmp_path, capsys, argv, message):
    assert main(["run", "hw3-a-cnn", *SMOKE, "--out", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "smoke-cpu-synthetic").exists()


def test_missing_extra_names_the_install(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "submitit", None)  # import submitit raises ImportError
    assert (
        main(["run", "hw3-a-cnn", *SMOKE, "--out", str(tmp_path), "--executor", "slurm", "--log-dir", str(tmp_path)])
        == 2
    )
    assert "pip install 'xraybench[slurm]'" in capsys.readouterr().err


def test_the_local_path_never_imports_ray_or_submitit(tmp_path):
    code = (
        "import sys; from xraybench.cli import main; "
        "main(['run', 'hw3-b-mlp', '--profile', 'smoke', '--device', 'cpu', '--no-report', "
        f"'--out', {str(tmp_path)!r}]); "
        "print(json.dumps(sorted(m for m in ('ray', 'submitit') if m in sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", "import json; " + code], capture_output=True, text=True, env={**os.environ}, timeout=300
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_a_dead_worker_is_retried_max_retries_times():
    """One policy for Ray and Slurm: attempt k (from 1) goes out again while k ≤ --max-retries (default 1)."""
    default, none = executors.Retries.of(ExecutorOptions()), executors.Retries.of(ExecutorOptions(max_retries=0))
    assert [default.again(k) for k in (1, 2)] == [True, False]
    assert not none.again(1)


@pytest.mark.parametrize("verbose", [False, True])
def test_ray_speaks_only_with_verbose(monkeypatch, verbose):
    """Ray's own log lines and warnings reach the terminal only with -v: its chatter filled a new user's screen."""
    seen = {}

    def init(**kwargs):
        seen.update(kwargs)
        raise ConnectionError("stop here")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", init)
    with pytest.raises(executors.ExecutorError):
        executors.create(executors.ExecutorOptions(name="ray", address="auto", verbose=verbose))
    assert seen["log_to_driver"] is verbose and seen["logging_level"] == (logging.INFO if verbose else logging.ERROR)


def test_a_ray_actor_whose_cuda_context_broke_gets_no_more_cases(tmp_path, write_cases, ray_two_gpus):
    """One slot (a case asks for both CPUs): cases run one after another in one actor, except after a case that
    lost its CUDA context, whose actor is replaced."""
    cases = write_cases(
        """
suite = "t"
[tasks]
A = "a task"
"""
        + "".join(
            f"""
[[case]]
id = "t-{name}"
task = "A"
title = "{name}"
model = {{ name = "{model}" }}
"""
            for name, model in [("broken", "cuda_broken_model"), ("after", "hw3_gap_cnn"), ("later", "hw3_gap_cnn")]
        )
    )
    argv = ["run", "--all", "--cases", str(cases), *SMOKE, "--out", str(tmp_path), "--executor", "ray"]
    assert main([*argv, "--cpus-per-case", "2"]) == 1
    rows = {r.id: r for r in results.read(tmp_path / "smoke-cpu-synthetic").cases}
    assert rows["t-broken"].status == "failed" and "illegal memory access" in rows["t-broken"].reason
    assert rows["t-after"].ok and rows["t-later"].ok
    assert rows["t-after"].worker["pid"] != rows["t-broken"].worker["pid"]
    assert rows["t-later"].worker["pid"] == rows["t-after"].worker["pid"]
