"""Figures for the report, drawn with matplotlib (Agg) and returned as SVG data URIs.

One style for all: the Okabe–Ito colour-blind-safe palette, labelled axes, legends. SVGs
are written without a date and with a fixed id salt, so the same results give the same bytes.
"""

from __future__ import annotations

import base64
import io
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

if TYPE_CHECKING:
    from xraybench.results import Confusion, Epoch

TRAIN, VAL, TEST = "#0072B2", "#E69F00", "#009E73"
PALETTE = [TRAIN, VAL, TEST, "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
SPLIT_COLOURS = {"train": TRAIN, "val": VAL, "test": TEST}

plt.rcParams.update(
    {
        "svg.hashsalt": "xraybench",
        "svg.fonttype": "path",
        "font.size": 9,
        "axes.titlesize": 10,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "legend.frameon": False,
        "figure.dpi": 100,
        "axes.prop_cycle": plt.cycler(color=PALETTE),
    }
)


def to_data_uri(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def training_curves(histories: list[list[Epoch]]) -> str:
    """(a) accuracy and (b) loss per epoch, train vs validation, as in the homework reports; with
    several seeds, the mean per epoch and a band from the lowest to the highest seed."""
    length = min(len(h) for h in histories)
    epochs = [r.epoch for r in histories[0][:length]]
    fig, (acc, loss) = plt.subplots(1, 2, figsize=(7.2, 2.6))
    for ax, key, title in ((acc, "acc", "(a) Model accuracy evolution"), (loss, "loss", "(b) Model loss evolution")):
        for split, colour, marker, name in (("train", TRAIN, "o", "train"), ("val", VAL, "s", "validation")):
            values = np.array([[getattr(r, f"{split}_{key}") for r in h[:length]] for h in histories])
            ax.plot(epochs, values.mean(axis=0), marker=marker, ms=3, color=colour, label=name)
            if len(histories) > 1:
                ax.fill_between(epochs, values.min(axis=0), values.max(axis=0), color=colour, alpha=0.2, lw=0)
        ax.set(title=title, xlabel="epoch", ylabel="accuracy" if key == "acc" else "loss")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.legend()
    return to_data_uri(fig)


def val_vs_test(names: list[str], val: list[list[float]], test: list[list[float]]) -> str:
    """Grouped bars: best validation accuracy and test accuracy per case, mean over seeds with min–max whiskers."""
    y = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(7.2, 0.35 * len(names) + 1.0))
    for offset, values, colour, label in ((-0.2, val, VAL, "best validation"), (0.2, test, TEST, "test")):
        means = np.array([np.mean(v) for v in values])
        spread = np.array([[m - min(v) for m, v in zip(means, values)], [max(v) - m for m, v in zip(means, values)]])
        spread = np.maximum(spread, 0)  # equal seeds: a mean a rounding error above its min gives no negative whisker
        ax.barh(
            y + offset,
            means,
            height=0.38,
            color=colour,
            label=label,
            xerr=spread,
            error_kw={"elinewidth": 0.8, "capsize": 1.5},
        )
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.set(xlabel="accuracy (mean over seeds; whiskers: min–max)", xlim=(0, 1))
    ax.grid(axis="y", visible=False)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2)
    return to_data_uri(fig)


def confusion_matrices(named: list[tuple[str, Confusion]]) -> str:
    """One small confusion matrix per case (rows: truth, columns: prediction)."""
    cols = min(4, len(named))
    rows = -(-len(named) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.8 * cols, 1.9 * rows), squeeze=False)
    for ax in axes.flat[len(named) :]:
        ax.axis("off")
    for ax, (name, c) in zip(axes.flat, named):
        m = np.array([[c.tn, c.fp], [c.fn, c.tp]])
        ax.imshow(m, cmap="Blues", vmin=0)
        for (i, j), v in np.ndenumerate(m):
            ax.text(j, i, str(v), ha="center", va="center", color="white" if v > m.max() / 2 else "black")
        ax.set_xticks([0, 1], ["normal", "pneum."])
        ax.set_yticks([0, 1], ["normal", "pneum."])
        ax.set_title(name, fontsize=8)
        ax.grid(False)
    fig.supxlabel("predicted", fontsize=8)
    fig.supylabel("true", fontsize=8)
    fig.tight_layout()
    return to_data_uri(fig)


def intensity_histograms(histograms: dict, bins: int) -> str:
    """Pixel-intensity distribution per split, one panel per class."""
    centres = (np.arange(bins) + 0.5) * 256 / bins
    classes = ("normal", "pneumonia")
    fig, axes = plt.subplots(1, 2, figsize=(7.2, 2.4), sharey=True)
    for ax, cls in zip(axes, classes):
        for split, per_class in histograms.items():
            ax.plot(centres, per_class[cls], color=SPLIT_COLOURS.get(split), label=split)
        ax.set(title=cls, xlabel="pixel intensity (0–255)", xlim=(0, 255))
        ax.legend()
    axes[0].set_ylabel("fraction of pixels")
    return to_data_uri(fig)


