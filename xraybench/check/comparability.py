"""Whether a run and a baseline can be compared at all: refused (``CheckError``) across profiles, data or
validation and test images; machine, precision and software differences only warned about."""

from __future__ import annotations

from xraybench import results
from xraybench.check.baselines import CheckError
from xraybench.results import DataInfo, Run


def comparable(run: Run | dict, baseline: Run | dict) -> None:
    """Stop (CheckError) where the numbers cannot be compared: another profile (other sizes and epochs), other
    data, or other validation or test images. Machine, precision and software differences are warnings: the same
    experiment on other hardware, whose times and rounding may move."""
    run, baseline = results.coerce(run), results.coerce(baseline, "the baseline given")
    sides = []
    if run.profile != baseline.profile:
        sides.append((f"profile {run.profile}", f"profile {baseline.profile}"))
    if not _same_data(run.data or DataInfo(), baseline.data or DataInfo()):
        sides.append((_data_label(run), _data_label(baseline)))
    else:
        for split in ("test", "val"):
            mine, theirs = _images(run, split), _images(baseline, split)
            if mine and theirs and mine != theirs:
                sides.append((f"{len(mine[0])} {split} images", f"{len(theirs[0])} other {split} images"))
    if sides:
        this, that = (" and ".join(side[i] for side in sides) for i in (0, 1))
        raise CheckError(
            f"cannot compare: this run is on {this}, the baseline on {that}; check a run made like the "
            f"baseline, or store a baseline of this kind of run (xraybench baseline save RUN_DIR)"
        )


def _same_data(a: DataInfo, b: DataInfo) -> bool:
    """Whether two runs read the same data, as far as their files say across machines: an .npz by MD5 where both
    recorded it; the built-in data by its fingerprint (generator version, seed, sizes, no path); else by kind and
    name (a folder's fingerprint holds file times; its images are compared by id after this)."""
    md5s = [(d.medmnist or {}).get("md5") for d in (a, b)]  # medmnist: a free-form record of the file read
    if all(md5s):
        return md5s[0] == md5s[1]
    kinds = [d.kind or (d.fingerprint or "").split("-", 1)[0] for d in (a, b)]
    if kinds[0] != kinds[1]:
        return False
    return a.fingerprint == b.fingerprint if kinds[0] == "synthetic" else a.name == b.name


def _data_label(run: Run) -> str:
    data = run.data or DataInfo()
    md5 = (data.medmnist or {}).get("md5")
    return f"{data.name or 'unknown data'} ({f'MD5 {md5[:8]}' if md5 else data.fingerprint or '?'})"


def _images(run: Run, split: str) -> tuple | None:
    found = run.images(split)
    return (tuple(found.ids), tuple(found.labels)) if found is not None else None


def environment_warnings(run: Run | dict, baseline: Run | dict) -> list[str]:
    """Differences of machine or software that make times (and maybe numbers) differ."""
    run, baseline = results.coerce(run), results.coerce(baseline, "the baseline given")
    warnings = []
    for group, before, now, keys in (  # free-form dicts: what each machine and its software reported
        ("machine_info", baseline.machine_info, run.machine_info, ("machine", "processor", "cpu_count")),
        ("software", baseline.software, run.software, ("device", "torch", "torchvision", "cuda", "gpu")),
    ):
        for key in keys:
            old, new = before.get(key), now.get(key)
            if old != new:
                warnings.append(f"warning: {group}.{key} differs: baseline {old!r}, this run {new!r}")
    old, new = baseline.settings.compared(), run.settings.compared()
    for key in ("precision", "deterministic"):
        if old[key] != new[key]:
            warnings.append(
                f"warning: {key} differs: baseline {old[key]}, this run {new[key]} "
                f"(numbers and times are expected to move)"
            )
    return warnings
