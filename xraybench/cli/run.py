"""``xraybench run``: cases chosen, the executor made, the device probed, the run planned and reported."""

from __future__ import annotations

import contextlib
import signal
import sys

import torch

from xraybench import cases as case_mod
from xraybench import environment, executors, report, stats
from xraybench.cases import PROFILES, CaseError
from xraybench.data import open_source
from xraybench.environment import DeviceError
from xraybench.report.console import clip, summary_table
from xraybench.runner import RunPlan, rounds, run
from xraybench.train.logs import tensorboard_writer_class

MAX_CASE_TIMEOUT_S = 30 * 24 * 3600  # a month; far larger values overflow the interval timer


def cmd_run(args) -> int:
    if args.deterministic:  # before anything in this process can start cuBLAS (Ray's local cluster inherits it too)
        environment.fix_cublas_workspace()
    if not args.all and not args.patterns:
        raise CaseError("name the cases to run: --all, or one or more id patterns such as 'hw3*' (see xraybench list)")
    if args.max_seeds is not None and args.max_seeds < stats.MIN_SEEDS:
        raise CaseError(f"--max-seeds {args.max_seeds}: at least {stats.MIN_SEEDS}, the seeds a side a verdict needs")
    if args.tensorboard:
        tensorboard_writer_class()  # missing: one line before anything trains
    if args.case_timeout is not None and not 0 < args.case_timeout <= MAX_CASE_TIMEOUT_S:
        raise CaseError(
            f"--case-timeout {args.case_timeout:g}: must be a number of seconds above 0 and at most "
            f"{MAX_CASE_TIMEOUT_S:,} (30 days)"
        )
    cases, suites = case_mod.load_cases(args.cases)
    cases = case_mod.select(cases, args.patterns) if args.patterns else case_mod.declared_in(cases, args.cases)
    cases = case_mod.override(cases, suites, args.overrides)
    for note in case_mod.confounded(cases):
        print(clip(f"note: {note}", args.wide))
    options = executors.ExecutorOptions(
        name=args.executor,
        device=args.device,
        max_retries=args.max_retries,
        gpus_per_case=args.gpus_per_case,
        cpus_per_case=args.cpus_per_case,
        address=args.address,
        placement_timeout=args.placement_timeout,
        partition=args.partition,
        account=args.account,
        time_min=args.time_min,
        array_parallelism=args.array_parallelism,
        log_dir=args.log_dir,
        verbose=args.verbose,
    )
    with _hangup_interrupts(), contextlib.closing(executors.create(options)) as executor:
        return _run_on(executor, args, cases, suites)


@contextlib.contextmanager
def _hangup_interrupts():
    """SIGTERM and SIGHUP (a dropped ssh session) stop a run as Ctrl-C does: queued and running cases
    of an executor are cancelled, finished ones stay in results.json."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    saved = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def _seed_policy(args, profile, say) -> tuple[bool, int | None]:
    """Whether seeds are added in rounds (--seeds auto, the default in the full profile) and the most a case gets;
    the choice is the run's header line."""
    auto = args.seeds == "auto" or (args.seeds is None and profile.auto_seeds)
    if not auto:
        for given, value in (("--max-seeds", args.max_seeds), ("--budget", args.budget)):
            if value is not None:
                raise CaseError(
                    f"{given}: only with --seeds auto (this run has {args.seeds or 'the profile'}'s fixed seeds)"
                )
        return False, None
    max_seeds = args.max_seeds or rounds.default_max_seeds(profile)
    chosen_by = "chosen" if args.seeds == "auto" else f"default in the {profile.name} profile; --seeds N fixes them"
    budget = f", budget {args.budget:.0f}s" if args.budget else ""
    say(
        f"seeds: auto ({chosen_by}): compared cases start at {max(profile.seeds, stats.MIN_SEEDS)}, one more per "
        f"round while a comparison is undecided, at most {max_seeds} a case{budget}"
    )
    return True, max_seeds


def _run_on(executor, args, cases, suites) -> int:
    def say(text: str, **kwargs) -> None:  # the terminal's lines fit 100 columns unless --wide
        print(clip(text, args.wide), **kwargs)

    found = executor.probe(args.device, args.precision)
    if found.get("error"):
        raise DeviceError(found["error"])
    if found.get("device_note"):  # a worker that fell back to the CPU though it seems to have a GPU (once a process)
        environment.say_once(found["device_note"])
    device, chosen = torch.device(found["device"]), found["precision"]
    if executor.name != "local" and args.verbose:
        say(f"executor: {executor.describe()}; cases train on {device.type}")
    say(f"precision: {chosen.name} ({chosen.reason})")
    if found.get("slow_warning"):
        say(found["slow_warning"], file=sys.stderr)
    profile = PROFILES[args.profile] if args.profile else case_mod.default_profile(device.type)
    how = "chosen" if args.profile else f"default on {device.type.upper()}"
    say(f"profile: {profile.name} ({how}: {profile.description})")
    auto, max_seeds = _seed_policy(args, profile, say)
    elsewhere = [c for c in cases if c.profiles and profile.name not in c.profiles]
    if elsewhere:
        names = sorted({c.sweep or c.id for c in elsewhere})
        shown = ", ".join(names[:6]) + (f", … ({len(names) - 6} more)" if len(names) > 6 else "")
        say(
            f"not in the {profile.name} profile: {len(elsewhere)} case(s) ({shown}); --profile "
            f"{' or '.join(sorted({p for c in elsewhere for p in c.profiles}))} runs them"
        )
        cases = [c for c in cases if c not in elsewhere]
        if not cases:
            raise CaseError(
                f"every selected case runs only in other profiles; use --profile "
                f"{' or '.join(sorted({p for c in elsewhere for p in c.profiles}))}"
            )
    source = open_source(args.data, profile.synthetic_sizes, args.skip_bad_images, args.val_fraction, args.offline)
    plan = RunPlan(
        profile=profile,
        device=device,
        source=source,
        out=args.out,
        run_id=args.run_id,
        seeds=None if auto else args.seeds,
        auto=auto,
        max_seeds=max_seeds,
        budget_s=args.budget,
        force=args.force,
        precision=chosen,
        deterministic=args.deterministic,
        seed_batching=args.seed_batching,
        tf32=args.tf32,
        random_init=args.random_init,
        strict_splits=args.strict_splits,
        offline=args.offline,
        case_timeout_s=args.case_timeout,
        tensorboard=args.tensorboard,
        overrides=tuple(args.overrides),
        environment={k: found[k] for k in ("machine_info", "software") if k in found},
    )
    try:
        run_dir, finished = run(cases, plan, suites, log=say, executor=executor)
    except KeyboardInterrupt:
        where = args.out / plan.resolved_run_id
        say(
            f"\nxraybench: interrupted. Finished cases are saved in {where / 'results.json'}; run the same "
            f"command again to resume from there (same --run-id {plan.resolved_run_id}).",
            file=sys.stderr,
        )
        return 130
    print()
    print(summary_table(finished, wide=args.wide))
    print(f"\nresults: {run_dir / 'results.json'}")
    if not args.no_report:
        _, pdf = report.render(run_dir, baseline=args.baseline)
        print(f"report:  {pdf}")
    return 1 if any(r.status == "failed" for r in finished.cases) else 0
