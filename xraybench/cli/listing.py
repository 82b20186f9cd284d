"""``xraybench list`` and ``xraybench weights``: the declared cases, what each needs, what it cites."""

from __future__ import annotations

from tabulate import tabulate

from xraybench import cases as case_mod
from xraybench.models.backbones import required_weights
from xraybench.models.weights import fetch as fetch_weights


def cmd_list(args) -> int:
    cases, suites = case_mod.load_cases(args.cases)
    if args.patterns:
        cases = case_mod.select(cases, args.patterns)
    headers = ["id", "task", "title", "model", "mode", "needs", "profiles", "hash"]
    rows = [[c.id, f"{c.suite} {c.task}", c.title, c.model.name, c.mode, _needs(c),
             ", ".join(c.profiles) or "all", c.config_hash] for c in cases]
    if any(c.published.source for c in cases):  # the references a published suite reproduces
        headers.append("published (test)")
        rows = [row + [_reference(c.published)] for row, c in zip(rows, cases)]
    print(tabulate(rows, headers=headers, tablefmt="simple"))
    return 0


def _needs(case) -> str:
    file = required_weights(case.model.name, case.model.options)
    needs = [f"--data {case.requires_data}"] * bool(case.requires_data)
    if file is not None:
        needs.append(f"weights {file.path.name} ({'present' if file.present else 'missing'})")
    return "; ".join(needs) or "-"


def _reference(ref) -> str:
    if not ref.source:
        return "-"
    values = ", ".join(f"{name.removeprefix('test_').upper()} {value:.4g}" for name, (value, _) in ref.metrics.items())
    return f"{values} ({ref.source}, {ref.table})"


def cmd_weights(args) -> int:
    cases, _ = case_mod.load_cases(args.cases)
    files = {}
    for case in cases:
        file = required_weights(case.model.name, case.model.options)
        if file is not None:
            files.setdefault(file.path, (file, []))[1].append(case.id)
    if args.action == "fetch":
        for file, _ in files.values():
            if not file.present and file.url:
                print(f"fetching {file.url} → {file.path}")
                fetch_weights(file)
    rows = [[file.model, "present" if file.present else "MISSING", str(file.path), len(ids)]
            for file, ids in files.values()]
    print(tabulate(rows, headers=["model", "status", "file (where it belongs)", "cases"], tablefmt="simple"))
    missing = [file for file, _ in files.values() if not file.present]
    if missing and args.action == "list":
        print(f"\n{len(missing)} file(s) missing: cases that need them are skipped. Place each file at the path "
              f"shown (TORCH_HOME moves the torch hub cache), or run 'xraybench weights fetch' where a network exists.")
    return 0
