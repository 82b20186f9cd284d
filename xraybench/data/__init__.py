"""Data: the built-in synthetic radiographs, real sources (Kermany folder, MedMNIST .npz),
the uint8 tensor cache they are decoded into, and batching from tensors."""

from xraybench.data.batches import BatchLoader
from xraybench.data.sources import DataError, Dataset, Split, open_source

__all__ = ["BatchLoader", "DataError", "Dataset", "Split", "open_source"]
