"""Does a run reproduce a published value? Our seeds' mean against the published mean, as two samples of
the same training procedure on the same test images.

The published value is itself a mean of a few trainings (MedMNIST+: three seeds, with their sd; MedMNIST
v2: one run, no spread). Both are measured on the same test images, so the images' sampling is shared and
cancels from the difference; what separates two runs of one protocol is the seeds. The difference's variance
is therefore s²/n + s_p²/k: our seeds' variance over our n seeds, and the published runs' variance over their
k — the published sd where it is given (Welch–Satterthwaite degrees of freedom), or else ours, as it would be
were the protocol reproduced (then d / (s √(1/n + 1/k)) is t with n − 1 degrees of freedom). Asking only
whether the published value falls inside our interval would ignore its own seed noise: with one published
run and a large seed spread that rule calls a faithful reproduction "different" far more often than 5%
(benchmarks/stat_calibration.py shows both).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xraybench.stats import decision
from xraybench.stats.intervals import welch_t


@dataclass(frozen=True)
class Reproduction:
    ours: float  # mean over our seeds
    published: float
    difference: float  # ours − published
    low: float | None  # 95% interval of the difference; None when untestable
    high: float | None
    p_value: float  # two-sided; 1.0 when untestable
    df: float
    seeds: int
    runs: int  # trainings the published value averages
    spread_from: str  # "published" (its sd) or "ours" (no sd published)
    # The smallest |ours − published| the test calls at α: the interval's half-width, t_crit · se (not a
    # minimum detectable effect at 80% power, as ``detectable_difference`` is).
    critical_difference: float | None = None

    @property
    def testable(self) -> bool:
        """Our seeds give a spread (2 or more, not all equal)."""
        return self.low is not None

    @property
    def direction(self) -> int:
        """+1 ours higher, −1 ours lower, 0 consistent (or untestable), at the 5% level."""
        return decision.direction(self.difference, self.p_value, self.testable) or 0


def against_published(values, published: float, published_sd: float = 0.0, runs: int = 1) -> Reproduction | None:
    """Our per-seed values of a metric against a published mean of ``runs`` trainings (sd ``published_sd``,
    0 when not published). None without values."""
    values = np.asarray([v for v in values if v is not None], dtype=float)
    if len(values) == 0:
        return None
    n, mean = len(values), float(values.mean())
    untestable = Reproduction(
        mean,
        published,
        mean - published,
        None,
        None,
        1.0,
        0.0,
        n,
        runs,
        "published" if published_sd > 0 and runs > 1 else "ours",
    )
    if n < 2:
        return untestable
    ours_var = float(values.var(ddof=1)) / n
    if published_sd > 0 and runs > 1:
        parts = [(ours_var, n - 1), (published_sd**2 / runs, runs - 1)]
    else:  # the published runs' spread taken as ours: n − 1 degrees of freedom
        parts = [(ours_var * (1 + n / runs), n - 1)]
    if sum(v for v, _ in parts) <= 0:
        return untestable
    d = mean - published
    t = {k: float(v) for k, v in welch_t(d, parts).items()}
    # Metrics here are shares: ours lies in [0, 1], so the difference in [−published, 1 − published].
    return Reproduction(  # the half-width before clipping: the t interval is d ± t_crit · se
        mean,
        published,
        d,
        max(t["low"], -published),
        min(t["high"], 1 - published),
        t["p_value"],
        t["df"],
        n,
        runs,
        untestable.spread_from,
        (t["high"] - t["low"]) / 2,
    )
