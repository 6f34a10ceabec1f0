import gzip
import pickle
import struct

import numpy as np
import pytest
import torch

from neuroprune.data import load_dataset
from neuroprune.errors import DataError, UserError
from neuroprune.preprocess import Preprocess


def test_digits_splits_are_fixed_disjoint_and_standardised():
    a = load_dataset("digits", split_seed=0)
    b = load_dataset("digits", split_seed=0)
    c = load_dataset("digits", split_seed=1)
    assert a.sizes() == {"train": 1167, "val": 270, "test": 360}
    assert torch.equal(a.test_x, b.test_x) and not torch.equal(a.test_x, c.test_x)
    assert a.input_shape == (1, 8, 8) and a.num_classes == 10
    assert abs(float(a.train_x.mean())) < 1e-4 and abs(float(a.train_x.std()) - 1) < 1e-3
    rows = {tuple(r.tolist()) for r in a.train_x.reshape(len(a.train_x), -1)}
    overlap = sum(tuple(r.tolist()) in rows for r in a.test_x.reshape(len(a.test_x), -1))
    assert overlap < 5  # digits has a few duplicate images, no systematic leak


@pytest.mark.parametrize("name", ["breast_cancer", "wine", "iris"])
def test_other_bundled_sets(name):
    d = load_dataset(name)
    assert d.train_x.ndim == 2 and len(d.test_y) > 0


def _write_idx(path, array, gz=True):
    header = struct.pack(">BBBB", 0, 0, 8, array.ndim) + b"".join(
        struct.pack(">I", s) for s in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    (gzip.open if gz else open)(path, "wb").write(data)


@pytest.fixture
def mnist10k_root(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(100, 28, 28))
    labels = np.arange(100) % 10
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels)
    return tmp_path, images, labels


def test_mnist_10k_protocol_from_test_files(mnist10k_root):
    root, images, labels = mnist10k_root
    d = load_dataset("mnist", root=str(root))
    assert d.sizes() == {"train": 70, "val": 10, "test": 20}  # 8/10 train (last 1/10 val), 2/10
    assert d.train_y.tolist() == labels[:70].tolist()
    assert d.val_y.tolist() == labels[70:80].tolist()
    assert d.test_y.tolist() == labels[80:].tolist()
    assert d.input_shape == (1, 28, 28)
    # standardised with the training split's statistics only
    raw = torch.tensor(images[:70] / 255.0, dtype=torch.float32)
    expect = (torch.tensor(images[80:] / 255.0, dtype=torch.float32) - raw.mean()) / raw.std()
    torch.testing.assert_close(d.test_x[:, 0], expect, rtol=1e-4, atol=1e-4)
    # read as 0..255 pixels: the record scales uint8 images to the same inputs
    assert d.preprocessing["scale"] == pytest.approx(1 / 255)
    pixels = torch.from_numpy(images[80:].astype(np.uint8))[:, None]
    torch.testing.assert_close(Preprocess(d.preprocessing)(pixels), d.test_x)


def test_padding_makes_32x32_images_with_their_background_around_them(mnist10k_root):
    root, images, _ = mnist10k_root
    plain = load_dataset("mnist", root=str(root))
    d = load_dataset("mnist", root=str(root), pad=2)
    assert d.input_shape == (1, 32, 32) and d.sizes() == plain.sizes()
    for split in ("train", "val", "test"):
        x, inner = getattr(d, f"{split}_x"), getattr(plain, f"{split}_x")
        assert torch.equal(x[:, :, 2:30, 2:30], inner)
        border = torch.cat([x[:, :, :2].flatten(), x[:, :, -2:].flatten(),
                            x[:, :, :, :2].flatten(), x[:, :, :, -2:].flatten()])
        assert torch.equal(border, torch.full_like(border, float(plain.train_x.min())))


def test_mnist_full_protocol_and_torchvision_layout(tmp_path):
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for split, n in (("train", 120), ("t10k", 30)):
        _write_idx(raw / f"{split}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)), gz=False)
        _write_idx(raw / f"{split}-labels-idx1-ubyte", np.arange(n) % 10, gz=False)
    d = load_dataset("fashion_mnist", root=str(tmp_path))
    assert d.sizes() == {"train": 110, "val": 10, "test": 30}
    with pytest.raises(DataError):
        load_dataset("fashion_mnist", root=str(tmp_path / "nowhere"), protocol="full")


def test_kmnist_original_npz_release(tmp_path):
    rng = np.random.default_rng(2)
    np.savez(tmp_path / "kmnist-test-imgs.npz", rng.integers(0, 256, (50, 28, 28), dtype=np.uint8))
    np.savez(tmp_path / "kmnist-test-labels.npz", np.arange(50) % 10)
    d = load_dataset("kmnist", root=str(tmp_path))
    assert d.sizes() == {"train": 35, "val": 5, "test": 10}


def test_missing_files_offline_give_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="data.download=true"):
        load_dataset("mnist", root=str(tmp_path), download=False)
    with pytest.raises(DataError, match="needs data.root"):
        load_dataset("mnist", root=None)


