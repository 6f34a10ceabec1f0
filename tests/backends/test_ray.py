"""Real Ray on this CPU machine: a two-node cluster with logical GPUs."""

import threading

import pytest
import torch
import yaml

ray = pytest.importorskip("ray")

from ray.cluster_utils import Cluster  # noqa: E402

from neuroprune.backends.ray_actors import RayEvaluator, shard_bounds  # noqa: E402
from neuroprune.config import load_config  # noqa: E402
from neuroprune.engine import EvalTask, StackedTrainer, TrainSettings, init_state  # noqa: E402

from helpers import REPO, mask_search, population, run_without  # noqa: E402


@pytest.fixture(scope="module")
def cluster():
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "num_gpus": 1})
    c.add_node(num_cpus=1, num_gpus=1)
    ray.init(address=c.address, log_to_driver=False)
    yield c
    ray.shutdown()
    c.shutdown()


def _population(data, n=6):
    spec, layout, bits = population(data, widths=(32,), n=n)
    return spec, layout, bits, init_state(spec, 0)


def test_shards_are_contiguous_and_cover_everything():
    assert shard_bounds(7, 3) == [(0, 2), (2, 4), (4, 7)]
    assert shard_bounds(2, 4) == [(0, 1), (1, 2)]


def test_shards_land_on_both_nodes_and_equal_the_local_backend(cluster, digits):
    spec, layout, bits, init = _population(digits)
    settings = TrainSettings(lr=0.05)
    task = EvalTask(masks=bits, init=init, epochs=2, data_seed=3)
    local = StackedTrainer(spec, digits, settings, layout).run(task)
    with RayEvaluator(spec, digits, settings, layout) as ev:
        assert len(ev.actors) == 2  # one per (logical) GPU
        nodes = {p["node"] for p in ev.placement()}
        assert len(nodes) == 2
        res = ev.evaluate(task)
    assert len(res) == len(bits)
    torch.testing.assert_close(res.metrics["val_loss"], local.metrics["val_loss"], rtol=1e-5,
                               atol=1e-7)


def test_disk_backed_data_reaches_the_actors_as_its_path(cluster, digits, tmp_path):
    from torch.utils.data import TensorDataset

    from neuroprune.backends.ray_actors import serialized_bytes
    from neuroprune.data import DataConfig
    from neuroprune.data.streamed import from_datasets

    sets = [TensorDataset(getattr(digits, f"{s}_x"), getattr(digits, f"{s}_y"))
            for s in ("train", "val", "test")]
    data = from_datasets(*sets, cfg=DataConfig(standardise=False, loader={
        "cache": "disk", "cache_dir": str(tmp_path)}))
    assert data.on_disk and serialized_bytes(data) < digits.train_x.numel()  # labels only
    spec, layout, bits, init = _population(digits)
    task = EvalTask(masks=bits, init=init, epochs=1, data_seed=3)
    local = StackedTrainer(spec, digits, TrainSettings(lr=0.05), layout).run(task)
    with RayEvaluator(spec, data, TrainSettings(lr=0.05), layout) as ev:
        res = ev.evaluate(task)
    torch.testing.assert_close(res.metrics["val_loss"], local.metrics["val_loss"], rtol=1e-5,
                               atol=1e-7)


