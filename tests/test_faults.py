"""Fault injection where users outgrow one machine: the driver killed mid-run (Slurm through submitit's local
executor, Ray), a worker that hangs, a full disk, a results file cut short, Ray requests no node can take,
and the Slurm probe that records the machine that trains. Each ends with a valid results.json and no
finished row lost."""

import dataclasses
import errno
import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from xraybench import files, results
from xraybench.cli import main
from xraybench.executors import ExecutorError, ExecutorOptions
from xraybench.executors.ray_executor import fitting_nodes, offer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import driver_kill
from conftest import NAN_AND_OK_CASES, own_cases

SMOKE = ["--profile", "smoke", "--device", "cpu", "--precision", "fp32", "--no-report"]

SLOW_CASES = """
suite = "hw3"
[tasks]
A = "a task"
[[case]]
id = "hw3-quick"
task = "A"
title = "quick"
model = {{ name = "slow_model", options = {{ seconds = 0.1 }} }}
[[case]]
id = "hw3-slow"
task = "A"
title = "slow"
model = {{ name = "slow_model", options = {{ seconds = {slow} }} }}
[[case]]
id = "hw3-slower"
task = "A"
title = "slower"
model = {{ name = "slow_model", options = {{ seconds = {slower} }} }}
"""


def test_slurm_work_outlives_a_killed_driver_and_no_finished_training_repeats(tmp_path):
    """SIGKILL the driver once one job's row is in (the others still train); the resumed driver adopts every
    job from --log-dir's manifest: finished ones are read from their result pickles, running ones awaited."""
    outcome = driver_kill.run(tmp_path, "slurm", cases=3, seconds=6)
    assert 1 <= outcome.finished_at_kill < 3 and outcome.kept == outcome.finished_at_kill
    adopted = 3 - outcome.finished_at_kill  # the rows written before the kill are kept, not resubmitted
    assert f"{adopted} job(s) of an earlier driver adopted" in outcome.second_driver_out
    assert outcome.rows_ok == 3 and outcome.trainings == 3 and outcome.repeated == 0
    manifest = (tmp_path / "out" / "logs" / "submitted.jsonl").read_text().splitlines()
    assert len(manifest) == 3  # nothing submitted a second time


def test_ray_driver_killed_mid_run_then_resumed_keeps_every_finished_row(tmp_path):
    """Ray's tasks die with their driver: the cases that were running train again, but every row written
    before the kill stays exactly as it was and is not trained again."""
    outcome = driver_kill.run(tmp_path, "ray", cases=3, seconds=4)
    assert 1 <= outcome.finished_at_kill < 3 and outcome.kept == outcome.finished_at_kill
    assert "finished earlier, kept" in outcome.second_driver_out
    assert outcome.rows_ok == 3 and outcome.trainings >= 3  # every case trained at least once
    assert outcome.repeated <= 3 - outcome.finished_at_kill  # only what was running at the kill trained again


def test_only_an_ok_job_of_the_same_training_is_adopted(tmp_path, write_cases):
    """A failed row is trained again rather than handed back; a job of another run directory, or a job id
    that now names another training's job, is not adopted."""
    from xraybench.cases import PROFILES, apply_profile
    from xraybench.data import cache
    from xraybench.data.sources import SyntheticSource
    from xraybench.executors.slurm_executor import SlurmExecutor
    from xraybench.models import registry
    from xraybench.train.worker import Job

    smoke = PROFILES["smoke"]
    data = cache.prepare(SyntheticSource(smoke.synthetic_sizes), smoke.image_size)
    jobs = [
        Job(
            case=apply_profile(c, smoke),
            data=data,
            max_per_split=smoke.max_per_split,
            eval_batch_size=64,
            device="cpu",
            executor="slurm",
            run=str(tmp_path / "run"),
            builders=registry.external_builders({c.model.name}),
        )
        for c in own_cases(write_cases(NAN_AND_OK_CASES))
    ]
    options = ExecutorOptions(name="slurm", device="cpu", log_dir=tmp_path / "logs")

    def fresh_driver():  # a driver started after the previous one ended
        return SlurmExecutor(options, cluster="local")

    first = fresh_driver()
    for job in jobs:
        first.submit(job)
    statuses = {job.case.id: rows[0].status for job, rows in first.completions()}
    first.close()
    assert statuses == {"hw3-nan": "failed", "hw3-ok": "ok"}

    second = fresh_driver()
    for job in jobs:
        second.submit(job)
    assert [j.case.id for j in second._queue] == ["hw3-nan"] and second.adopted == 1
    second._queue.clear()

    third = fresh_driver()
    third.submit(dataclasses.replace(jobs[1], run=str(tmp_path / "another-run")))
    assert third.adopted == 0 and len(third._queue) == 1

    manifest = tmp_path / "logs" / "submitted.jsonl"
    entries = [json.loads(line) for line in manifest.read_text().splitlines()]
    nan_id = next(e["job_id"] for e in entries if "|hw3-nan|" in e["identity"])
    with open(manifest, "a") as out:  # the ok training's identity now pointing at the failed job's id
        out.write(json.dumps({"identity": jobs[1].identity, "job_id": nan_id}) + "\n")
    fourth = fresh_driver()
    fourth.submit(jobs[1])
    assert fourth.adopted == 0 and len(fourth._queue) == 1


