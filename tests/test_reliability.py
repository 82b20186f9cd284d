"""Bad input, interruption and faults: never lose finished work, never fail obscurely."""

import errno
import fcntl
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import weakref
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import KERMANY
from PIL import Image

from xraybench import results
from xraybench.cli import main
from xraybench.data.images import read_image
from xraybench.data.sources import FolderSource
from xraybench.models import weights
from xraybench.runner import rundir
from xraybench.train import trainings
from xraybench.train.engine import train_case as real_train_case

REPO = Path(__file__).resolve().parent.parent
SMOKE = ["--profile", "smoke", "--device", "cpu", "--no-report"]


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "xraybench.cli", *args]


def test_sigkill_at_random_moments_never_corrupts_results(tmp_path):
    out, rng = tmp_path / "reports", random.Random(7)
    command = cli("run", "hw3*", *SMOKE, "--out", str(out))
    path = out / "smoke-cpu-synthetic" / "results.json"
    for _ in range(20):
        proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.3, 7.0))
        proc.kill()
        proc.wait()
        if path.exists():
            results.read(path)  # complete, valid JSON every time
    finished = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr[-2000:]
    ids = [r.id for r in results.read(path).cases]
    assert sorted(ids) == sorted(set(ids)) and len(ids) == 5
    assert all(r.ok for r in results.read(path).cases)


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])  # Ctrl-C; a scheduler's or a hangup's kill
def test_ctrl_c_exits_130_and_keeps_finished_cases(tmp_path, stop):
    out = tmp_path / "reports"
    path = out / "quick-cpu-synthetic" / "results.json"
    proc = subprocess.Popen(
        cli(
            "run",
            "hw3-b-mlp",
            "--seeds",
            "4",
            "--profile",
            "quick",
            "--device",
            "cpu",
            "--no-report",
            "--out",
            str(out),
        ),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A shell that starts jobs in the background (as CI may) ignores SIGINT in them.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + 240
    while time.time() < deadline:
        if path.exists() and results.read(path).cases:
            break
        time.sleep(0.2)
    proc.send_signal(stop)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert "interrupted" in err and "run the same command again to resume" in err
    kept = results.read(path).cases
    assert kept and all(r.ok for r in kept)


def test_second_run_on_the_same_directory_refuses(tmp_path, capsys):
    run_dir = tmp_path / "smoke-cpu-synthetic"
    run_dir.mkdir()
    with open(run_dir / ".lock", "w") as lock:
        lock.write("4242")
        lock.flush()
        fcntl.flock(lock, fcntl.LOCK_EX)
        assert main(["run", "hw3-b-mlp", *SMOKE, "--out", str(tmp_path)]) == 2
    assert "another xraybench run (pid 4242)" in capsys.readouterr().err
    assert main(["run", "hw3-b-mlp", *SMOKE, "--out", str(tmp_path)]) == 0  # released: runs


def test_a_run_directory_that_cannot_be_locked_is_refused_in_one_line(tmp_path, capsys, monkeypatch):
    """NFS without lock support raises ENOLCK from flock; an unwritable directory fails the lock file's open
    (here: a folder in its place). Both: one line naming the file, exit 2, nothing trained."""
    (tmp_path / "smoke-cpu-synthetic" / ".lock").mkdir(parents=True)
    assert main(["run", "hw3-b-mlp", *SMOKE, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "cannot open the run's lock file" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1

    def no_locks(*_):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(rundir.fcntl, "flock", no_locks)
    assert main(["run", "hw3-b-mlp", *SMOKE, "--out", str(tmp_path / "nfs")]) == 2
    err = capsys.readouterr().err
    assert "cannot lock the run directory (No locks available" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "nfs" / "smoke-cpu-synthetic" / "results.json").exists()


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "xrays"
    shutil.copytree(KERMANY, root)
    return root


def png_bytes(tmp_path) -> bytes:
    path = tmp_path / "ok.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)).save(path)
    return path.read_bytes()  # noise does not compress: about 4 kB


@pytest.mark.parametrize(
    "name, content, words",
    [
        ("corrupt.jpeg", b"\xff\xd8\xff\xe0 this is not really a jpeg", "cannot decode image"),
        ("truncated.png", None, "cannot decode image"),
        ("empty.png", b"", "empty file"),
        ("notes.txt", b"hello", "not an image file"),
    ],
)
def test_bad_image_files(folder, tmp_path, capsys, name, content, words):
    import weasyprint  # noqa: F401  it turns on PIL's LOAD_TRUNCATED_IMAGES globally; decoding must stay strict

    bad = folder / "train" / "NORMAL" / name
    bad.write_bytes(content if content is not None else png_bytes(tmp_path)[:2000])
    args = ["run", "hw3-b-mlp", *SMOKE, "--data", str(folder), "--out", str(tmp_path / "out")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and words in err and "--skip-bad-images" in err
    assert main([*args, "--skip-bad-images"]) == 0
    printed = capsys.readouterr().out
    assert f"train/NORMAL/{name}" in printed and "skipped 1 unreadable file" in printed
    doc = results.read(tmp_path / "out" / "smoke-cpu-xrays")
    assert doc.cases[0].ok and any(name in note for note in doc.data.notes)


def test_16_bit_rgba_and_very_large_pngs_load(tmp_path):
    ramp = np.tile(np.linspace(0, 4095, 256).astype(np.uint16), (256, 1))  # 12-bit data in a 16-bit PNG
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    deep = read_image(tmp_path / "deep.png", 256).pixels
    assert deep.max() == 255 and deep.min() == 0 and deep[0, 128] in range(120, 136)
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[..., :3], rgba[..., 3] = 200, 128
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    assert read_image(tmp_path / "alpha.png", 32).pixels.mean() == pytest.approx(200, abs=1)
    Image.new("L", (6000, 6000), 77).save(tmp_path / "huge.png")
    assert read_image(tmp_path / "huge.png", 32).pixels.mean() == pytest.approx(77, abs=1)


def test_folder_errors_name_the_problem(tmp_path):
    (tmp_path / "train" / "NORMAL").mkdir(parents=True)
    (tmp_path / "test" / "NORMAL").mkdir(parents=True)
    shutil.copy(next((KERMANY / "train" / "NORMAL").iterdir()), tmp_path / "train" / "NORMAL" / "a.jpeg")
    with pytest.raises(ValueError, match="missing class folder PNEUMONIA"):  # a single class
        FolderSource(tmp_path).files()
    (tmp_path / "train" / "PNEUMONIA").mkdir()
    with pytest.raises(ValueError, match="PNEUMONIA: no images"):  # an empty class folder
        FolderSource(tmp_path).files()


def test_unwritable_out_and_escaping_run_ids(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    assert main(["run", "hw3-b-mlp", *SMOKE, "--out", str(blocker / "reports")]) == 2
    assert "cannot create the run directory" in capsys.readouterr().err
    assert main(["run", "hw3-b-mlp", *SMOKE, "--out", str(tmp_path), "--run-id", "../../escape"]) == 2
    assert "--run-id '../../escape'" in capsys.readouterr().err
    assert not (tmp_path.parent / "escape").exists()


def test_cuda_out_of_memory_retries_once_with_half_the_batch(tmp_path, monkeypatch):
    calls = []

    def flaky(case, *args, **kwargs):
        calls.append(case.train.batch_size)
        if len(calls) == 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected)")
        return real_train_case(case, *args, **kwargs)

    monkeypatch.setattr(trainings, "train_case", flaky)
    assert main(["run", "hw3-b-mlp", *SMOKE, "--out", str(tmp_path)]) == 0
    row = results.read(tmp_path / "smoke-cpu-synthetic").cases[0]
    assert calls == [32, 16] and row.ok
    assert row.retry == "CUDA out of memory at batch size 32; retried with 16"

    def always(case, *args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected)")

    monkeypatch.setattr(trainings, "train_case", always)
    assert main(["run", "hw3-b-mlp", *SMOKE, "--out", str(tmp_path), "--force"]) == 1
    row = results.read(tmp_path / "smoke-cpu-synthetic").cases[0]
    assert row.status == "failed" and "OutOfMemoryError" in row.reason and "retried with 16" in row.retry


def test_out_of_memory_retry_runs_after_the_first_attempt_is_freed(tmp_path, monkeypatch):
    """The first attempt's model, optimizer state and activations are gone before the retry starts
    (inside the except block its traceback would keep them alive)."""
    first_attempt: list[weakref.ref] = []
    alive_at_retry = []

    def flaky(case, *args, **kwargs):
        if not first_attempt:
            model = torch.nn.Linear(1024, 1024)
            optimizer = torch.optim.Adam(model.parameters())
            activations = model(torch.randn(64, 1024))
            activations.sum().backward()
            optimizer.step()
            first_attempt.extend(
                weakref.ref(t) for t in (model.weight, activations, optimizer.state[model.weight]["exp_avg"])
            )
            cycle = [model, activations]
            cycle.append(cycle)  # a reference cycle, as real models' hooks and closures make: needs gc
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected)")
        alive_at_retry.extend(ref() is not None for ref in first_attempt)
        return real_train_case(case, *args, **kwargs)

    monkeypatch.setattr(trainings, "train_case", flaky)
    assert main(["run", "hw3-b-mlp", *SMOKE, "--out", str(tmp_path)]) == 0
    assert alive_at_retry == [False, False, False]


def test_weights_are_loaded_with_weights_only(monkeypatch, tmp_path):
    seen = {}
    real = torch.load

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    from xraybench.models.backbones import lite0_weights_file

    weights.load_state_dict(lite0_weights_file())
    assert seen.get("weights_only") is True


def test_results_are_validated_when_read(tmp_path):
    path = tmp_path / "results.json"
    path.write_text('{"schema_version": 1, "cases": [')
    with pytest.raises(results.ResultsError, match="not a readable results file"):
        results.read(path)
    path.write_text(json.dumps({"schema_version": 99, "cases": []}))
    with pytest.raises(results.ResultsError, match="newer than this xraybench reads"):
        results.read(path)
    path.write_text(json.dumps({"schema_version": 1, "cases": [{"id": "x", "status": "weird"}]}))
    with pytest.raises(results.ResultsError, match="cases\\[0\\]"):
        results.read(path)
