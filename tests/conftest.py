"""Shared fixtures: generated dumps, a real S3 API server (moto's, over HTTP), config isolation, and
kubectl for the kind tiers (tests/kind, tests/kubernetes)."""

from __future__ import annotations

import copy
import os
import shutil
from pathlib import Path

import dask.config
import distributed  # noqa: F401  (its config defaults must be in place before tests snapshot the config)
import pytest

from pipeline.generate import Options, generate

from support import Kubectl, S3Server

REPO = Path(__file__).resolve().parents[1]
TOOLS_BIN = REPO / ".tools" / "bin"


@pytest.fixture(autouse=True)
def isolated_config():
    """Each test starts from the package defaults: config.load changes dask.config globally."""
    saved = copy.deepcopy(dask.config.config)
    yield
    dask.config.config.clear()
    dask.config.config.update(saved)


@pytest.fixture(scope="session")
def posts(tmp_path_factory) -> str:
    """A small generated dump with every quirk, a few malformed lines among them."""
    path = str(tmp_path_factory.mktemp("dump") / "Posts.xml")
    generate(path, Options(size=10_000_000, seed=7, malformed_rate=0.0005))
    return path


@pytest.fixture(scope="session")
def s3_server():
    server = S3Server()
    yield server
    server.stop()


@pytest.fixture
def s3(s3_server, monkeypatch):
    """The server, with its credentials in the environment the way users give them (and workers inherit)."""
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()  # a new process would not have another test's credentials
    yield s3_server
    s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture(scope="session")
def shared_scheduler():
    """One LocalCluster for the tests that run many small real dumps: run.run joins it as an existing scheduler
    (the settings it yields), where a cluster of its own would cost each run seconds."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0") as local:
        yield {"posts-pipeline.cluster.kind": "scheduler", "posts-pipeline.cluster.scheduler-address":
               local.scheduler_address, "posts-pipeline.progress": False}


def _kind_not_up(why: str):
    pytest.fail(f"kind cluster not reachable: {why}. Run `make kind-up` first.", pytrace=False)


@pytest.fixture(scope="session")
def kubeconfig() -> str:
    """$KUBECONFIG, else the one `make kind-up` writes (.tools/kubeconfig)."""
    path = os.environ.get("KUBECONFIG") or str(REPO / ".tools" / "kubeconfig")
    if not Path(path).is_file():
        _kind_not_up(f"no kubeconfig at {path}")
    return path


@pytest.fixture(scope="session")
def kubectl(kubeconfig) -> Kubectl:
    """kubectl (.tools/bin, else PATH) against a cluster that answers; fails, does not skip, otherwise."""
    binary = str(TOOLS_BIN / "kubectl") if (TOOLS_BIN / "kubectl").exists() else shutil.which("kubectl")
    if not binary:
        _kind_not_up(f"no kubectl in {TOOLS_BIN} or on PATH")
    k = Kubectl(binary, kubeconfig)
    proc = k.run("get", "--raw", "/readyz", check=False, timeout=30)
    if proc.returncode != 0 or proc.stdout.strip() != "ok":
        _kind_not_up(f"{binary} get --raw /readyz said {proc.stdout.strip()!r} {proc.stderr.strip()!r}")
    return k