def sample_grid(samples: dict) -> str:
    """Rows: split × class; columns: sample images."""
    rows = [(split, cls, images) for split, per_class in samples.items() for cls, images in per_class.items()]
    cols = max((len(images) for _, _, images in rows), default=1)
    fig, axes = plt.subplots(len(rows), cols, figsize=(1.1 * cols + 1.0, 1.1 * len(rows)), squeeze=False)
    for r, (split, cls, images) in enumerate(rows):
        for c in range(cols):
            _thumbnail(axes[r][c], images[c] if c < len(images) else None)
        axes[r][0].set_ylabel(f"{split}\n{cls}", fontsize=8, rotation=0, ha="right", va="center")
    fig.subplots_adjust(wspace=0.05, hspace=0.08)
    return to_data_uri(fig)


def operating_curves(cases: list) -> str:
    """(a) ROC and (b) precision–recall curves on the test split, the mean over seeds with a min–max
    band and the operating point of the validation-chosen threshold (Youden's J) marked; (c) the
    reliability diagram, seeds pooled. ``cases``: xraybench.stats.operating.CaseOperatingPoints."""
    from xraybench.stats.operating import GRID

    fig, (roc, pr, rel) = plt.subplots(1, 3, figsize=(7.2, 2.6))
    for colour, case in zip(PALETTE, cases):
        tpr = np.array([s.roc for s in case.seeds])
        precision = np.array([s.precision for s in case.seeds])
        for ax, curve in ((roc, tpr), (pr, precision)):
            ax.plot(GRID, curve.mean(axis=0), color=colour, lw=1.2, label=case.case)
            if len(curve) > 1:
                ax.fill_between(GRID, curve.min(axis=0), curve.max(axis=0), color=colour, alpha=0.15, lw=0)
        roc.plot(
            np.mean([1 - s.specificity_at_threshold for s in case.seeds]),
            np.mean([s.sensitivity_at_threshold for s in case.seeds]),
            "o",
            color=colour,
            ms=4,
            mec="black",
            mew=0.5,
        )
        pr.plot(
            np.mean([s.sensitivity_at_threshold for s in case.seeds]),
            np.mean([s.precision_at_threshold for s in case.seeds]),
            "o",
            color=colour,
            ms=4,
            mec="black",
            mew=0.5,
        )
        predicted, observed = case.reliability()
        rel.plot(predicted, observed, marker="o", ms=3, color=colour, lw=1.2)
    roc.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":")
    prevalence = cases[0].positives / (cases[0].positives + cases[0].negatives)
    pr.axhline(prevalence, color="grey", lw=0.8, ls=":")
    rel.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":")
    roc.set(title="(a) ROC (test)", xlabel="1 − specificity", ylabel="sensitivity", xlim=(0, 1), ylim=(0, 1.02))
    pr.set(
        title="(b) Precision–recall (test)",
        xlabel="recall (sensitivity)",
        ylabel="precision",
        xlim=(0, 1),
        ylim=(0, 1.02),
    )
    rel.set(
        title="(c) Reliability (test)",
        xlabel="mean P(pneumonia)",
        ylabel="observed pneumonia rate",
        xlim=(0, 1),
        ylim=(0, 1.02),
    )
    handles, labels = roc.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=min(3, len(labels)), fontsize=8)
    fig.tight_layout()
    return to_data_uri(fig)


def image_gallery(rows: list[tuple[str, list[tuple[str, str]]]]) -> str:
    """Rows of thumbnails (base64 PNGs), each with a caption under it and a row title on its left."""
    cols = max((len(items) for _, items in rows), default=1)
    fig, axes = plt.subplots(len(rows), cols, figsize=(1.0 * cols + 1.4, 1.25 * len(rows)), squeeze=False)
    for r, (title, items) in enumerate(rows):
        for c in range(cols):
            png, caption = items[c] if c < len(items) else (None, "")
            _thumbnail(axes[r][c], png)
            axes[r][c].set_xlabel(caption, fontsize=6.5)
        axes[r][0].set_ylabel(title, fontsize=7.5, rotation=0, ha="right", va="center")
    fig.subplots_adjust(wspace=0.08, hspace=0.35)
    return to_data_uri(fig)


