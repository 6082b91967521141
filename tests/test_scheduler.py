"""An existing scheduler: joined over TCP, versions checked, clear errors when it is not there."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request

import pytest

from pipeline import cli, cluster, config

from support import free_port


def versions(python="3.11.7", **packages):
    base = {name: "1.0" for name in cluster.CHECKED}
    return {"host": {"python": python}, "packages": {**base, **packages}}


def test_matching_versions_pass():
    assert cluster.mismatches({"client": versions(), "scheduler": versions(), "workers": {"w1": versions()}}) == []


def test_mismatches_name_both_sides():
    found = cluster.mismatches({
        "client": versions(), "scheduler": versions(dask="0.9"),
        "workers": {"tcp://w1:1": versions(python="3.12.1"), "tcp://w2:1": versions(pandas="2.0")},
    })
    assert "dask 1.0 here, 0.9 on scheduler" in found
    assert "python 3.11 here, 3.12 on worker tcp://w1:1" in found
    assert "pandas 1.0 here, 2.0 on worker tcp://w2:1" in found


def test_scheduler_packages_beyond_dask_do_not_matter():
    # A scheduler runs no tasks: only dask and distributed must match there.
    assert cluster.mismatches({"client": versions(), "scheduler": versions(pandas="2.0"), "workers": {}}) == []


@pytest.fixture
def scheduler():
    """A real `dask scheduler` and `dask worker` from this environment, as a user would start them."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    dask = [sys.executable, "-m", "dask"]
    procs = [subprocess.Popen([*dask, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--dashboard-address", ":0"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    procs.append(subprocess.Popen([*dask, "worker", address, "--nworkers", "2", "--nthreads", "1"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    yield address
    for p in reversed(procs):
        p.terminate()
        p.wait(timeout=30)


@pytest.mark.cluster
def test_run_on_an_existing_scheduler(scheduler, posts, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["run", "--scheduler", scheduler, "-i", posts, "-o", str(out), "--no-progress"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["counts"]["questions"] > 1000


@pytest.mark.cluster
def test_no_scheduler_is_a_clear_error(tmp_path, posts, capsys):
    address = f"tcp://127.0.0.1:{free_port()}"
    started = time.time()
    code = cli.main(["run", "--scheduler", address, "-i", posts, "-o", str(tmp_path / "r"),
                     "--no-progress", "--config", str(_config(tmp_path, "connect-timeout: 3s"))])
    assert code == 2 and time.time() - started < 30
    assert f"cannot reach the scheduler at {address}" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def _config(tmp_path, line: str):
    path = tmp_path / "c.yaml"
    path.write_text(f"posts-pipeline:\n  cluster:\n    {line}\n")
    return path


@pytest.mark.cluster
def test_embedded_cluster_serves_its_dashboard():
    local = {"n-workers": 1, "threads-per-worker": 1, "memory-limit": "1GiB", "dashboard-address": ":0",
             "start-method": "auto", "processes": True}
    with cluster.connect({**config.get("cluster"), "local": local, "connect-timeout": "30s"}) as client:
        with urllib.request.urlopen(client.dashboard_link, timeout=30) as page:
            assert page.status == 200 and b"Dask" in page.read()
