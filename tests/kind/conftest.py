"""Fixtures for tests against the kind cluster (`make kind-up`).

Tests here carry ``@pytest.mark.kind`` and run only when selected with
``-m kind`` (``make e2e-kind``); otherwise they are deselected, and pytest
reports how many. When selected and the cluster is not reachable, they error
with a message saying to run ``make kind-up``: nothing is skipped silently.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid

import pytest

from support import node_image_names, on_every_node  # kubeconfig and kubectl: tests/conftest.py

# The image test pods fall back to when the project image is not loaded
# (hack/kind/lib.sh ROOTFS_IMAGE; make exports it).
BASE_IMAGE_HINT = "posts-pipeline/kind-rootfs"
PROJECT_IMAGE = "posts-pipeline:latest"


@pytest.fixture
def namespace(kubectl):
    """A fresh namespace per test, deleted afterwards."""
    name = f"kind-test-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", name)
    yield name
    kubectl.run("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="session")
def node_images(kubectl) -> set[str]:
    """Every image name the nodes report as present."""
    return set().union(*(node_image_names(node) for node in kubectl.json("get", "nodes")["items"]))


@pytest.fixture(scope="session")
def test_image(kubectl, node_images) -> str:
    """The project image if it was loaded into the cluster, else the node's base rootfs image.

    ``make kind-up`` loads the project image whenever the host has it, but the kubelet reports newly
    loaded images in the node status only at its next status update: wait for that, or the tests
    would fall back to the base image right after a cluster is created.
    """
    on_host = shutil.which("docker") and subprocess.run(
        ["docker", "image", "inspect", PROJECT_IMAGE], capture_output=True).returncode == 0
    deadline = time.monotonic() + (180 if on_host else 0)
    while True:
        if on_every_node(kubectl.json("get", "nodes")["items"], PROJECT_IMAGE):
            return PROJECT_IMAGE
        if time.monotonic() > deadline:
            break
        time.sleep(5)
    if on_host:
        pytest.fail(f"{PROJECT_IMAGE} is on the host but the nodes do not report it after 180 s: run make kind-up")
    wanted = os.environ.get("POSTS_KIND_BASE_IMAGE")
    for n in sorted(node_images):
        if (wanted and n.endswith(wanted)) or (not wanted and BASE_IMAGE_HINT in n):
            return n
    pytest.fail(f"neither {PROJECT_IMAGE} nor {wanted or BASE_IMAGE_HINT} is on the nodes: {sorted(node_images)}")


@pytest.fixture(scope="session")
def worker_nodes(kubectl) -> list[str]:
    nodes = kubectl.json("get", "nodes")["items"]
    control_plane = "node-role.kubernetes.io/control-plane"
    return [n["metadata"]["name"] for n in nodes if control_plane not in n["metadata"]["labels"]]