def test_download_branch_offline_or_without_torchvision(tmp_path):
    """With no files, download=true goes through torchvision; here it has no internet (or no
    working torchvision), which must end in one clear UserError, not a traceback."""
    with pytest.raises(UserError) as err:
        load_dataset("mnist", root=str(tmp_path), download=True)
    msg = str(err.value)
    assert "torchvision" in msg or "could not download" in msg


def test_corrupt_idx_is_reported(tmp_path):
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03" + b"\x00" * 8)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(10))
    with pytest.raises(DataError, match="truncated"):
        load_dataset("mnist", root=str(tmp_path))


def _cifar_batches(root, name="cifar10", n=60, seed=0):
    """CIFAR batches in the official python-pickle format (what torchvision downloads)."""
    import pickle
    rng = np.random.default_rng(seed)
    if name == "cifar10":
        folder = root / "cifar-10-batches-py"
        files = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
        key, classes = b"labels", 10
    else:
        folder, files, key, classes = root / "cifar-100-python", ["train", "test"], \
            b"fine_labels", 100
    folder.mkdir(parents=True)
    for f in files:
        blob = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                key: list(rng.integers(0, classes, n))}
        with open(folder / f, "wb") as out:
            pickle.dump(blob, out, protocol=2)
    return folder


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_from_the_python_pickle_batches(tmp_path, name):
    _cifar_batches(tmp_path, name)
    d = load_dataset(name, root=str(tmp_path))
    train_n = 5 * 60 if name == "cifar10" else 60
    assert d.sizes() == {"train": train_n - train_n // 10, "val": train_n // 10, "test": 60}
    assert d.input_shape == (3, 32, 32) and d.num_classes == (10 if name == "cifar10" else 100)
    # every channel standardised with the training split's statistics only
    assert d.train_x.mean((0, 2, 3)).abs().max() < 1e-4
    assert (d.train_x.std((0, 2, 3)) - 1).abs().max() < 1e-3
    # read as 0..255 pixels: the record scales the test batch's uint8 images to its inputs
    assert d.preprocessing["scale"] == pytest.approx(1 / 255)
    folder = tmp_path / ("cifar-10-batches-py" if name == "cifar10" else "cifar-100-python")
    with open(folder / ("test_batch" if name == "cifar10" else "test"), "rb") as f:
        pixels = torch.from_numpy(pickle.load(f, encoding="bytes")[b"data"]).view(-1, 3, 32, 32)
    torch.testing.assert_close(Preprocess(d.preprocessing)(pixels), d.test_x)


def test_cifar_batches_that_are_not_arrays_are_refused(tmp_path):
    import pickle
    folder = _cifar_batches(tmp_path)

    class Evil:
        def __reduce__(self):
            return (print, ("this must never run",))
    with open(folder / "test_batch", "wb") as out:
        pickle.dump({b"data": Evil(), b"labels": []}, out)
    with pytest.raises(DataError, match="not a CIFAR batch file"):
        load_dataset("cifar10", root=str(tmp_path))


def test_cifar_missing_offline_and_download_branch(tmp_path):
    with pytest.raises(DataError, match="data.download=true"):
        load_dataset("cifar10", root=str(tmp_path))
    with pytest.raises(UserError) as err:  # no internet here, or no working torchvision
        load_dataset("cifar10", root=str(tmp_path), download=True)
    assert "torchvision" in str(err.value) or "could not download" in str(err.value)


def test_generated_images_are_learnable_and_fixed_by_the_split_seed():
    a = load_dataset("images", samples=300, image_size=16, classes=3)
    b = load_dataset("images", samples=300, image_size=16, classes=3)
    c = load_dataset("images", samples=300, image_size=16, classes=3, split_seed=1)
    assert torch.equal(a.train_x, b.train_x) and not torch.equal(a.train_x, c.train_x)
    assert a.input_shape == (3, 16, 16)
    # a nearest-class-mean classifier beats chance clearly: the classes are patterns
    means = torch.stack([a.train_x[a.train_y == k].mean(0) for k in range(3)])
    pred = ((a.test_x[:, None] - means[None]) ** 2).flatten(2).sum(2).argmin(1)
    assert float((pred == a.test_y).float().mean()) > 0.6


def test_augmentation_is_seeded_and_keeps_shapes():
    from neuroprune.data.augment import Augmenter
    aug = Augmenter(["crop", "flip"])
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    p1 = aug.draw(2, torch.Generator().manual_seed(0))
    p2 = aug.draw(2, torch.Generator().manual_seed(0))
    assert torch.equal(p1, p2)
    out = aug.apply(x, torch.tensor([[4, 4, 0], [4, 4, 1]]))  # no shift; the second flipped
    assert torch.equal(out[0], x[0]) and torch.equal(out[1], x[1].flip(2))
    shifted = aug.apply(x, torch.tensor([[0, 0, 0], [8, 8, 0]]))  # 4 pixels of zero padding
    assert (shifted[0, :, :4, :] == 0).all() and torch.equal(shifted[0, :, 4:, 4:], x[0, :, :4, :4])
