"""A real two-node Ray cluster on this machine, started with `ray start` as a user would: a head
and a second node with a logical GPU, each with its own temp dir and ports, stopped by PID.
Jobs are submitted with `ray job submit` as the README writes them.

Select with ``-m ray_cluster``.
"""

import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

import pytest

pytest.importorskip("ray")
pytest.importorskip("aiohttp", reason="ray job submit needs ray[default]")

from neuroprune.cli import main  # noqa: E402

from helpers import REPO  # noqa: E402
from servers import free_port  # noqa: E402

pytestmark = pytest.mark.ray_cluster

TINY = ["--set", "method.population=4", "--set", "method.generations=2", "--set",
        "method.search_epochs=1", "--set", "training.epochs=1", "--set", "model.widths=[16]",
        "--set", "sparsity.latency_repeats=0", "--device", "cpu", "--no-progress"]


def _ports(prefix: str) -> list[str]:
    names = ["node-manager-port", "object-manager-port", "dashboard-agent-listen-port",
             "dashboard-agent-grpc-port", "metrics-export-port", "runtime-env-agent-port"]
    return [f"--{n}={free_port()}" for n in names]


def _ray_start(args: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen([shutil.which("ray"), "start", "--block", "--disable-usage-stats",
                             *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def _descendants(pid: int) -> list[int]:
    parents = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    parents.setdefault(int(f.read().rsplit(")", 1)[1].split()[1]), []).append(
                        int(d))
            except (OSError, IndexError, ValueError):
                pass
    found, todo = [], [pid]
    while todo:
        kids = parents.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def _stop(procs: list[subprocess.Popen]) -> None:
    """Every process these `ray start --block` started, ended by PID."""
    victims = [v for p in procs for v in [p.pid, *_descendants(p.pid)]]
    for sig in (15, 9):
        for pid in victims:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        if sig == 15:
            time.sleep(5)
    for p in procs:
        p.wait(timeout=30)


@pytest.fixture(scope="module")
def cluster():
    base = tempfile.mkdtemp(prefix="rcl", dir="/tmp")
    # Ray's token authentication, on as the README recommends, with a token of this test's
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "RAY_ADDRESS": "",
           "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": uuid.uuid4().hex + uuid.uuid4().hex}
    port, dash, client = free_port(), free_port(), free_port()
    head = _ray_start(["--head", f"--port={port}", f"--temp-dir={base}/h", "--num-cpus=1",
                       "--num-gpus=0", "--include-dashboard=true", "--dashboard-host=127.0.0.1",
                       f"--dashboard-port={dash}", f"--ray-client-server-port={client}",
                       *_ports("h")], env)
    procs = [head]
    try:
        deadline = time.time() + 120
        url = f"http://127.0.0.1:{dash}"
        while subprocess.run([shutil.which("ray"), "job", "list", "--address", url],
                             env=env, capture_output=True).returncode != 0:
            assert head.poll() is None and time.time() < deadline, "the head did not start"
            time.sleep(1)
        node = _ray_start([f"--address=127.0.0.1:{port}", f"--temp-dir={base}/n",
                           "--num-cpus=1", "--num-gpus=1", *_ports("n")], env)
        procs.append(node)
        gcs = f"127.0.0.1:{port}"
        while '"GPU"' not in subprocess.run(
                [sys.executable, "-c", "import ray, json; ray.init(address='" + gcs + "'); "
                 "print(json.dumps(ray.cluster_resources()))"], env=env, capture_output=True,
                text=True).stdout:
            assert node.poll() is None and time.time() < deadline, "the node did not join"
            time.sleep(1)
        yield {"gcs": gcs, "url": url, "env": env, "procs": procs}
    finally:
        _stop(procs)
        shutil.rmtree(base, ignore_errors=True)


def _submit(cluster, *args, timeout=300):
    cmd = [shutil.which("ray"), "job", "submit", "--address", cluster["url"], "--working-dir",
           ".", "--", "python", *args]
    return subprocess.run(cmd, cwd=REPO, env=cluster["env"], capture_output=True, text=True,
                          timeout=timeout)


def test_a_kstarts_job_joins_the_cluster_and_equals_the_local_backend(cluster, tmp_path):
    from safetensors.torch import load_file

    out = tmp_path / "job"
    job = _submit(cluster, "searches/kstarts.py", "configs/quickstart.yaml", *TINY,
                  "--backend", "ray", "--out", str(out))
    assert job.returncode == 0, job.stdout[-3000:] + job.stderr[-2000:]
    assert f"run directory: {out}" in job.stdout  # absolute, where the user finds it
    assert "starting a local Ray" not in job.stdout + job.stderr  # it joined the cluster
    local = tmp_path / "local"
    assert main(["run", str(REPO / "configs" / "quickstart.yaml"), *TINY, "--out",
                 str(local)]) == 0
    a, b = (json.loads((d / "summary.json").read_text()) for d in (local, out))
    assert b["backend"] == "ray"
    for k in ("test_accuracy", "val_accuracy", "sparsity", "kept_weights"):
        assert a[k] == pytest.approx(b[k], abs=1e-9), k
    ma, mb = (load_file(str(d / "best_mask.safetensors")) for d in (local, out))
    assert all((ma[k] == mb[k]).all() for k in ma if k.endswith("mask"))


def test_a_comparison_job_joins_the_cluster_and_equals_the_local_backend(cluster, tmp_path):
    small = ["--set", "comparison.sparsities=[0.9]", "--set", "comparison.seeds=[0]",
             "--set", "comparison.methods=[random, magnitude]", "--set", "training.epochs=1",
             "--set", "model.widths=[16]", "--set", "sparsity.latency_repeats=0",
             "--device", "cpu", "--no-progress"]
    out = tmp_path / "job"
    job = _submit(cluster, "searches/compare.py", "configs/compare_digits.yaml", *small,
                  "--backend", "ray", "--out", str(out))
    assert job.returncode == 0, job.stdout[-3000:] + job.stderr[-2000:]
    assert "starting a local Ray" not in job.stdout + job.stderr
    local = tmp_path / "local"
    assert main(["run", str(REPO / "configs" / "compare_digits.yaml"), *small, "--out",
                 str(local)]) == 0
    rows = [{(r["method"], r["seed"]): float(r["test_accuracy"])
             for r in csv.DictReader((d / "results.csv").open())} for d in (local, out)]
    assert len(rows[0]) == 2 and rows[0] == pytest.approx(rows[1], abs=1e-9)


def test_an_unreachable_address_is_one_line_within_seconds(tmp_path):
    out = tmp_path / "never"
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-m", "neuroprune", "run", "quickstart",
                           "--address", "127.0.0.1:1", "--out", str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and time.time() - t0 < 30
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and "cannot reach the Ray cluster at 127.0.0.1:1" in err[0], err
    assert not out.exists()


def test_more_gpus_per_worker_than_the_cluster_has_is_refused(cluster, tmp_path):
    out = tmp_path / "gpus"
    proc = subprocess.run([sys.executable, "-m", "neuroprune", "run", "quickstart", *TINY,
                           "--address", cluster["gcs"], "--set", "ray.gpus_per_worker=2",
                           "--out", str(out)], cwd=REPO, env=cluster["env"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "ray.gpus_per_worker=2 but the Ray cluster has 1 GPUs" in proc.stderr
    assert not out.exists()


def test_a_tune_job_completes_every_trial_in_postgresql_and_exports_from_the_head(cluster,
                                                                                 tmp_path):
    import optuna
    from optuna.trial import TrialState

    from servers import postgres_database

    out = tmp_path / "tune"
    with postgres_database() as url:
        job = _submit(cluster, "searches/tune.py", "configs/tune_quickstart.yaml", *TINY,
                      "--set", "tune.pruner=none", "--n-trials", "2", "--backend", "ray",
                      "--storage", url, "--out", str(out))
        assert job.returncode == 0, job.stdout[-3000:] + job.stderr[-2000:]
        study = optuna.load_study(study_name="tune_quickstart", storage=url)
        assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
        for t in study.trials:  # every trial's folder under the tune --out
            assert t.user_attrs["run_dir"] == str(out / "trials" / f"trial_{t.number:04d}")
        mask = tmp_path / "t1.safetensors"
        assert main(["export", "--storage", url, "--study", "tune_quickstart", "--trial",
                     "1", "--out", str(mask)]) == 0
        assert mask.stat().st_size > 0


def test_ray_job_stop_interrupts_and_resume_finishes(cluster, tmp_path):
    from neuroprune.rundir import RunDir

    out = tmp_path / "stopped"
    slow = [a.replace("method.search_epochs=1", "method.search_epochs=300")
            .replace("method.generations=2", "method.generations=8") for a in TINY]
    cmd = [shutil.which("ray"), "job", "submit", "--no-wait", "--address", cluster["url"],
           "--working-dir", ".", "--", "python", "searches/kstarts.py",
           "configs/quickstart.yaml", *slow, "--backend", "ray", "--out", str(out)]
    sub = subprocess.run(cmd, cwd=REPO, env=cluster["env"], capture_output=True, text=True,
                         timeout=120)
    assert sub.returncode == 0, sub.stderr
    job_id = next(w for w in sub.stdout.replace("'", " ").split() if w.startswith("raysubmit_"))
    deadline = time.time() + 240
    while not (out / "checkpoints" / "gen_0000.pt").exists():
        assert time.time() < deadline, "the job committed no generation"
        time.sleep(0.5)
    stop = subprocess.run([shutil.which("ray"), "job", "stop", "--address", cluster["url"],
                           job_id], env=cluster["env"], capture_output=True, text=True,
                          timeout=120)
    assert stop.returncode == 0, stop.stderr
    logs = subprocess.run([shutil.which("ray"), "job", "logs", "--address", cluster["url"],
                           job_id], env=cluster["env"], capture_output=True, text=True,
                          timeout=60).stdout
    assert f"neuroprune resume {out}" in logs, logs[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    config = out / "config.yaml"
    config.write_text(config.read_text().replace("search_epochs: 300", "search_epochs: 1"))
    assert main(["resume", str(out), "--no-progress"]) == 0
    assert RunDir(out).is_complete()
