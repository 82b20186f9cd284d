"""Numbers in, numbers out: intervals, DeLong, paired comparisons, operating points, calibration."""

from xraybench.stats.intervals import *  # noqa: F401,F403
from xraybench.stats.intervals import Z  # noqa: F401
