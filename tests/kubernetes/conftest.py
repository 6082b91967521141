"""Fixtures for the Kubernetes tests: helm and the Kubernetes version for the chart tests (no cluster).

Unit tests here run in every `make test`. Tests marked ``kind`` run only with ``-m kind``
(`make e2e-k8s`) against the cluster `make kind-up` creates, through the ``kubectl`` fixture of
tests/conftest.py (kubeconfig $KUBECONFIG or .tools/kubeconfig).
"""

from __future__ import annotations

import glob
import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def find_helm() -> str | None:
    cached = sorted(glob.glob(os.path.join(os.environ.get("POSTS_PIPELINE_CACHE", "/var/cache/posts-pipeline"),
                                           "tools", "helm-*", "bin", "helm")))
    for candidate in [str(REPO / ".tools" / "bin" / "helm"), shutil.which("helm"), *cached[-1:]]:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.fixture(scope="session")
def helm() -> str:
    path = find_helm()
    if not path:
        pytest.skip("helm not found in .tools/bin, PATH or the kind tool cache: run `make helm-tool`")
    return path


@pytest.fixture(scope="session")
def kubernetes_version() -> str:
    """The kind cluster's minor version (hack/kind/lib.sh), whose schemas manifests are checked against."""
    for line in (REPO / "hack" / "kind" / "lib.sh").read_text().splitlines():
        if line.startswith("K8S_VERSION="):
            return ".".join(line.split("=", 1)[1].split()[0].lstrip("v").split(".")[:2])
    return "1.34"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """item.rep_setup/rep_call/rep_teardown, so that fixtures can tell whether their test failed."""
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)
