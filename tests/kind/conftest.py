"""Fixtures for tests against the kind cluster (`make kind-up`).

Tests here carry ``@pytest.mark.kind`` and run only when selected with
``-m kind`` (``make e2e-kind``); otherwise they are deselected, and pytest
reports how many. When selected and the cluster is not reachable, they error
with a message saying to run ``make kind-up``: nothing is skipped silently.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from support import node_image_names, on_every_node

REPO = Path(__file__).resolve().parents[2]
TOOLS_BIN = REPO / ".tools" / "bin"
# The image test pods fall back to when the project image is not loaded
# (hack/kind/lib.sh ROOTFS_IMAGE; make exports it).
BASE_IMAGE_HINT = "posts-pipeline/kind-rootfs"
PROJECT_IMAGE = "posts-pipeline:latest"


class Kubectl:
    """Runs kubectl against the kind cluster and raises with its output on failure."""

    def __init__(self, binary: str, kubeconfig: str):
        self.binary = binary
        self.kubeconfig = kubeconfig

    def run(self, *args: str, input: str | None = None, check: bool = True, timeout: float = 180):
        cmd = [self.binary, "--kubeconfig", self.kubeconfig, *args]
        proc = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{' '.join(cmd)} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
        return proc

    def __call__(self, *args: str, **kw) -> str:
        return self.run(*args, **kw).stdout

    def json(self, *args: str, **kw):
        return json.loads(self(*args, "-o", "json", **kw))

    def apply(self, manifest: str, namespace: str | None = None) -> str:
        ns = ["-n", namespace] if namespace else []
        return self(*ns, "apply", "-f", "-", input=manifest)


def _not_up(msg: str):
    pytest.fail(f"kind cluster not reachable: {msg}. Run `make kind-up` first.", pytrace=False)


@pytest.fixture(scope="session")
def kubeconfig() -> str:
    path = os.environ.get("KUBECONFIG") or str(REPO / ".tools" / "kubeconfig")
    if not Path(path).is_file():
        _not_up(f"no kubeconfig at {path}")
    return path


@pytest.fixture(scope="session")
def kubectl(kubeconfig) -> Kubectl:
    binary = str(TOOLS_BIN / "kubectl") if (TOOLS_BIN / "kubectl").exists() else shutil.which("kubectl")
    if not binary:
        _not_up(f"no kubectl in {TOOLS_BIN} or on PATH")
    k = Kubectl(binary, kubeconfig)
    proc = k.run("get", "--raw", "/readyz", check=False, timeout=30)
    if proc.returncode != 0 or proc.stdout.strip() != "ok":
        _not_up(f"{binary} get --raw /readyz said {proc.stdout.strip()!r} {proc.stderr.strip()!r}")
    return k


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
    return [n["metadata"]["name"] for n in nodes if "node-role.kubernetes.io/control-plane" not in n["metadata"]["labels"]]