def test_a_hung_worker_is_stopped_at_the_case_timeout_and_recorded(tmp_path, write_cases, capsys):
    cases = write_cases(SLOW_CASES.format(slow=3600, slower=0.1))
    code = main(["run", "hw3*", *SMOKE, "--cases", str(cases), "--out", str(tmp_path), "--case-timeout", "3"])
    assert code == 1  # a failed case
    rows = {r.id: r for r in results.read(tmp_path / "smoke-cpu-synthetic").cases}
    assert rows["hw3-slow"].status == "failed"
    assert rows["hw3-slow"].reason == "timed out: no result within 3 s (--case-timeout 3)"
    assert rows["hw3-quick"].status == rows["hw3-slower"].status == "ok"  # the suite went on
    assert signal.getsignal(signal.SIGALRM) == signal.SIG_DFL and signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert main(["run", "hw3*", *SMOKE, "--cases", str(cases), "--case-timeout", "0"]) == 2
    assert "--case-timeout 0: must be a number of seconds above 0" in capsys.readouterr().err
    assert main(["run", "hw3*", *SMOKE, "--cases", str(cases), "--case-timeout", "1e12"]) == 2
    assert "at most 2,592,000 (30 days)" in capsys.readouterr().err


def test_a_full_disk_stops_the_run_in_one_line_and_keeps_the_previous_file(tmp_path, monkeypatch, capsys):
    path = tmp_path / "smoke-cpu-synthetic" / "results.json"
    assert main(["run", "hw3-a-cnn", *SMOKE, "--out", str(tmp_path)]) == 0
    real_fsync, calls = os.fsync, []

    def full(fd):  # the disk fills up after the run's first write: the finished training's row is what fails
        calls.append(fd)
        if len(calls) >= 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(files.os, "fsync", full)  # where every finished file is written
    assert main(["run", "hw3-b-mlp", *SMOKE, "--out", str(tmp_path)]) == 2
    assert len(calls) == 2  # the run's opening write went through; the one after training failed
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "No space left on device" in err and str(path) in err
    assert [r.id for r in results.read(path).cases] == ["hw3-a-cnn"]  # whole, with the earlier row
    assert not list(path.parent.glob(".results.json.*"))  # no temporary file left behind
    monkeypatch.setattr(files.os, "fsync", real_fsync)
    assert main(["run", "hw3-b-mlp", *SMOKE, "--out", str(tmp_path)]) == 0  # space again: resumes
    assert [r.id for r in results.read(path).cases] == ["hw3-a-cnn", "hw3-b-mlp"]


def test_a_results_file_cut_short_is_refused_in_one_line_and_not_overwritten(tmp_path, capsys):
    path = tmp_path / "smoke-cpu-synthetic" / "results.json"
    assert main(["run", "hw3-a-cnn", *SMOKE, "--out", str(tmp_path)]) == 0
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    cut = path.read_bytes()
    assert main(["run", "hw3-a-cnn", *SMOKE, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(path) in err
    assert path.read_bytes() == cut


def test_ray_requests_must_fit_one_node_not_the_cluster_totals():
    two_small = [
        {"Alive": True, "Resources": {"CPU": 2.0}},
        {"Alive": True, "Resources": {"CPU": 2.0}},
        {"Alive": False, "Resources": {"CPU": 64.0, "GPU": 8.0}},
    ]
    assert fitting_nodes(two_small, 0, 2) and not fitting_nodes(two_small, 0, 3)  # 4 CPUs in all, 2 per node
    assert not fitting_nodes(two_small, 1, 1)  # the dead GPU node counts for nothing
    assert offer(two_small) == "2 node(s): 2 CPU + 0 GPU, 2 CPU + 0 GPU"


@pytest.fixture
def ray_cpu_only():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, num_gpus=0, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_waits_for_a_gpu_node_then_names_what_was_asked_and_what_is_offered(ray_cpu_only, capsys):
    """A cluster whose GPU workers are scaled to zero: --device cuda waits (here 1 s) and stops in one line,
    instead of training on the CPU; a CPU request no single node has is refused before any submission."""
    from xraybench.executors.ray_executor import RayExecutor

    start = time.monotonic()
    with pytest.raises(ExecutorError) as caught:
        RayExecutor(ExecutorOptions(name="ray", device="cuda", placement_timeout=1))
    assert time.monotonic() - start >= 1
    assert str(caught.value) == (
        "ray: no node can take a case asking for 1 GPU and 1 CPU (--gpus-per-case, "
        "--cpus-per-case) within --placement-timeout 1 s; the cluster offers 1 node(s): "
        "2 CPU + 0 GPU"
    )
    assert "asking the autoscaler for one" in capsys.readouterr().out
    with pytest.raises(ExecutorError, match="asking for 0 GPU and 3 CPU"):
        RayExecutor(ExecutorOptions(name="ray", device="cpu", cpus_per_case=3, placement_timeout=0))
    assert ray_cpu_only.is_initialized()  # a Ray of the caller's is left as it was
    executor = RayExecutor(ExecutorOptions(name="ray", device="auto", placement_timeout=0))
    assert executor.gpus == 0 and "the cluster has no GPU now, so cases train on CPUs" in capsys.readouterr().out


def test_the_slurm_probe_always_asks_a_node_so_results_record_the_machine_that_trains(tmp_path):
    """--device and --precision given together no longer skip the probe: the login node is not the machine."""
    from xraybench.executors.slurm_executor import SlurmExecutor

    executor = SlurmExecutor(ExecutorOptions(name="slurm", device="cpu", log_dir=tmp_path), cluster="local")
    try:
        found = executor.probe("cpu", "fp32")
    finally:
        executor.close()
    assert found["worker"]["pid"] != os.getpid()  # a job ran it, not this process
    assert found["machine_info"] and found["software"] and found["device"] == "cpu"
