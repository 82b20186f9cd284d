"""results.json: the one file a run produces and the report and the check read — and a stored baseline, read the
same way.

``schema`` declares both files (pydantic models, their JSON Schemas; ``versions.upgrade`` for older ones); ``store``
reads and writes them; ``rows`` builds a row and reads its predictions; ``seeds`` groups the rows of a case over its
seeds (``CaseResult``, ``by_case``); ``metrics`` is the catalogue of checked metrics (``METRICS``, ``Tolerance``);
``decisions`` decides the comparisons the cases declare (four outcomes, and the looks of ``--seeds auto``);
``machine`` types what a run was measured on.

Per-image predictions (schema 2): the run's ``data.images`` holds, for the validation and test splits, each image's
stable id and label once; every ok row holds ``predictions``, its P(pneumonia) per image in that order. Schema 1
files have neither and still read. From schema 3 (baselines 4) P = 0.5 says NORMAL; older files are read so
that every label they imply stays what it was (``versions``).
"""

from xraybench.results.metrics import ALIASES, METRICS, Metric, Tolerance, ToleranceError
from xraybench.results.rows import (
    DEGENERATE_AUC,
    DEGENERATE_SHARE,
    PREDICTED_SPLITS,
    PROBABILITY_DIGITS,
    THRESHOLD,
    Degenerate,
    case_row,
    confusion,
    crash_row,
    degeneracy,
    image_table,
    predictions,
    row_degeneracy,
    says_pneumonia,
    stored_probability,
)
from xraybench.results.schema import (
    BASELINE_KIND,
    BASELINE_SCHEMA,
    SCHEMA_VERSION,
    STATUSES,
    VIEWS,
    Baseline,
    Confusion,
    DataInfo,
    Epoch,
    Look,
    Metrics,
    ModelInfo,
    Question,
    Row,
    Run,
    Settings,
    SplitCounts,
    SplitImages,
    SuiteInfo,
    json_schema,
)
from xraybench.results.seeds import CaseResult, by_case
from xraybench.results.store import (
    FILENAME,
    ResultsError,
    coerce,
    config_hash,
    find,
    legacy_config_hash,
    new_run,
    now,
    parse,
    read,
    upsert,
    write,
)
from xraybench.results.versions import upgrade

__all__ = [
    "ALIASES",
    "BASELINE_KIND",
    "BASELINE_SCHEMA",
    "DEGENERATE_AUC",
    "DEGENERATE_SHARE",
    "FILENAME",
    "METRICS",
    "PREDICTED_SPLITS",
    "PROBABILITY_DIGITS",
    "SCHEMA_VERSION",
    "STATUSES",
    "THRESHOLD",
    "VIEWS",
    "Baseline",
    "CaseResult",
    "Confusion",
    "DataInfo",
    "Degenerate",
    "Epoch",
    "Look",
    "Metric",
    "Metrics",
    "ModelInfo",
    "Question",
    "ResultsError",
    "Row",
    "Run",
    "Settings",
    "SplitCounts",
    "SplitImages",
    "SuiteInfo",
    "Tolerance",
    "ToleranceError",
    "by_case",
    "case_row",
    "coerce",
    "config_hash",
    "confusion",
    "crash_row",
    "degeneracy",
    "find",
    "image_table",
    "json_schema",
    "legacy_config_hash",
    "new_run",
    "now",
    "parse",
    "predictions",
    "read",
    "row_degeneracy",
    "says_pneumonia",
    "stored_probability",
    "upgrade",
    "upsert",
    "write",
]
