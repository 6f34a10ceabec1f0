"""A real two-node Ray cluster on this machine, started with `ray start` as a user would: a head
and a second node with a logical GPU, each with its own temp dir and ports, stopped by PID.
Jobs are submitted with `ray job submit` as docs/cluster.md writes them.

Select with ``-m ray_cluster``.
"""

import contextlib
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import pytest

pytest.importorskip("ray")
pytest.importorskip("aiohttp", reason="ray job submit needs ray[default]")

from neuroprune.cli import main  # noqa: E402

from helpers import REPO, assert_same_run  # noqa: E402
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


def _crash(proc: subprocess.Popen) -> None:
    """A node's `ray start --block` and every process it started killed at once (SIGKILL),
    as a node whose machine fails."""
    for pid in [proc.pid, *_descendants(proc.pid)]:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
    proc.wait(timeout=30)


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


@contextlib.contextmanager
def _two_nodes():
    """A head (no GPU) and a node with one logical GPU, each its own `ray start --block`;
    yields their addresses, the environment to reach them, and the processes by node."""
    base = tempfile.mkdtemp(prefix="rcl", dir="/tmp")
    # Ray's token authentication, on as docs/cluster.md recommends, with a token of this test's
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "RAY_ADDRESS": "",
           "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": uuid.uuid4().hex + uuid.uuid4().hex,
           # a client's driver server starts slowly on a loaded 2-core head
           "RAY_CLIENT_SERVER_CHECK_CHANNEL_TIMEOUT_S": "120"}
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
        yield {"gcs": gcs, "url": url, "env": env, "procs": procs, "head": head,
               "node": node, "client": f"ray://127.0.0.1:{client}"}
    finally:
        _stop(procs)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster():
    with _two_nodes() as c:
        yield c


def _submit(cluster, *args, timeout=300):
    cmd = [shutil.which("ray"), "job", "submit", "--address", cluster["url"], "--working-dir",
           ".", "--", "python", *args]
    return subprocess.run(cmd, cwd=REPO, env=cluster["env"], capture_output=True, text=True,
                          timeout=timeout)


def test_a_kstarts_job_joins_the_cluster_and_equals_the_local_backend(cluster, tmp_path):
    out = tmp_path / "job"
    job = _submit(cluster, "searches/kstarts.py", "configs/quickstart.yaml", *TINY,
                  "--backend", "ray", "--out", str(out))
    assert job.returncode == 0, job.stdout[-3000:] + job.stderr[-2000:]
    assert f"run directory: {out}" in job.stdout  # absolute, where the user finds it
    assert "starting a local Ray" not in job.stdout + job.stderr  # it joined the cluster
    local = tmp_path / "local"
    assert main(["run", str(REPO / "configs" / "quickstart.yaml"), *TINY, "--out",
                 str(local)]) == 0
    assert assert_same_run(local, out)[1]["backend"] == "ray"


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


def _wait_for(path, proc=None, timeout=240):
    deadline = time.time() + timeout
    while not path.exists():
        assert proc is None or proc.poll() is None, "the run ended before " + str(path)
        assert time.time() < deadline, f"no {path} within {timeout} s"
        time.sleep(0.3)


def test_a_lost_gpu_node_then_a_lost_head_each_end_in_one_line_and_resume_equals_a_run(
        tmp_path):
    """The node holding the only GPU dies mid-generation: the shard waits ray.lost_node_wait
    for a node to join, then the job fails in one line naming the node and the resume
    command. That resume, through a Ray client, loses the head mid-generation: one line
    saying the cluster went away. A last resume finishes what an uninterrupted run gives."""
    from neuroprune.rundir import RunDir

    out = tmp_path / "lost"
    # generations of seconds each, so that a kill after the first lands inside the run
    slow = [a.replace("method.search_epochs=1", "method.search_epochs=300")
            .replace("method.generations=2", "method.generations=3") for a in TINY]
    with _two_nodes() as c:
        sub = subprocess.run([shutil.which("ray"), "job", "submit", "--no-wait", "--address",
                              c["url"], "--working-dir", ".", "--", "python",
                              "searches/kstarts.py", "configs/quickstart.yaml", *slow,
                              "--backend", "ray", "--set", "ray.lost_node_wait=3", "--out",
                              str(out)], cwd=REPO, env=c["env"], capture_output=True,
                             text=True, timeout=120)
        assert sub.returncode == 0, sub.stderr
        job = next(w for w in sub.stdout.replace("'", " ").split()
                   if w.startswith("raysubmit_"))
        _wait_for(out / "checkpoints" / "gen_0000.pt")
        _crash(c["node"])  # the only GPU's node, mid-generation
        deadline, status = time.time() + 240, ""
        while not any(w in status for w in ("failed", "succeeded", "FAILED", "SUCCEEDED")):
            assert time.time() < deadline, status
            time.sleep(2)
            status = subprocess.run([shutil.which("ray"), "job", "status", "--address",
                                     c["url"], job], env=c["env"], capture_output=True,
                                    text=True, timeout=60).stdout
        logs = subprocess.run([shutil.which("ray"), "job", "logs", "--address", c["url"], job],
                              env=c["env"], capture_output=True, text=True, timeout=60).stdout
        assert "failed" in status.lower(), logs[-2000:]
        errors = [ln for ln in logs.splitlines() if ln.startswith("neuroprune: error:")]
        assert len(errors) == 1 and "Traceback" not in logs, logs[-3000:]
        assert re.fullmatch(r"neuroprune: error: the Ray node [0-9.]+ \(node [0-9a-f]{12}\) "
                            r"was lost and no node left has 1 GPU for its shard \(waited 3 s\); "
                            r"finished work is saved\. Continue with: neuroprune resume "
                            + re.escape(str(out)), errors[0]), errors[0]
        assert not RunDir(out).is_complete()

        # the same command through a Ray client; the head (CPUs only now) goes away
        env = {**c["env"], "RAY_ADDRESS": c["client"]}
        driver = subprocess.Popen([sys.executable, "-m", "neuroprune", "resume", str(out),
                                   "--no-progress"], cwd=REPO, env=env, text=True,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        err: list[str] = []
        reader = threading.Thread(target=lambda: err.extend(driver.stderr), daemon=True)
        reader.start()
        try:
            deadline = time.time() + 180
            while not any(ln.startswith("engine:") for ln in err):  # its actors started
                assert driver.poll() is None and time.time() < deadline, "".join(err)
                time.sleep(0.3)
            _crash(c["head"])
            driver.wait(timeout=120)
            reader.join(timeout=10)
        finally:
            driver.kill()
        assert driver.returncode == 1, "".join(err[-30:])
        mine = [ln.rstrip() for ln in err if ln.startswith("neuroprune: error:")]
        assert mine == [f"neuroprune: error: the Ray cluster at {c['client']} went away (head "
                        f"node lost); finished generations are saved. Continue with: "
                        f"neuroprune resume {out}"], "".join(err[-30:])
        assert not RunDir(out).is_complete()
    assert main(["run", str(out / "config.yaml"), "--resume", str(out), "--backend", "local",
                 "--no-progress"]) == 0
    local = tmp_path / "local"
    assert main(["run", str(REPO / "configs" / "quickstart.yaml"), *slow, "--out",
                 str(local)]) == 0
    assert_same_run(local, out)
