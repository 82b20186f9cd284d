import numpy as np
import pytest
import torch
from conftest import KERMANY, NPZ

from xraybench.data import BatchLoader, DataError, cache, open_source
from xraybench.data.sources import FolderSource, NpzSource, Split, SyntheticSource
from xraybench.data.synthetic import generate_split


def test_synthetic_is_deterministic_per_seed():
    a, la = generate_split("train", 70, 48, seed=3)
    b, lb = generate_split("train", 70, 48, seed=3)
    c, _ = generate_split("train", 70, 48, seed=4)
    assert torch.equal(a, b) and torch.equal(la, lb)
    assert not torch.equal(a, c)
    assert a.dtype == torch.uint8 and a.shape == (70, 1, 48, 48)
    assert 0 < la.float().mean() < 1


@pytest.mark.parametrize("size", [16, 64, 200])
def test_synthetic_any_resolution_same_patients(size):
    x, labels = generate_split("val", 20, size)
    _, labels64 = generate_split("val", 20, 64)
    assert x.shape == (20, 1, size, size)
    assert torch.equal(labels, labels64)  # resolution does not change who is ill


def test_synthetic_test_split_is_a_shifted_acquisition():
    val, _ = generate_split("val", 256, 64)
    test, _ = generate_split("test", 256, 64)

    def noise(x):  # high-frequency energy: mean absolute difference of neighbours
        x = x.float()
        return (x[..., 1:] - x[..., :-1]).abs().mean().item()

    assert noise(test) > 1.2 * noise(val)
    assert abs(test.float().mean().item() - val.float().mean().item()) > 3


def test_synthetic_pneumonia_differs_in_the_lungs():
    x, y = generate_split("train", 512, 64)
    lung_band = x[:, 0, 12:40, 8:56].float().mean(dim=(1, 2))
    assert lung_band[y == 1].mean() > lung_band[y == 0].mean()  # consolidations are denser than air


def test_folder_source_real_jpegs_and_carved_val():
    data = cache.prepare(open_source(KERMANY, (0, 0, 0)), 64).open()
    sizes = {name: (len(s), s.counts()) for name, s in data.splits.items()}
    assert sizes["test"] == (6, {"normal": 3, "pneumonia": 3})
    assert sizes["val"] == (2, {"normal": 1, "pneumonia": 1})  # carved: one per class
    assert sizes["train"] == (8, {"normal": 4, "pneumonia": 4})
    x = data.splits["train"].images
    assert x.shape == (8, 1, 64, 64) and x.dtype == torch.uint8
    assert x.float().std() > 20  # real content, not a blank image
    assert any("carved" in note for note in data.notes)
    again = FolderSource(KERMANY.resolve()).decode(64)[0]
    assert torch.equal(again["val"].images, data.splits["val"].images)  # carving is deterministic


def test_npz_source_real_pneumoniamnist():
    data = cache.prepare(open_source(NPZ, (0, 0, 0)), 32).open()
    assert {n: len(s) for n, s in data.splits.items()} == {"train": 3882, "val": 524, "test": 624}
    assert data.splits["test"].counts() == {"normal": 234, "pneumonia": 390}
    assert data.splits["test"].images.shape[1:] == (1, 32, 32)


def test_cache_decodes_once(monkeypatch):
    source = SyntheticSource((10, 4, 4), seed=11)
    first = cache.prepare(source, 24).open()
    monkeypatch.setattr(SyntheticSource, "decode", lambda *a: pytest.fail("decoded again"))
    second = cache.prepare(source, 24).open()
    assert torch.equal(first.splits["train"].images, second.splits["train"].images)


def test_limited_is_stratified_and_deterministic():
    data = cache.prepare(NpzSource(NPZ.resolve()), 28).open()
    small = data.limited(100)
    assert len(small.splits["train"]) == 100
    assert small.splits["train"].counts()["normal"] == 10  # 388 / 3882 of 100
    assert torch.equal(small.splits["val"].labels, data.limited(100).splits["val"].labels)


def test_batches_normalise_expand_and_shuffle_deterministically():
    split = Split(
        torch.tensor([0, 255], dtype=torch.uint8).view(2, 1, 1, 1).expand(2, 1, 4, 4).contiguous(), torch.tensor([0, 1])
    )
    x, _y = next(iter(BatchLoader(split, 2, device=torch.device("cpu"), channels=3, mean=0.5, std=0.5)))
    assert x.shape == (2, 3, 4, 4)
    assert torch.allclose(x[0], torch.full((3, 4, 4), -1.0)) and torch.allclose(x[1], torch.ones(3, 4, 4))
    big = Split(torch.arange(64, dtype=torch.uint8).view(64, 1, 1, 1), torch.zeros(64, dtype=torch.long))

    def order():
        return [
            b[0].flatten().tolist()
            for b in BatchLoader(
                big,
                8,
                device=torch.device("cpu"),
                shuffle=True,
                seed=5,
            )
        ]

    assert order() == order() and order() != [
        b[0].flatten().tolist() for b in BatchLoader(big, 8, device=torch.device("cpu"))
    ]


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda tmp: tmp / "missing", "no such file or folder"),
        (lambda tmp: (tmp / "notes.txt").write_text("x") and tmp / "notes.txt", "not a folder or a .npz"),
    ],
)
def test_bad_data_paths(tmp_path, make, words):
    with pytest.raises(DataError, match=words):
        open_source(make(tmp_path), (1, 1, 1))


def test_folder_without_train_split(tmp_path):
    (tmp_path / "test" / "NORMAL").mkdir(parents=True)
    with pytest.raises(DataError, match="no train/ folder"):
        FolderSource(tmp_path).files()


def test_npz_missing_key_and_bad_labels(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, train_images=np.zeros((2, 8, 8), np.uint8))
    with pytest.raises(DataError, match="missing key 'train_labels'"):
        NpzSource(bad).decode(8)
    arrays = {
        f"{s}_{k}": (np.zeros((2, 8, 8), np.uint8) if k == "images" else np.array([[0], [2]]))
        for s in ("train", "val", "test")
        for k in ("images", "labels")
    }
    np.savez(bad, **arrays)
    with pytest.raises(DataError, match="other than 0 and 1"):
        NpzSource(bad).decode(8)
    arrays["train_labels"] = np.array([[0], [1], [1]])  # 3 labels for 2 images
    np.savez(bad, **arrays)
    with pytest.raises(DataError, match="train_images has shape \\(2, 8, 8\\), expected"):
        NpzSource(bad).decode(8)


def test_nearest_resize_repeats_each_pixel_as_medmnist_v2_upsamples_28_to_224(tmp_path):
    """MedMNIST v2 trains its 224-pixel models on the 28-pixel images upsampled with nearest neighbour: each
    pixel becomes a block. The bilinear default blends neighbours; the two are cached apart."""
    nearest = cache.prepare(NpzSource(NPZ.resolve()), 56, root=tmp_path, resample="nearest")
    bilinear = cache.prepare(NpzSource(NPZ.resolve()), 56, root=tmp_path)
    native = cache.prepare(NpzSource(NPZ.resolve()), 28, root=tmp_path).open().splits["test"].images
    assert nearest.entry != bilinear.entry
    up = nearest.open().splits["test"].images
    assert torch.equal(up, native.repeat_interleave(2, dim=-1).repeat_interleave(2, dim=-2))
    assert not torch.equal(bilinear.open().splits["test"].images, up)
