"""Your own data: an image folder, a "module:function" of Datasets, Datasets and DataLoaders
in the Python API; each item read once for the whole population."""

import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

import neuroprune
from neuroprune.cli import main
from neuroprune.data import DataConfig, load_dataset
from neuroprune.data.arrays import from_arrays
from neuroprune.data.sklearn_sets import split as split_indices
from neuroprune.errors import UserError
from neuroprune.preprocess import Preprocess, describe

from image_folders import CLASSES, PER_CLASS, SIZE, Net, images

PIL = pytest.importorskip("PIL.Image")

REPO = Path(__file__).resolve().parents[2]


class Counting(Dataset):
    def __init__(self, n=60, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.y = torch.arange(n) % 3
        self.x = torch.randn(n, 6, generator=g) + 3 * self.y[:, None].float()
        self.reads = 0

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        self.reads += 1
        return self.x[i], int(self.y[i])


def test_folder_reads_labels_in_sorted_order_and_matches_arrays(folder):
    data = load_dataset("folder", root=str(folder), split_seed=3)
    assert data.num_classes == 3 and data.input_shape == (3, SIZE, SIZE)
    assert data.provenance["classes"] == ["class0", "class1", "class2"]
    assert sum(data.sizes().values()) == CLASSES * PER_CLASS
    # the same images as arrays, split by the same fractions and seed: the same tensors
    imgs = images()
    x = np.stack([a.transpose(2, 0, 1) / 255.0 for _, _, a in imgs]).astype(np.float32)
    ref = from_arrays(x, np.array([c for c, _, _ in imgs]),
                      DataConfig(split_seed=3))
    assert torch.equal(data.train_y, ref.train_y) and torch.equal(data.test_y, ref.test_y)
    torch.testing.assert_close(data.train_x, ref.train_x, atol=1e-4, rtol=1e-4)
    # read as 0..255 pixels: the record scales the uint8 images to the same inputs
    assert data.preprocessing["scale"] == pytest.approx(1 / 255)
    assert "resize" not in data.preprocessing
    *_, test, _ = split_indices(np.arange(len(imgs)), np.array([c for c, _, _ in imgs]),
                                DataConfig(split_seed=3))
    pixels = torch.from_numpy(np.stack([imgs[i][2].transpose(2, 0, 1) for i in test]))
    torch.testing.assert_close(Preprocess(data.preprocessing)(pixels), data.test_x)
    resized = load_dataset("folder", root=str(folder), image_size=4)
    assert resized.input_shape == (3, 4, 4)
    assert resized.preprocessing["resize"] == [4, 4]
    assert "images resized to 4x4" in describe(resized.preprocessing)


def test_folder_with_train_val_test_subfolders(folder, tmp_path):
    root = tmp_path / "split"
    for split in ("train", "val", "test"):
        for c in range(CLASSES):
            (root / split / f"class{c}").mkdir(parents=True)
    for c, i, a in images():
        split = "train" if i < 8 else "val" if i < 10 else "test"
        PIL.fromarray(a).save(root / split / f"class{c}" / f"{i:03d}.png")
    data = load_dataset("folder", root=str(root))
    assert data.sizes() == {"train": 24, "val": 6, "test": 6}
    assert data.provenance["protocol"] == "folders"


def test_run_on_a_folder_equals_the_in_memory_run(folder, tmp_path):
    imgs = images()
    x = np.stack([a.transpose(2, 0, 1) / 255.0 for _, _, a in imgs]).astype(np.float32)
    y = np.array([c for c, _, _ in imgs])
    kw = dict(method="kstarts", sparsity=0.5, epochs=2, population=4, generations=1,
              search_epochs=1, progress=False, config={"data": {"split_seed": 1}})
    a = neuroprune.prune(Net, data=(x, y), out=tmp_path / "a", **kw)
    cfg = {"data": {"split_seed": 1, "dataset": "folder", "root": str(folder)}}
    b = neuroprune.prune(Net, data="folder", out=tmp_path / "b", **{**kw, "config": cfg})
    for key in ("test_accuracy", "val_accuracy"):
        assert b.summary[key] == pytest.approx(a.summary[key], abs=1e-6)
    assert list(a.metrics["val_accuracy"]) == pytest.approx(list(b.metrics["val_accuracy"]),
                                                            abs=1e-6)


def test_module_function_dataset(tmp_path, monkeypatch):
    (tmp_path / "my_sets.py").write_text(textwrap.dedent("""
        import torch
        from torch.utils.data import TensorDataset

        def make():
            g = torch.Generator().manual_seed(0)
            y = torch.arange(90) % 3
            x = torch.randn(90, 5, generator=g) + 2 * y[:, None].float()
            return TensorDataset(x[:60], y[:60]), TensorDataset(x[60:], y[60:])

        def pairs_missing():
            return [1, 2, 3], [4, 5]

        def not_a_tuple():
            return 5
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    data = load_dataset("my_sets:make")
    assert data.sizes() == {"train": 60, "val": 30, "test": 30} and data.num_classes == 3
    with pytest.raises(UserError, match="not an \\(input, label\\) pair"):
        load_dataset("my_sets:pairs_missing")
    with pytest.raises(UserError, match="must return \\(train, val\\)"):
        load_dataset("my_sets:not_a_tuple")
    with pytest.raises(UserError, match="cannot import module 'no_such_mod'"):
        load_dataset("no_such_mod:make")
    sys.modules.pop("my_sets", None)


def test_prune_with_a_dataloader_reads_each_item_once_for_the_population(tmp_path):
    ds = Counting()
    r = neuroprune.prune(Net, data=DataLoader(ds, batch_size=16), method="kstarts",
                         sparsity=0.5, epochs=20, population=6, generations=2, search_epochs=2,
                         progress=False, out=tmp_path / "r",
                         config={"training": {"batch_size": 8}})
    assert r.summary["test_accuracy"] > 0.5
    assert ds.reads == len(ds)  # once, not once per network or epoch
    train, val = Counting(seed=1), Counting(n=30, seed=2)
    r = neuroprune.prune(Net, data=(train, val), method="kstarts", sparsity=0.5, epochs=1,
                         population=4, generations=1, search_epochs=1, progress=False,
                         out=tmp_path / "s")
    assert train.reads == 60 and val.reads == 30


def _cli(tmp_path, *sets):
    cfg = REPO / "configs" / "quickstart.yaml"
    return main(["run", str(cfg), "--out", str(tmp_path / "run"),
                 *[a for s in sets for a in ("--set", s)]])


def test_bad_input_one_line_exit_2_nothing_written(tmp_path, folder, capsys):
    empty = tmp_path / "empty"
    (empty / "loose.png").parent.mkdir()
    PIL.fromarray(np.zeros((4, 4, 3), np.uint8)).save(empty / "loose.png")
    bad = tmp_path / "bad"
    for c in range(2):
        (bad / f"c{c}").mkdir(parents=True)
        for i in range(4):
            PIL.fromarray(np.zeros((4, 4, 3), np.uint8)).save(bad / f"c{c}" / f"ok{i}.png")
    (bad / "c1" / "broken.png").write_bytes(b"not a png")
    for root, message in ((empty, "0 class folder"), (bad, "c1/broken.png")):
        code = _cli(tmp_path, "data.dataset=folder", f"data.root={root}")
        err = capsys.readouterr().err.strip()
        assert code == 2 and message in err and len(err.splitlines()) == 1, err
        assert not (tmp_path / "run").exists()


def test_bad_datasets_in_the_python_api(tmp_path):
    class Unpaired(Counting):
        def __getitem__(self, i):
            return self.x[i]

    class OutOfRange(Counting):
        def __getitem__(self, i):
            return self.x[i], 7 if i == 3 else int(self.y[i])

    class Wide(nn.Module):  # output [batch, classes, 2]
        def __init__(self, input_shape, num_classes):
            super().__init__()
            self.lin = nn.Linear(6, 2 * num_classes)

        def forward(self, x):
            return self.lin(x).view(len(x), -1, 2)

    kw = dict(progress=False, epochs=1, population=2, generations=1, search_epochs=1)
    with pytest.raises(UserError, match="not an \\(input, label\\) pair"):
        neuroprune.prune(Net, data=(Unpaired(), Unpaired(30)), out=tmp_path / "a", **kw)
    with pytest.raises(UserError, match="labels run from 0 to 7"):
        neuroprune.prune(Net, data=(Counting(), OutOfRange(30)), out=tmp_path / "b", **kw)
    with pytest.raises(UserError):
        neuroprune.prune(Wide, data=(Counting(), Counting(30)), out=tmp_path / "c", **kw)
    assert not any((tmp_path / d).exists() for d in "abc")
