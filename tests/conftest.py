"""Shared fixtures: generated dumps, a real S3 API server (moto's, over HTTP), config isolation."""

from __future__ import annotations

import copy

import dask.config
import distributed  # noqa: F401  (its config defaults must be in place before tests snapshot the config)
import pytest

from pipeline.generate import Options, generate
from support import S3Server


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
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret)
    monkeypatch.setenv("POSTS_PIPELINE__STORAGE_OPTIONS__ENDPOINT_URL", s3_server.endpoint)
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
