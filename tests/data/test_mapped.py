"""Data larger than memory: the streamed inputs in a float32 file mapped into memory
(``data.loader.cache: disk``), read batch by batch, the same search as in memory."""

import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

import neuroprune
from neuroprune.cli import main
from neuroprune.data import DataConfig, load_dataset
from neuroprune.data.mapped import mapped_file
from neuroprune.data.streamed import from_datasets
from neuroprune.errors import UserError

from image_folders import Net

PIL = pytest.importorskip("PIL.Image")

REPO = Path(__file__).resolve().parents[2]
TIMINGS = ("latency", "speedup", "seconds", "engine")  # "engine" says the free memory


def _rows(run: Path) -> list[dict]:
    """The ledger's rows without the timings (which differ between any two runs)."""
    rows = [r for line in (run / "ledger.jsonl").read_text().splitlines()
            for r in json.loads(line)["rows"]]
    return [{k: v for k, v in r.items() if not any(t in k for t in TIMINGS)} for r in rows]


def test_disk_cache_gives_the_same_data_and_search_as_memory(folder, tmp_path):
    cache = tmp_path / "cache"
    base = {"split_seed": 1, "dataset": "folder", "root": str(folder)}
    mem = load_dataset(DataConfig(**base, loader={"cache": "memory"}))
    disk = load_dataset(DataConfig(**base, loader={"cache": "disk", "cache_dir": str(cache)}))
    auto = load_dataset(DataConfig(**base, loader={"max_bytes": 1000,
                                                   "cache_dir": str(cache)}))
    assert not mem.on_disk and disk.on_disk and auto.on_disk
    for split in ("train", "val", "test"):
        for other in (disk, auto):  # the same float32 operations: the same values
            assert torch.equal(getattr(other, f"{split}_x"), getattr(mem, f"{split}_x"))
            assert torch.equal(getattr(other, f"{split}_y"), getattr(mem, f"{split}_y"))
    assert disk.preprocessing == mem.preprocessing
    kw = dict(method="kstarts", sparsity=0.5, epochs=2, population=4, generations=2,
              search_epochs=1, progress=False)
    for name, loader in (("mem", {"cache": "memory"}),
                         ("disk", {"max_bytes": 1000, "cache_dir": str(cache)})):
        neuroprune.prune(Net, data="folder", out=tmp_path / name,
                         config={"data": {**base, "loader": loader}}, **kw)
    assert _rows(tmp_path / "mem") == _rows(tmp_path / "disk") and _rows(tmp_path / "mem")
    summaries = [{k: v for k, v in json.loads((tmp_path / r / "summary.json").read_text())
                  .items() if not any(t in k for t in TIMINGS)} for r in ("mem", "disk")]
    assert summaries[0] == summaries[1]


def test_disk_inputs_are_views_on_the_mapped_file(folder, tmp_path):
    from neuroprune.engine import EngineConfig
    from neuroprune.engine.settings import TrainSettings
    from neuroprune.engine.trainers import StackedTrainer
    from neuroprune.models import ModelSpec

    data = load_dataset("folder", root=str(folder), loader={"cache": "disk",
                                                            "cache_dir": str(tmp_path / "c")})
    files = list((tmp_path / "c").iterdir())
    assert len(files) == 1 and files[0].stat().st_size == 36 * 3 * 8 * 8 * 4
    ptr = data.train_x.untyped_storage().data_ptr()
    for split in ("train", "val", "test"):  # one mapping, no copy: the storage is the file
        x = getattr(data, f"{split}_x")
        assert mapped_file(x) == str(files[0]) and x.untyped_storage().data_ptr() == ptr
    maps = Path("/proc/self/maps")
    if maps.exists():
        assert str(files[0]) in maps.read_text()
    # fp64 precision would copy in-memory inputs; mapped ones stay on the file
    spec = ModelSpec(data.input_shape, data.num_classes, builder=Net)
    trainer = StackedTrainer(spec, data, TrainSettings(batch_size=4),
                             engine=EngineConfig(precision="fp64"))
    assert mapped_file(trainer.data.train_x) == str(files[0])
    rows = torch.tensor([3, 0, 5])
    got = trainer.data.inputs("train", rows, "cpu", torch.float64)
    assert got.dtype == torch.float64 and torch.equal(got, data.train_x[rows].double())


@pytest.mark.parametrize("trainer,options", [
    ("StackedTrainer", {"augment": ("crop", "flip")}), ("PerNetworkTrainer", {}),
    ("SparseTrainer", {}), ("StackedTrainer", {"engine": {"precision": "fp64"}})])
