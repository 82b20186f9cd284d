"""The augmentations a case may name (``data.augment``), each with what it does: defined here, without torch, so that
case files are checked against them; ``batches.BatchLoader`` implements each, keyed by these names."""

AUGMENTATIONS = {
    "hflip": "a horizontal flip of half the training images",
    "brightness": "a brightness shift, uniform within ±25.5 grey levels of 255, before normalisation",
}
