"""What a task compared, the first table of its section: per case its model, input, augmentations, parameters
and FLOPs, training settings and seeds."""

from __future__ import annotations

from xraybench.report.tables import Table
from xraybench.results import CaseResult

# What each case is and costs, then how it was trained; a training setting every case shares is said once, under
# the table, so that the columns left are the differences and the table fits the printed page.
SETTINGS_HEADERS = [
    "case",
    "model",
    "options",
    "input",
    "aug.",
    "params",
    "FLOPs",
    "epochs",
    "batch",
    "optimizer",
    "lr",
    "weight decay",
    "scheduler",
    "loss",
    "seeds",
]
SHARED_ONCE = {"epochs", "batch", "optimizer", "lr", "weight decay", "scheduler", "loss"}
SETTINGS_CAPTION = (
    "aug.: augmentations of the training images. params: the trained model's parameters (and the "
    "trainable ones, where fewer). FLOPs: one forward pass of one image at the input shown "
    "(torch.utils.flop_counter, two per multiply-add; a pretrained backbone with its 1000-class "
    "ImageNet head). seeds: how many ran (which)."
)


def settings_table(cases: list[CaseResult]) -> Table:
    """What was compared: a row per case; the training settings all of them share in one line below."""
    rows = [_settings_row(c) for c in cases]
    shared = {i for i, h in enumerate(SETTINGS_HEADERS) if h in SHARED_ONCE and len({row[i] for row in rows}) == 1}
    keep = [i for i in range(len(SETTINGS_HEADERS)) if i not in shared]
    same = "; ".join(f"{SETTINGS_HEADERS[i]} {rows[0][i]}" for i in sorted(shared))
    return Table(
        [SETTINGS_HEADERS[i] for i in keep],
        [[row[i] for i in keep] for row in rows],
        numeric_from=99,
        caption=SETTINGS_CAPTION,
        note=f"The same for every case: {same}." if same else "",
    )


def _settings_row(case: CaseResult) -> list[str]:
    c = case.first.config  # the case's declared settings, as free-form as its file
    model, data, train = c.get("model", {}), c.get("data", {}), c.get("train", {})
    options = ", ".join(f"{k}={v}" for k, v in model.get("options", {}).items()) or "–"
    scheduler = train.get("scheduler", "")
    if train.get("scheduler_options"):
        scheduler += " (" + ", ".join(f"{k}={v}" for k, v in train["scheduler_options"].items()) + ")"
    return [
        case.id,
        model.get("name", ""),
        options,
        f"{data.get('channels')}×{data.get('image_size')}²",
        ", ".join(data.get("augment") or []) or "–",
        *_costs(case),
        str(train.get("epochs", "")),
        str(train.get("batch_size", "")),
        train.get("optimizer", ""),
        f"{train.get('lr', 0):g}",
        f"{train.get('weight_decay', 0):g}",
        scheduler,
        train.get("loss", ""),
        seeds_text([r.seed for r in case.rows]),
    ]


def seeds_text(seeds: list[int]) -> str:
    """How many seeds ran — the settings' sample size, which the seed number itself is not — and, from two
    on, which: "3 (0–2)", or "3 (0, 5, 9)" where they are not consecutive."""
    if len(seeds) < 2:
        return str(len(seeds))
    ordered = sorted(seeds)
    consecutive = ordered == list(range(ordered[0], ordered[0] + len(ordered)))
    which = f"{ordered[0]}–{ordered[-1]}" if consecutive else ", ".join(map(str, ordered))
    return f"{len(seeds)} ({which})"


def _costs(case: CaseResult) -> list[str]:
    """Parameters (exact; the trainable ones too, where fewer) and FLOPs per image of a case's model, from its first
    finished seed: HW3 task C asks what the flatten head costs."""
    if not case.ok:
        return ["–", "–"]
    metrics, info = case.ok[0].metrics, case.ok[0].model_info
    params, trained = metrics.params, metrics.trainable_params
    text = "–" if params is None else f"{params:,}"
    if params is not None and trained is not None and trained < params:
        text += f" ({trained:,} trainable)"
    return [text, flops(info.flops) if info and info.flops else "–"]


def flops(n: float) -> str:
    """FLOPs to three significant digits in the unit that suits them: 6.52 MFLOPs, 4.11 GFLOPs (a no-break space
    keeps the unit on the number's line in a narrow column)."""
    n = float(f"{n:.3g}")  # rounded first, so that 999.6 M reads 1 G, not 1e+03 M
    for scale, unit in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= scale:
            return f"{n / scale:.3g}\u00a0{unit}FLOPs"
    return f"{n:.0f}\u00a0FLOPs"
