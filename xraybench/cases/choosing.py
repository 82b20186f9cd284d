"""What a run takes of the loaded cases and how it changes them: id patterns (``select``), ``--set`` (``override``),
and the comparisons across files whose settings differ beyond the model (``confounded``)."""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import tomllib
from pathlib import Path

from xraybench.cases.loading import build, merge, native_size
from xraybench.cases.spec import PROFILES, Case, CaseError, Suite
from xraybench.cases.validation import dotted_field, validate_case


def select(cases: list[Case], patterns: list[str]) -> list[Case]:
    """Cases whose id matches any shell-style pattern, in declaration order. Every pattern must match
    something: a typo among several ids would otherwise run the others and hide it."""
    ids = [c.id for c in cases]
    for pattern in patterns:
        if not any(fnmatch.fnmatchcase(i, pattern) for i in ids):
            close = difflib.get_close_matches(pattern, ids, n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise CaseError(
                f"no case matches {pattern!r}{hint} (xraybench list shows the {len(ids)} ids; "
                f"patterns are shell-style, e.g. 'hw3*')"
            )
    return [c for c in cases if any(fnmatch.fnmatchcase(c.id, p) for p in patterns)]


def override(cases: list[Case], suites: dict[str, Suite], settings: list[str]) -> list[Case]:
    """The cases with ``--set KEY=VALUE`` applied (``train.epochs=5``, ``data.augment=["hflip"]``): the value is read as
    TOML (a bare word as a string), checked as a case file's would be, and applied after the profile's caps, so a
    one-off experiment gets what it asked for; the configuration hash records it."""
    if not settings:
        return cases
    changes = {}
    for setting in settings:
        key, sep, text = setting.partition("=")
        if not sep or not text.strip():
            raise CaseError(f"--set {setting!r}: expected KEY=VALUE, e.g. --set train.epochs=5")
        dotted_field(key.strip(), "--set", "")
        try:
            value = tomllib.loads(f"value = {text.strip()}")["value"]
        except tomllib.TOMLDecodeError:
            value = text.strip()
        changes[key.strip()] = value
    sections: dict[str, dict] = {}
    for key, value in changes.items():
        section, name = key.split(".", 1)
        sections.setdefault(section, {})[name] = value
    keys = [*changes, *(f"train.{o}_options" for o in ("optimizer", "scheduler") if f"train.{o}" in changes)]
    changed = []
    for case in cases:
        where = f"--set (case {case.id!r})"
        for key in set(changes) & set(case.sweep_params):
            raise CaseError(
                f"--set {key}: an axis of the sweep {case.sweep!r}, whose points set it each; leave "
                f"the sweep out of this run or set another field"
            )
        declared = {
            s: {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(getattr(case, s)).items()}
            for s in ("data", "train")
        }
        raw = merge(declared, sections)
        built = {section: build(type(getattr(case, section)), raw[section], where, f"{section}.") for section in raw}
        values = {k: getattr(built[k.split(".")[0]], k.split(".", 1)[1]) for k in dict.fromkeys(keys)}
        new = dataclasses.replace(
            case, profile_overrides={p: {**case.profile_overrides.get(p, {}), **values} for p in PROFILES}
        )
        validate_case(dataclasses.replace(new, **built), suites[case.suite], where)
        if values.get("data.image_size") == 0:  # the model's own input size, as in a case file
            values["data.image_size"] = native_size(dataclasses.replace(new, **built), where).data.image_size
            new = dataclasses.replace(
                new, profile_overrides={p: {**o, **values} for p, o in new.profile_overrides.items()}
            )
        changed.append(new)
    return changed


def confounded(cases: list[Case]) -> list[str]:
    """Comparisons across case files whose data or training settings differ beyond the model: a user's case without
    the suite's defaults (no StepLR, other epochs) would be compared with a built-in one, and the difference
    credited to the model. One line per such pair; cases of one file are declared together and left alone."""
    chosen = {c.id: c for c in cases}
    notes = []
    for case in cases:
        for other in (chosen[o] for o in case.compare if o in chosen and chosen[o].source != case.source):
            mine, theirs = (c.config() for c in (case, other))
            differs = [
                f"{section}.{key} {mine[section].get(key, '-')} vs {theirs[section].get(key, '-')}"
                for section in ("data", "train")
                for key in sorted({*mine[section], *theirs[section]} - {"seed"})
                if mine[section].get(key) != theirs[section].get(key)
            ]
            if differs:
                notes.append(
                    f"{case.id} is compared with {other.id} of {Path(other.source).name}, but their settings "
                    f"differ beyond the model ({'; '.join(differs[:4])}{'; …' * (len(differs) > 4)}); "
                    f'extends = "{other.suite}" starts a file from that suite\'s defaults'
                )
    return notes
