"""On the kind cluster (`make e2e-k8s`): a bad setting with --cluster kubernetes fails in one line and
creates no DaskCluster — the settings are checked before the driver talks to the Kubernetes API.

Uses the end-to-end module's fixtures: the operator installed (so
that the DaskCluster resource type exists and a created one would be seen) and a restricted namespace.
"""

from __future__ import annotations

import time

import pytest
from test_k8s_e2e import daskclusters, images, k, operator  # noqa: F401 - fixtures

from support import posts_pipeline

pytestmark = pytest.mark.kind


def test_a_bad_html_parser_creates_no_daskcluster(k, tmp_path):  # noqa: F811 - the fixture imported above
    assert daskclusters(k) == []
    env = {"KUBECONFIG": k.kubeconfig, "POSTS_PIPELINE__CLEAN__HTML_PARSER": "nosuch"}
    started = time.monotonic()
    done = posts_pipeline("run", "-v", "--cluster", "kubernetes", "--namespace", k.namespace, "--image",
                          "posts-pipeline:latest", "-i", "s3://posts/Posts.xml", "-o", tmp_path / "runs" / "bad",
                          env=env, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr == ("posts-pipeline: error: clean.html-parser must be one of fast, bs4, not 'nosuch' "
                           "(from POSTS_PIPELINE__CLEAN__HTML_PARSER)\n")  # with -v: no "DaskCluster … created" line
    assert time.monotonic() - started < 60
    assert daskclusters(k) == []
    events = k.json("get", "events")["items"]
    assert not [e for e in events if e["involvedObject"].get("kind") == "DaskCluster"]
    assert not (tmp_path / "runs").exists()
