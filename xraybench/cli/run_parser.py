"""``xraybench run``'s options, the command line's largest: grouped as the data, the training, the outputs and
where the trainings run."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from xraybench.cases import PROFILES
from xraybench.cli.dispatch import Deferred, command


def seeds_value(text: str) -> int | str:
    """--seeds: a whole number of seeds, at least 1, or auto."""
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: a whole number of seeds, at least 1, or auto")
    return value


def duration(text: str) -> float:
    """A duration as 90m, 2h, 1h30m, 45s or plain seconds: its seconds."""
    match = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?", text.strip())
    if not text.strip() or match is None:
        raise argparse.ArgumentTypeError(f"{text!r}: a duration such as 90m, 2h, 1h30m or 3600s")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    total = 3600 * hours + 60 * minutes + seconds
    if total <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: a duration above zero, such as 90m")
    return total


def run_parser(sub, cases_arg: dict, wide: dict) -> None:
    """``xraybench run``: which cases, on which data, how they train, where it goes, where they run."""
    p = sub.add_parser("run", help="run cases and write results.json")
    p.add_argument("patterns", nargs="*", metavar="PATTERN", help="shell-style id patterns, e.g. 'hw3*'")
    p.add_argument("--all", action="store_true", help="run every declared case")
    p.add_argument(
        "--profile", choices=sorted(PROFILES), help="sizes and epochs (default: full on a GPU, quick on a CPU)"
    )
    _run_data(p)
    _run_training(p)
    _run_outputs(p, cases_arg, wide)
    _run_executor(p)
    p.set_defaults(command=command("run", "cmd_run"))


def _run_data(p) -> None:
    """Which images a run reads, and how its splits are checked."""
    p.add_argument(
        "--data",
        metavar="PATH|NAME",
        help="Kermany-layout folder, MedMNIST .npz, or pneumoniamnist[@28|64|128|224] (default: built-in synthetic)",
    )
    p.add_argument(
        "--val-fraction",
        type=float,
        metavar="F",
        help="of train, carved by patient as the validation "
        "split of a folder without val/ or with fewer than 50 images per class in it (default 0.1)",
    )
    p.add_argument(
        "--strict-splits",
        action="store_true",
        help="stop (exit 2) when splits share patients or identical images, instead of warning",
    )
    p.add_argument(
        "--offline",
        action="store_true",
        help="never download (also XRAYBENCH_OFFLINE=1): missing "
        "weights skip their cases, a missing MedMNIST file is an error naming where to place it",
    )


def _run_training(p) -> None:
    """How the cases train: device, precision, determinism, initialisation, bad images."""
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument(
        "--precision",
        default="auto",
        help="auto (default): bf16 where the GPU or CPU computes it natively, fp16 with loss scaling on "
        "older GPUs, fp32 otherwise",
    ).choices = Deferred("xraybench.train.precision", "CHOICES")
    p.add_argument(
        "--deterministic",
        action="store_true",
        help="deterministic algorithms only (same seed, same bits on the same machine; slower on a GPU)",
    )
    p.add_argument(
        "--seed-batching",
        default="auto",
        choices=["auto", "on", "off"],
        help="train a case's seeds in one pass, as one stacked model of grouped layers, where the model stacks "
        "(the HW3 models): auto (default) on a GPU, where it saves kernel launches; on also on the CPU; off: one "
        "seed at a time",
    )
    p.add_argument(
        "--tf32",
        action="store_true",
        help="fp32 matrix products and convolutions in TF32 on CUDA (Ampere or newer: faster, 10-bit mantissa "
        "products); without it fp32 is full fp32 (the run's header says which)",
    )
    p.add_argument(
        "--random-init",
        action="store_true",
        help="build pretrained backbones from random weights (no weight files needed); the rows say so "
        "and cannot become a baseline",
    )
    p.add_argument(
        "--skip-bad-images",
        action="store_true",
        help="skip (and list) unreadable image files in a --data folder instead of stopping",
    )


def _run_outputs(p, cases_arg: dict, wide: dict) -> None:
    """Where the run goes and what it records, which cases and seeds, and one-off overrides."""
    p.add_argument("--out", type=Path, default=Path("reports"), metavar="DIR", help="where runs go (default: reports/)")
    p.add_argument(
        "--run-id", metavar="ID", help="run directory name (default: PROFILE-DEVICE-DATA); an existing run resumes"
    )
    p.add_argument(
        "--seeds",
        type=seeds_value,
        metavar="N|auto",
        help="run each case with N consecutive seeds (default: the profile's, smoke 1, quick 3, full 5; HW4 "
        "fine-tuning 1 in quick), or auto: compared cases start there (at least 3) and get one more seed per round "
        "while a comparison is undecided (default in the full profile)",
    )
    p.add_argument(
        "--max-seeds",
        type=int,
        metavar="N",
        help="with --seeds auto: the most seeds a case gets (default: twice the first round's, quick 6, full 10)",
    )
    p.add_argument(
        "--budget",
        type=duration,
        metavar="DURATION",
        help="with --seeds auto: start no round that would end after DURATION (e.g. 90m, 2h, 1h30m, 3600s)",
    )
    p.add_argument("--force", action="store_true", help="re-run cases that already finished in this run")
    p.add_argument(
        "--case-timeout",
        type=float,
        metavar="S",
        help="stop a training that has run S seconds and record it as failed (a hung worker); the suite goes on",
    )
    p.add_argument("--no-report", action="store_true", help="skip the PDF report at the end")
    p.add_argument(
        "--tensorboard",
        action="store_true",
        help="also write TensorBoard event files per case and seed "
        "under RUN_DIR/tb (tensorboard --logdir RUN_DIR/tb; needs the tensorboard extra); the per-epoch CSV "
        "logs under RUN_DIR/logs are always written",
    )
    p.add_argument("--baseline", type=Path, metavar="FILE", help="show the regression check against FILE in the report")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a data.* or train.* setting of every selected case, e.g. train.epochs=5 (repeatable; "
        "recorded in the configuration hash, and the default run id says so)",
    )
    p.add_argument("--cases", **cases_arg)
    p.add_argument("--wide", **wide)
    p.add_argument("-v", "--verbose", action="store_true", help="also the executor's own messages (Ray's warnings)")


def _run_executor(p) -> None:
    """Where the trainings run (docs/cluster.md)."""
    g = p.add_argument_group("executors", "where the cases train (docs/cluster.md)")
    g.add_argument(
        "--executor",
        default="local",
        help="local (default): one case after another in this process; ray: Ray tasks, one GPU each; "
        "slurm: a Slurm job array through submitit",
    ).choices = Deferred("xraybench.executors", "NAMES")
    g.add_argument(
        "--max-retries",
        type=int,
        metavar="N",
        help="ray, slurm: re-run a case whose worker died "
        "(killed, out of memory) up to N times before recording it as failed (default 1)",
    )
    g.add_argument(
        "--gpus-per-case",
        type=float,
        metavar="G",
        help="ray, slurm: GPUs per case (default 1; 0 with --device cpu or on a Ray cluster without GPUs)",
    )
    g.add_argument("--cpus-per-case", type=int, metavar="C", help="ray, slurm: CPUs per case (default: ray 1, slurm 4)")
    g.add_argument(
        "--address",
        metavar="ADDR",
        help="ray: auto or ray://HOST:PORT, an existing cluster (default: start a local Ray instance)",
    )
    g.add_argument(
        "--placement-timeout",
        type=float,
        metavar="S",
        help="ray: wait up to S seconds for a node that "
        "fits a case (the autoscaler starting GPU workers) before stopping with what the cluster offers "
        "(default 300)",
    )
    g.add_argument("--partition", metavar="P", help="slurm: the partition")
    g.add_argument("--account", metavar="A", help="slurm: the account")
    g.add_argument("--time-min", type=int, metavar="M", help="slurm: time limit per case in minutes (default 60)")
    g.add_argument("--array-parallelism", type=int, metavar="K", help="slurm: at most K cases at once")
    g.add_argument(
        "--log-dir",
        type=Path,
        metavar="DIR",
        help="slurm (required): job scripts and logs, on a filesystem every node sees",
    )
