"""Files of older schema versions in today's shape: the one place that knows what older versions lacked or meant
otherwise (``upgrade``, applied by ``store.parse`` before a file is validated)."""

from __future__ import annotations

from xraybench.results.schema import BASELINE_KIND

STRICT_RULE = {"results": 3, "baseline": 4}  # the versions from which P = 0.5 says NORMAL (stats.decision)


def upgrade(doc: dict) -> dict:
    """A file of an older schema version in today's shape; the one place that knows what older versions lacked.
    Runs written before ``settings`` was recorded trained in fp32 on a CPU (``Settings``' defaults) and in bf16
    autocast on a GPU, then recorded as ``software.autocast``; not deterministically, from pretrained weights."""
    doc = _strict_rule(doc)
    software = doc.get("software") if isinstance(doc.get("software"), dict) else {}
    recorded = doc.get("settings") if isinstance(doc.get("settings"), dict) else {}
    autocast = software.get("autocast")
    if isinstance(autocast, str) and "precision" not in recorded:
        doc = {**doc, "settings": {**recorded, "precision": {"name": autocast}}}
    return doc


def _strict_rule(doc: dict) -> dict:
    """Before the decision rule became P > 0.5 (MedMNIST's), P = 0.5 said PNEUMONIA, and a stored 0.5 stood for a
    probability in [0.5, 0.50005) (``rows.stored_probability`` kept those below 0.5 at 0.4999). Such a value is
    stored as 0.5001 today, so an older file's 0.5 becomes 0.5001: every label it implies stays what it was."""
    version, kind = doc.get("schema_version"), "baseline" if doc.get("kind") == BASELINE_KIND else "results"
    if not isinstance(version, int) or version >= STRICT_RULE[kind]:
        return doc
    if not isinstance(doc.get("cases"), list):
        return doc  # not a file this reads: validation says what is wrong with it
    return {**doc, "cases": [_strict_row(row) for row in doc["cases"]]}


def _strict_row(row):
    predictions = row.get("predictions") if isinstance(row, dict) else None
    if not isinstance(predictions, dict):
        return row
    moved = {s: [0.5001 if p == 0.5 else p for p in v] if isinstance(v, list) else v for s, v in predictions.items()}
    return {**row, "predictions": moved}
