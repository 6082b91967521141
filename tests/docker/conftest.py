"""Fixtures for the multi-container tests (``make e2e-docker``).

Everything runs in containers of the project's images on a user-defined Docker
network of its own: an S3 API server (MinIO built from the Go module proxy by
``docker/build-minio.sh``, or with ``POSTS_PIPELINE_E2E_S3=moto`` moto's server from
``posts-pipeline-test`` with authentication on), a ``dask scheduler`` and two ``dask worker`` containers from
``posts-pipeline``, and the driver (``posts-pipeline run --scheduler …``) in a
container of the same image. The host reaches them only through ports published
on 127.0.0.1 (to upload the input, read the results and watch the scheduler).

Tests here carry ``@pytest.mark.docker`` and run only when selected with
``-m docker``; otherwise they are deselected. When selected and the engine or
the images are missing, they fail with what to run: nothing is skipped.

Teardown removes every container and network of the session, also when a test
fails, and then fails itself if anything of the session is left (containers,
networks, or volumes its containers had mounted). What a killed session left
(its pytest process is gone) is removed when the next one starts.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pytest

from containers import (
    BLOCKSIZE,
    BUCKET,
    IMAGE,
    LABEL,
    PID_LABEL,
    REPO,
    TEST_IMAGE,
    Session,
    docker,
    labelled,
    remove_labelled,
    remove_stale_sessions,
    start_cluster,
    start_minio,
    start_s3,
)
from support import generate_dump, reference_report, run

SIZE = os.environ.get("POSTS_PIPELINE_E2E_SIZE", "40MB")
SEED = 3
INPUT_KEY = "input/Posts.xml"


def _require(condition: bool, message: str) -> None:
    if not condition:
        pytest.fail(message, pytrace=False)


@pytest.fixture(scope="session")
def engine() -> None:
    """A Docker engine and the images; fails (does not skip) when they are missing."""
    _require(shutil.which("docker") is not None, "no docker client: run `make e2e-docker`")
    info = docker("info", "--format", "{{.ServerVersion}}", check=False, timeout=30)
    _require(info.returncode == 0, f"no Docker engine answers ({info.stderr.strip()}): run `make e2e-docker`")
    for image in (IMAGE, TEST_IMAGE):
        found = docker("image", "inspect", image, check=False).returncode == 0
        _require(found, f"image {image} is missing: run `make e2e-docker` (it builds it)")


@pytest.fixture(scope="session")
def session(engine):
    """This session's network. At the end every container and network of the session is removed,
    and the teardown fails if anything is left."""
    remove_stale_sessions()
    sid = uuid.uuid4().hex[:8]
    labels = [f"{LABEL}={sid}", f"{PID_LABEL}={os.getpid()}"]
    network = f"pp-e2e-{sid}"
    docker("network", "create", *[a for lb in labels for a in ("--label", lb)], network)
    try:
        yield Session(id=sid, network=network, labels=labels)
    finally:
        # Volumes carry no label of ours: note the ones our containers mount, check they are gone too.
        ids = labelled("container", f"{LABEL}={sid}")
        mounts = docker("inspect", "--format", "{{range .Mounts}}{{.Name}} {{end}}", *ids,
                        check=False).stdout.split() if ids else []
        remove_labelled(f"{LABEL}={sid}")
        left = labelled("container", f"{LABEL}={sid}") + labelled("network", f"{LABEL}={sid}")
        volumes = [v for v in mounts if docker("volume", "inspect", v, check=False).returncode == 0]
        assert not left and not volumes, f"teardown left containers/networks {left}, volumes {volumes}"


S3_SERVER = os.environ.get("POSTS_PIPELINE_E2E_S3", "minio")   # minio | moto


@pytest.fixture(scope="session")
def s3(session):
    """The S3 API server: MinIO, a real object store (default; image from docker/build-minio.sh,
    built on first use), or moto's server (POSTS_PIPELINE_E2E_S3=moto)."""
    if S3_SERVER == "minio":
        image = run([REPO / "docker" / "build-minio.sh"], timeout=3600).stdout.strip()
        return start_minio(session, image)
    return start_s3(session)


@pytest.fixture(scope="session")
def dump(tmp_path_factory) -> Path:
    """A generated Posts.xml (POSTS_PIPELINE_E2E_SIZE, default 40MB)."""
    return generate_dump(tmp_path_factory.mktemp("docker-dump") / "Posts.xml", SIZE, SEED)


@pytest.fixture(scope="session")
def s3_input(s3, dump) -> str:
    s3.client().upload_file(str(dump), BUCKET, INPUT_KEY)
    return f"s3://{BUCKET}/{INPUT_KEY}"


@pytest.fixture(scope="session")
def reference(dump, tmp_path_factory) -> dict:
    """The same input and options on the driver's embedded LocalCluster (host .venv, same lock file)."""
    return reference_report(dump, tmp_path_factory.mktemp("reference") / "run", BLOCKSIZE)


@pytest.fixture
def cluster(session, s3):
    """A fresh scheduler and two workers for one test, removed after it."""
    tag = uuid.uuid4().hex[:4]
    c = start_cluster(session, s3, f"scheduler-{tag}", {f"worker-{tag}-1": {}, f"worker-{tag}-2": {}})
    try:
        yield c
    finally:
        Session.remove(*c.containers())
