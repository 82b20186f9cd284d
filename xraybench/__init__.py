"""xraybench: a report-generating benchmark suite for chest X-ray classification."""

__version__ = "0.1.0"