def test_every_trainer_trains_the_same_networks_from_disk(folder, tmp_path, trainer, options):
    from helpers import population

    from neuroprune import engine
    from neuroprune.engine.sparse import SparseTrainer

    cls = SparseTrainer if trainer == "SparseTrainer" else getattr(engine, trainer)
    if "engine" in options:
        options = {"engine": engine.EngineConfig(**options["engine"])}
    got = []
    for loader in ({"cache": "memory"}, {"cache": "disk", "cache_dir": str(tmp_path)}):
        data = load_dataset(DataConfig(dataset="folder", root=str(folder), loader=loader))
        spec, layout, bits = population(data, n=3, widths=(16,))
        task = engine.EvalTask(masks=bits, init=engine.init_state(spec, 0), epochs=2,
                               data_seed=3)
        settings = engine.TrainSettings(lr=0.05, batch_size=8)
        got.append(cls(spec, data, settings, layout, **options).run(task).metrics)
    assert all(torch.equal(got[0][k], got[1][k]) for k in got[0])


def test_pickled_disk_splits_are_the_path_and_reopen_equal(tmp_path):
    g = torch.Generator().manual_seed(0)
    y = torch.arange(1200) % 3
    x = torch.randn(1200, 3, 16, 16, generator=g) + y[:, None, None, None]
    sets = (TensorDataset(x[:800], y[:800]), TensorDataset(x[800:], y[800:]))
    data = from_datasets(*sets, cfg=DataConfig(loader={"cache": "disk",
                                                       "cache_dir": str(tmp_path / "c")}))
    blob = pickle.dumps(data)
    assert data.on_disk and len(blob) < x.numel() * 4 // 20  # labels, not inputs
    back = pickle.loads(blob)
    assert back.on_disk and mapped_file(back.val_x) == mapped_file(data.val_x)
    for split in ("train", "val", "test"):
        assert torch.equal(getattr(back, f"{split}_x"), getattr(data, f"{split}_x"))
    # another process (a Ray actor) reopens the file from the path
    (tmp_path / "splits.pkl").write_bytes(blob)
    code = ("import pickle, sys; d = pickle.load(open(sys.argv[1], 'rb')); "
            "print(d.on_disk, float(d.val_x[5:].sum()))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "splits.pkl")],
                         capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "True"
    assert float(out[1]) == pytest.approx(float(data.val_x[5:].sum()), rel=1e-5)


def _cli(tmp_path, *sets):
    cfg = REPO / "configs" / "quickstart.yaml"
    return main(["run", str(cfg), "--out", str(tmp_path / "run"),
                 *[a for s in sets for a in ("--set", s)]])


def test_what_cannot_be_cached_is_refused_in_one_line(folder, tmp_path, capsys, monkeypatch):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    cache = tmp_path / "cache"
    cases = [(["data.loader.cache=disk", f"data.loader.cache_dir={blocker}/sub"],
              "data.loader.cache_dir: cannot create"),
             (["data.loader.cache=memory", "data.loader.max_bytes=1000"],
              "set data.loader.cache: disk"),
             ([f"data.loader.cache_dir={cache}", "data.loader.max_bytes=1000", "data.pad=2"],
              "data.pad")]
    for sets, message in cases:
        code = _cli(tmp_path, "data.dataset=folder", f"data.root={folder}", *sets)
        err = capsys.readouterr().err.strip()
        assert code == 2 and message in err and len(err.splitlines()) == 1, err
        assert not (tmp_path / "run").exists()
    import shutil
    free = shutil.disk_usage(tmp_path)._replace(free=5000)
    monkeypatch.setattr("neuroprune.data.mapped.shutil.disk_usage", lambda _: free)
    code = _cli(tmp_path, "data.dataset=folder", f"data.root={folder}",
                "data.loader.cache=disk", f"data.loader.cache_dir={cache}2")
    err = capsys.readouterr().err.strip()
    assert code == 2 and "need 27.6 KB on disk, 5.0 KB is free" in err, err
    assert len(err.splitlines()) == 1 and not (tmp_path / "run").exists()
    assert not list(Path(f"{cache}2").iterdir())  # refused before the file was written
    with pytest.raises(UserError, match="give \\(train, val\\[, test\\]\\) Datasets"):
        neuroprune.prune(Net, data=TensorDataset(torch.randn(60, 6), torch.arange(60) % 3),
                         progress=False, out=tmp_path / "x",
                         config={"data": {"loader": {"max_bytes": 100}}})


def test_a_file_of_unknown_length_is_refused_as_it_outgrows_the_disk(tmp_path, monkeypatch):
    import shutil

    from neuroprune.data.mapped import DiskFile
    free = shutil.disk_usage(tmp_path)._replace(free=1000)
    monkeypatch.setattr("neuroprune.data.mapped.shutil.disk_usage", lambda _: free)
    file = DiskFile(tmp_path, rows=None)  # a loader without a length
    file.write(torch.zeros(2, 100))  # 800 bytes
    with pytest.raises(UserError, match="the inputs need 1.6 KB on disk, 1.0 KB is free"):
        file.write(torch.zeros(2, 100))
    assert not list(tmp_path.iterdir())
