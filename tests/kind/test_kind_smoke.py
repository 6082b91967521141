"""Smoke test of the kind cluster: nodes, CoreDNS, Services and the pod network."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.kind

REPO = Path(__file__).resolve().parents[2]

# A tiny HTTP server and client that work in the project image (python3) and in
# the base image (busybox), so the test does not depend on which one is there.
SERVE = (
    "mkdir -p /tmp/www && echo \"$TOKEN\" > /tmp/www/index.html && cd /tmp/www && "
    "if command -v python3 >/dev/null; then exec python3 -m http.server 8080; "
    "else exec busybox httpd -f -p 8080 -h /tmp/www; fi"
)
FETCH = (
    "if command -v python3 >/dev/null; then "
    "python3 -c 'import sys,urllib.request; "
    "print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' \"$0\"; "
    "else busybox wget -q -T 5 -O - \"$0\"; fi"
)


def pod(name: str, image: str, command: str, node: str | None = None, labels: dict | None = None, env=None) -> dict:
    # A server is Ready (and in its Service's endpoints) only once it listens, not once it starts.
    probe = {"readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}} if command == SERVE else {}
    spec = {
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": 1,
        "containers": [
            {
                "name": "main",
                "image": image,
                "imagePullPolicy": "IfNotPresent",  # from the kind registry, or in the node image
                "command": ["sh", "-c", command],
                "env": env or [],
                "ports": [{"containerPort": 8080}],
                **probe,
            }
        ],
    }
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels or {}}, "spec": spec}


def start(kubectl, namespace: str, *manifests: dict) -> None:
    kubectl.apply(json.dumps({"apiVersion": "v1", "kind": "List", "items": list(manifests)}), namespace)
    for m in manifests:
        if m["kind"] == "Pod":
            kubectl("-n", namespace, "wait", "--for=condition=Ready", f"pod/{m['metadata']['name']}", "--timeout=180s")


def exec_in(kubectl, namespace: str, pod_name: str, *cmd: str) -> str:
    return kubectl("-n", namespace, "exec", pod_name, "--", *cmd, timeout=60)


def fetch(kubectl, namespace: str, url: str, within: float = 30) -> str:
    """GET ``url`` from the client pod, retried while kube-proxy catches up with a new endpoint."""
    deadline = time.monotonic() + within
    while True:
        try:
            return exec_in(kubectl, namespace, "client", "sh", "-c", FETCH, url)
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def test_nodes_ready(kubectl):
    config = yaml.safe_load((REPO / "kind-config.yaml").read_text())
    expected = len(config["nodes"])
    nodes = kubectl.json("get", "nodes")["items"]
    assert len(nodes) == expected, [n["metadata"]["name"] for n in nodes]
    for n in nodes:
        ready = {c["type"]: c["status"] for c in n["status"]["conditions"]}["Ready"]
        assert ready == "True", (n["metadata"]["name"], n["status"]["conditions"])
        assert n["status"]["nodeInfo"]["kubeletVersion"].startswith("v1.34."), n["status"]["nodeInfo"]


def test_service_name_resolves_through_coredns(kubectl, namespace, test_image):
    token = uuid.uuid4().hex
    server = pod("web", test_image, SERVE, labels={"app": "web"}, env=[{"name": "TOKEN", "value": token}])
    client = pod("client", test_image, "sleep 3600")
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
    }
    start(kubectl, namespace, service, server, client)
    cluster_ip = kubectl("-n", namespace, "get", "service", "web", "-o", "jsonpath={.spec.clusterIP}")

    # The pod's resolver points at the cluster DNS Service (CoreDNS) ...
    resolv = exec_in(kubectl, namespace, "client", "cat", "/etc/resolv.conf")
    dns_ip = kubectl("-n", "kube-system", "get", "service", "kube-dns", "-o", "jsonpath={.spec.clusterIP}")
    assert f"nameserver {dns_ip}" in resolv, resolv

    # ... which answers with the Service's ClusterIP, for the short and the full name.
    for name in ("web", f"web.{namespace}.svc.cluster.local"):
        hosts = exec_in(kubectl, namespace, "client", "getent", "hosts", name)
        assert hosts.split()[0] == cluster_ip, (name, hosts)

    # And the name leads to the server through kube-proxy.
    body = fetch(kubectl, namespace, "http://web/")
    assert body.strip() == token


def test_pod_reaches_pod_on_another_node(kubectl, namespace, test_image, worker_nodes):
    assert len(worker_nodes) >= 2, f"need two worker nodes, have {worker_nodes}"
    a, b = worker_nodes[:2]
    token = uuid.uuid4().hex
    server = pod("server", test_image, SERVE, node=a, env=[{"name": "TOKEN", "value": token}])
    client = pod("client", test_image, "sleep 3600", node=b)
    start(kubectl, namespace, server, client)

    server_pod = kubectl.json("-n", namespace, "get", "pod", "server")
    client_pod = kubectl.json("-n", namespace, "get", "pod", "client")
    assert server_pod["spec"]["nodeName"] == a and client_pod["spec"]["nodeName"] == b
    server_ip = server_pod["status"]["podIP"]
    assert server_ip != client_pod["status"]["podIP"]

    body = fetch(kubectl, namespace, f"http://{server_ip}:8080/")
    assert body.strip() == token