def sweep_figure(effects: dict[str, list[tuple[object, float]]], expected: list[float]) -> str:
    """Small multiples: validation accuracy against each hyperparameter's values (dots per point, line through
    the mean per value); last panel: expected best validation accuracy against the number of points tried."""
    panels = len(effects) + 1
    fig, axes = plt.subplots(1, panels, figsize=(min(7.2, 1.9 * panels), 2.2), squeeze=False)
    for ax, (name, points) in zip(axes[0], effects.items()):
        values = sorted({v for v, _ in points}, key=lambda v: (isinstance(v, str), v))
        x = {v: i for i, v in enumerate(values)}
        ax.plot([x[v] for v, _ in points], [a for _, a in points], "o", ms=3, color=VAL, alpha=0.7)
        ax.plot(range(len(values)), [np.mean([a for v2, a in points if v2 == v]) for v in values], color=TRAIN)
        ax.set_xticks(range(len(values)), [f"{v:g}" if isinstance(v, float) else str(v) for v in values], fontsize=7)
        ax.set(title=name, xlabel=name)
    axes[0][0].set_ylabel("best val acc")
    last = axes[0][-1]
    last.plot(range(1, len(expected) + 1), expected, marker="o", ms=3, color=TEST)
    last.set(title="expected best", xlabel="points tried")
    last.xaxis.get_major_locator().set_params(integer=True)
    fig.tight_layout()
    return to_data_uri(fig)


def _thumbnail(ax, png: str | None) -> None:
    """An axis without ticks, grid or frame, showing a base64 PNG in grey levels (or nothing)."""
    from PIL import Image

    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    for spine in ax.spines.values():
        spine.set_visible(False)
    if png is not None:
        ax.imshow(np.asarray(Image.open(io.BytesIO(base64.b64decode(png)))), cmap="gray", vmin=0, vmax=255)


PROFILE_STYLES = [(TRAIN, "o"), ("#CC79A7", "s"), ("#56B4E9", "^"), ("#000000", "D")]  # not the flags' colours
FLAGS = {"worse": "#D55E00", "better": TEST}
MAX_TICKS = 16  # labels a panel shows before it shows every second (third …) run's


def metric_history(series: list, labels: list[str], profiles: list[str]) -> str:
    """One case across runs, a panel per metric and a line per profile (``history.Series``): the mean over seeds
    with its 95% interval per run, the runs in the history's order (``labels``, those with a point here); a run
    the lookback test flags is drawn red-orange (worse) or green (better). A profile's colour and marker follow
    its place in ``profiles`` (the history's), so that it looks the same in every case's figure."""
    metrics = list(dict.fromkeys(s.metric for s in series))
    drawn_profiles = {s.profile for s in series}
    styles = {
        profile: PROFILE_STYLES[i % len(PROFILE_STYLES)]
        for i, profile in enumerate(profiles)
        if profile in drawn_profiles
    }
    drawn = {p.label for s in series for p in s.points}
    shown = [label for label in labels if label in drawn]
    x = {label: i for i, label in enumerate(shown)}
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.6 * len(metrics), 2.3), squeeze=False)
    step = -(-len(shown) // MAX_TICKS)
    for ax, metric in zip(axes[0], metrics):
        for s in (s for s in series if s.metric == metric):
            _history_line(ax, s, x, *styles[s.profile])
        ax.set_xticks(
            range(0, len(shown), step), shown[::step], rotation=40, ha="right", rotation_mode="anchor", fontsize=7
        )
        ax.set_xlim(-0.5, len(shown) - 0.5)
        ax.margins(y=0.1)  # the intervals' caps clear the axes
        ax.set(title={"test_acc": "test accuracy (%)", "test_auc": "test AUC (×100)"}.get(metric, metric))
    flagged = {p.status for s in series for p in s.points} & set(FLAGS)
    fig.legend(
        handles=_history_legend(styles, sorted(flagged, reverse=True)),
        loc="lower center",
        bbox_to_anchor=(0.5, 1.0),
        ncol=len(styles) + len(flagged),
        fontsize=8,
    )
    fig.tight_layout()
    return to_data_uri(fig)


def _history_line(ax, s, x: dict[str, int], colour: str, marker: str) -> None:
    """One profile's points with their intervals, joined by a thin line; a flagged point in the flag's colour."""
    xs = [x[p.label] for p in s.points]
    ax.plot(xs, [100 * p.mean for p in s.points], color=colour, lw=0.8, alpha=0.6)
    for i, p in zip(xs, s.points):
        low, high = p.interval or (p.mean, p.mean)
        ax.errorbar(
            i,
            100 * p.mean,
            yerr=[[100 * (p.mean - low)], [100 * (high - p.mean)]],
            fmt=marker,
            ms=4.5,
            color=FLAGS.get(p.status, colour),
            capsize=2,
            lw=1,
        )


def _history_legend(styles: dict[str, tuple[str, str]], flags: list[str]) -> list:
    """A line per profile, then a dot per flag drawn (the figure's legend, above the panels: it hides no point)."""
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], color=colour, marker=marker, ms=4.5, lw=0.8, label=f"profile {profile or '?'}")
        for profile, (colour, marker) in styles.items()
    ]
    return handles + [
        Line2D([], [], color=FLAGS[f], marker="o", ms=4.5, lw=0, label=f"{f} than the recent runs") for f in flags
    ]