def test_shards_carry_only_themselves_and_return_masks_weights_and_extras(cluster, digits):
    from neuroprune.backends.ray_actors import serialized_bytes, shard_payloads
    from neuroprune.engine import LearningCurve
    from neuroprune.methods.dst import DSTParams
    from neuroprune.methods.rigl import RigLUpdater

    spec, layout, bits, init = _population(digits, n=6)
    settings = TrainSettings(lr=0.05)
    # RigL changes the masks while training: they come back (bit-packed) with the weights
    task = EvalTask(masks=bits, init=init, epochs=2, data_seed=3, keep_weights=True,
                    hooks=(RigLUpdater(DSTParams(update_interval=5)), LearningCurve()))
    local = StackedTrainer(spec, digits, settings, layout).run(task)
    with RayEvaluator(spec, digits, settings, layout, measure_traffic=True) as ev:
        res = ev.evaluate(task)
    assert local.masks is not None and not torch.equal(local.masks, bits)
    assert torch.equal(res.masks, local.masks)
    torch.testing.assert_close(res.weights, local.weights, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(res.metrics["val_loss"], local.metrics["val_loss"], rtol=1e-5,
                               atol=1e-7)
    assert [[r["epoch"] for r in c] for c in res.extras["curve"]] == [[1, 2]] * 6
    shared, payloads = shard_payloads(task, 2)
    # what the evaluator counted is what these weigh (to a few bytes of pickle framing)
    sent = serialized_bytes(shared) + sum(map(serialized_bytes, payloads))
    assert abs(ev.traffic[0]["sent"] - sent) < 64
    packed = 3 * -(-bits.shape[1] // 8)  # each shard: its 3 masks, 1 bit per connection
    assert all(packed < serialized_bytes(p) < packed + 2000 for p in payloads)


def test_the_initial_state_goes_to_the_object_store_once_while_it_stays_the_same(cluster,
                                                                                 digits):
    from neuroprune.backends.ray_actors import serialized_bytes
    from neuroprune.engine.wire import shared_part

    spec, layout, bits, init = _population(digits, n=4)
    settings = TrainSettings(lr=0.05)
    local = StackedTrainer(spec, digits, settings, layout).run(
        EvalTask(masks=bits, init=init, epochs=1, data_seed=3))
    other = init_state(spec, 1)
    with RayEvaluator(spec, digits, settings, layout, measure_traffic=True) as ev:
        # a rebuilt but equal initial state (a search's next generation) is not sent again
        results = [ev.evaluate(EvalTask(masks=bits, init=state, epochs=1, data_seed=3))
                   for state in (init, {k: v.clone() for k, v in init.items()}, other)]
    shared = shared_part(EvalTask(masks=bits, init=init))
    weight = serialized_bytes(shared) - serialized_bytes({**shared, "init": None})
    assert weight > sum(v.numel() * 4 for v in init.values())
    first, again, changed = (t["sent"] for t in ev.traffic)
    # the rest of a task (its counters and ids) may pickle a byte or two longer or shorter
    # from one generation to the next; the initial state's kilobytes go once
    assert abs((first - again) - weight) <= 16 and abs(changed - first) <= 16
    for res in results[:2]:
        torch.testing.assert_close(res.metrics["val_loss"], local.metrics["val_loss"],
                                   rtol=1e-5, atol=1e-7)
    assert not torch.allclose(results[2].metrics["val_loss"], local.metrics["val_loss"])


def test_actor_killed_mid_generation_is_replaced_without_loss(cluster, digits):
    spec, layout, bits, init = _population(digits, n=8)
    settings = TrainSettings(lr=0.05)
    epochs = 80  # seconds of work, so that the kill lands mid-generation
    task = EvalTask(masks=bits, init=init, epochs=epochs, data_seed=1)
    local = StackedTrainer(spec, digits, settings, layout).run(task)
    with RayEvaluator(spec, digits, settings, layout) as ev:
        ev.placement()  # actors up
        victim = ev.actors[0]
        timer = threading.Timer(0.3, lambda: ray.kill(victim, no_restart=True))
        timer.start()
        res = ev.evaluate(task)
        timer.join()
        assert victim not in ev.actors
    assert len(res) == 8
    torch.testing.assert_close(res.metrics["val_loss"], local.metrics["val_loss"], rtol=1e-5,
                               atol=1e-7)


def test_search_on_ray_backend_gives_the_local_results(cluster, tmp_path):
    over = ["method.population=4", "method.generations=2", "method.search_epochs=1",
            "training.epochs=2", "model.widths=[24]", "device=cpu"]
    quick = REPO / "configs" / "quickstart.yaml"
    a = mask_search(load_config(quick, over)).run(tmp_path / "local", progress=False)
    b = mask_search(load_config(quick, over + ["backend=ray"])).run(tmp_path / "ray",
                                                                  progress=False)
    assert a["test_accuracy"] == pytest.approx(b["test_accuracy"], abs=1e-9)
    rows_a = (tmp_path / "local" / "results.csv").read_text().splitlines()
    rows_b = (tmp_path / "ray" / "results.csv").read_text().splitlines()
    assert len(rows_a) == len(rows_b)
    keys = [tuple(r.split(",")[:2]) for r in rows_b[1:]]
    assert len(keys) == len(set(keys))  # no evaluation counted twice


def test_ray_tune_trials_all_land_in_the_optuna_storage(cluster, tmp_path):
    import optuna
    from optuna.trial import TrialState

    from neuroprune.tuning.ray_tune import RayTuner
    from neuroprune.tuning.storage import open_storage
    cfg = load_config(REPO / "configs" / "tune_quickstart.yaml",
                      ["method.population=4", "method.generations=2", "training.epochs=2",
                       "model.widths=[16]", "tune.pruner=none", "backend=ray",
                       "ray.max_concurrent_trials=2", "logging=[tensorboard]"])
    summary = RayTuner(cfg, tmp_path / "rt", n_trials=3).run(progress=False)
    assert summary["trials"]["complete"] == 3
    study = optuna.load_study(study_name="tune_quickstart",
                              storage=open_storage(str(tmp_path / "rt" / "optuna.journal")))
    done = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(done) == 3 and all(t.user_attrs.get("ray_trial_id") for t in done)
    for t in done:  # each Ray Tune trial logs into its own trial folder
        assert list((tmp_path / "rt" / "trials" / f"trial_{t.number:04d}" / "tb").glob(
            "events.out.tfevents.*"))
    # a finished experiment is not "restored": a second call adds its trials to the study
    RayTuner(cfg, tmp_path / "rt", n_trials=1).run(progress=False)
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 4


def test_ray_tune_trials_run_batches_of_optuna_trials(cluster, tmp_path):
    from optuna.trial import TrialState

    from neuroprune.tuning.ray_tune import RayTuner
    cfg = load_config(REPO / "configs" / "tune_quickstart.yaml",
                      ["method.population=4", "method.generations=2", "training.epochs=1",
                       "model.widths=[16]", "tune.pruner=none", "backend=ray",
                       "ray.max_concurrent_trials=2"])
    tuner = RayTuner(cfg, tmp_path / "rb", n_trials=4, batch=2)
    summary = tuner.run(progress=False)
    assert summary["trials"]["complete"] == 4
    import optuna
    from neuroprune.tuning.storage import open_storage
    study = optuna.load_study(study_name="tune_quickstart",
                              storage=open_storage(str(tmp_path / "rb" / "optuna.journal")))
    done = study.get_trials(states=(TrialState.COMPLETE,))
    ray_trials = {t.user_attrs["ray_trial_id"] for t in done}
    assert len(ray_trials) == 2  # two Ray Tune trials, each a batch of two Optuna trials


def test_no_completed_trial_names_the_first_error_in_one_line():
    from ray.exceptions import RayTaskError
    from ray.tune.error import TuneError

    from neuroprune.errors import DataError
    from neuroprune.tuning.ray_tune import first_error
    wrapped = RayTaskError("ray_trial", "Traceback ...\nDataError: x", DataError("no data"))
    e = first_error([wrapped, RuntimeError("later")], 2)
    assert str(e) == "no trial completed; the first error (2 trial(s) failed): DataError: no data"
    assert e.exit_code == 2  # bad input stays bad input
    e = first_error([TuneError("Traceback (most recent call last):\n  File x\nKeyError: 'w'\n")],
                    1)
    assert str(e).endswith("failed): KeyError: 'w'") and e.exit_code == 1
    e = first_error([], 3)
    assert "3 failed" in str(e) and e.exit_code == 1


def test_missing_ray_gives_an_install_hint(tmp_path):
    proc = run_without("ray", "run", str(REPO / "configs" / "quickstart.yaml"), "--backend",
                       "ray", "--out", str(tmp_path / "o"))
    assert proc.returncode == 2
    assert "pip install 'neuroprune[ray]'" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()


def test_ray_cluster_yaml_passes_rays_own_schema():
    import jsonschema
    from ray.autoscaler._private.util import prepare_config, validate_config
    config = yaml.safe_load((REPO / "ray_cluster.yaml").read_text())
    validate_config(prepare_config(config))  # what `ray up` checks; raises on a violation
    assert config["available_node_types"]["gpu_worker"]["max_workers"] >= 1
    config["available_node_types"]["head"]["bogus"] = 1  # the check can fail
    with pytest.raises(jsonschema.ValidationError):
        validate_config(prepare_config(config))


def _large_data_benchmark():
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        "tune_large_data", REPO / "benchmarks" / "tune_large_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ray_tune_trials_get_a_dataset_too_large_to_ship_inside_a_trial(cluster, tmp_path):
    from neuroprune.tuning.ray_tune import RayTuner
    bench = _large_data_benchmark()  # benchmarks/tune_large_data.py: 68,000 images
    bench.write_cifar_shaped(tmp_path / "cifar", 16320)
    tuner = RayTuner(bench.tune_config(tmp_path / "cifar"), tmp_path / "t")
    data = tuner.bench.data
    held = sum(t.numel() * t.element_size() for t in (data.train_x, data.val_x, data.test_x))
    assert held > 200 * 10**6  # twice the 95 MiB Ray refuses inside a trial's function
    assert tuner.run(progress=False)["trials"]["complete"] == 1


def test_ray_tuning_that_completes_no_trial_fails_with_the_first_error(cluster, tmp_path,
                                                                      capsys):
    from neuroprune.cli import main
    tree = yaml.safe_load((REPO / "configs" / "tune_quickstart.yaml").read_text())
    # every trial reads a dataset that is not there (the study's own data loads)
    tree["tune"]["params"] = {"data.dataset": {"type": "categorical", "choices": ["mnist"]}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(tree))
    code = main(["tune", str(tmp_path / "c.yaml"), "--backend", "ray", "--n-trials", "1",
                 "--set", "ray.max_failures=0", "--out", str(tmp_path / "t"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2  # the trials' error was bad input
    assert err[-1] == ("neuroprune: error: no trial completed; the first error (1 trial(s) "
                       "failed): DataError: dataset mnist needs data.root: a folder with its "
                       "files (set data.download=true to fetch them there through torchvision)")


def test_a_tune_out_the_workers_cannot_write_is_one_line_before_the_study(cluster, tmp_path,
                                                                         capsys):
    from neuroprune.cli import main
    (tmp_path / "file").write_text("not a folder")
    out = tmp_path / "file" / "tune"  # no node can make it: a part of the path is a file
    code = main(["tune", str(REPO / "configs" / "tune_quickstart.yaml"), "--backend", "ray",
                 "--n-trials", "1", "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith(f"neuroprune: error: {out} cannot be written on every node of "
                             f"the Ray cluster (") and "Not a directory" in err[0], err
    assert err[0].endswith("give --out a folder every node can write, e.g. a shared file "
                           "system mounted at the same path")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]  # no study, no journal


def test_a_ray_client_run_watches_the_client_server_it_talks_to(monkeypatch):
    from neuroprune.backends.ray_session import watched_address
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert watched_address("ray://head:10001") == "ray://head:10001"
    monkeypatch.setenv("RAY_ADDRESS", "ray://head:10002")
    assert watched_address(None) == watched_address("auto") == "ray://head:10002"


def test_a_client_servers_failed_start_names_its_cause_and_is_tried_again():
    from neuroprune.backends.ray_session import _reason, _transient_client_failure
    server_said = ConnectionAbortedError(
        "Initialization failure from server:\nTraceback (most recent call last):\n"
        "  File \"proxier.py\", line 780, in Datapath\n"
        "RuntimeError: Proxy failed to Connect to backend! Check `ray_client_server.err`")
    assert _reason(server_said) == ("Initialization failure from server: RuntimeError: Proxy "
                                    "failed to Connect to backend! Check "
                                    "`ray_client_server.err`")
    assert _transient_client_failure(server_said)
    refused = ConnectionError("ray client connection timeout")
    assert _reason(refused) == "ray client connection timeout"
    assert not _transient_client_failure(refused)


def test_a_ray_tune_at_a_uri_sends_each_trial_there(cluster, tmp_path, monkeypatch, capsys):
    """``tune --out URI`` on Ray: the trials (on either node) send their folders and
    artifacts to the URI, Ray Tune keeps its experiment there, the study is on a server."""
    from servers import postgres_database

    from neuroprune.cli import main
    remote = tmp_path / "bucket" / "tune"
    uri = f"file://{remote}"
    monkeypatch.chdir(tmp_path)
    args = ["tune", str(REPO / "configs" / "tune_quickstart.yaml"), "--backend", "ray",
            "--set", "method.population=4", "--set", "method.generations=2", "--set",
            "training.epochs=1", "--set", "model.widths=[16]", "--set", "tune.pruner=none",
            "--set", "ray.max_concurrent_trials=2", "--n-trials", "2", "--out", uri,
            "--no-progress"]
    # a journal file at a URI cannot be shared by trials on several nodes
    assert main(args) == 2
    assert "needs --storage on a database server" in capsys.readouterr().err
    assert not remote.exists()
    with postgres_database() as url:
        assert main(args + ["--storage", url]) == 0, capsys.readouterr().err
        assert "2 complete" in capsys.readouterr().out
        assert len(list((remote / "trials").rglob("summary.json"))) == 2
        assert len(list((remote / "trials").rglob("best_mask.safetensors"))) == 2
        assert any(p.is_file() for p in (remote / "artifacts").rglob("*"))
        assert list((remote / "ray_results").glob("tune_quickstart-*"))
