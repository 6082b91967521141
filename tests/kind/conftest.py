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
import tomllib
import uuid

import pytest

from support import chart, node_image_names  # kubeconfig and kubectl: tests/conftest.py

# The image test pods fall back to when the project image is not in the registry
# (hack/kind/lib.sh ROOTFS_IMAGE; make exports it).
BASE_IMAGE_HINT = "posts-pipeline/kind-rootfs"
VERSION = tomllib.loads((chart.REPO / "pyproject.toml").read_text())["project"]["version"]


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
def project_version() -> str:
    return VERSION


@pytest.fixture(scope="session")
def pushed() -> dict:
    """What `make kind-up` pushed to the kind registry (support.chart.pushed)."""
    return chart.pushed()


@pytest.fixture(scope="session")
def test_image(pushed, node_images) -> str:
    """The project image in the kind registry (pods pull it from there) when `make kind-up` pushed it, else
    the node's base rootfs image (in the node image); an image on the host that was not pushed is an error."""
    if "posts-pipeline" in pushed["images"]:
        return pushed["images"]["posts-pipeline"]
    on_host = shutil.which("docker") and subprocess.run(
        ["docker", "image", "inspect", f"posts-pipeline:{VERSION}"], capture_output=True).returncode == 0
    if on_host:
        pytest.fail(f"posts-pipeline:{VERSION} is on the host but not in the kind registry: run make kind-up")
    wanted = os.environ.get("POSTS_KIND_BASE_IMAGE")
    for n in sorted(node_images):
        if (wanted and n.endswith(wanted)) or (not wanted and BASE_IMAGE_HINT in n):
            return n
    pytest.fail(f"neither the project image nor {wanted or BASE_IMAGE_HINT} is on the nodes: {sorted(node_images)}")


@pytest.fixture(scope="session")
def worker_nodes(kubectl) -> list[str]:
    nodes = kubectl.json("get", "nodes")["items"]
    control_plane = "node-role.kubernetes.io/control-plane"
    return [n["metadata"]["name"] for n in nodes if control_plane not in n["metadata"]["labels"]]
