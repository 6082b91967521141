"""Offline checks of what goes to the API server, for `make chart-lint` and tests/kubernetes.

  PYTHONPATH=tests python -m support.chart --kubernetes-version 1.34 --helm .tools/bin/helm [VALUES.yaml ...]

1. renders helm/posts-pipeline with each values file (`helm template`, hooks and tests included) and
   validates every manifest against the Kubernetes schemas of that version (kubernetes-validate, strict:
   unknown fields are errors), and checks the restricted Pod Security Standard on every pod template; the
   optional APIs the chart looks for (the prometheus-operator's PodMonitor) are offered, so that what they
   guard is rendered and checked too (the PodMonitor against the scheduler pods it must select);
2. builds the DaskCluster the driver would create from the rendered ConfigMap's pipeline config and
   validates it against the openAPIV3Schema of the CRD shipped in the pinned dask-kubernetes (unknown
   fields rejected too), and its scheduler and worker pod specs against the Kubernetes Pod schema.
Needs no cluster. ``pushed()`` and ``install_source()`` say where the chart and the images are on the kind
cluster's registry (what `make kind-up` pushed), for the tests that install it there.
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
from pathlib import Path

import yaml

from pipeline import config  # (its defaults are in dask.config before a test snapshots it)

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "posts-pipeline"
PUSHED = REPO / ".tools" / "registry.json"  # written by hack/kind/up.sh


def pushed() -> dict:
    """What `make kind-up` pushed to the kind cluster's registry: ``registry`` (its host), ``images`` (name →
    reference with its content tag), ``chart`` (the oci:// reference) and ``chart_version``."""
    if not PUSHED.exists():
        raise AssertionError(f"{PUSHED} is missing: run make kind-up (it pushes the images and the chart)")
    return json.loads(PUSHED.read_text())


def install_source(name: str = "posts-pipeline") -> list[str]:
    """The chart as `helm install` (or upgrade) takes it from the registry, with the pushed image ``name``:
    ``oci://… --version V --plain-http --set image.repository=… --set image.tag=…`` (the kind registry
    speaks plain HTTP on the host's loopback)."""
    found = pushed()
    if name not in found["images"]:
        raise AssertionError(f"{name} is not in the kind registry ({PUSHED}): make image, then make kind-up")
    repository, tag = found["images"][name].rsplit(":", 1)
    return [found["chart"], "--version", found["chart_version"], "--plain-http",
            "--set", f"image.repository={repository}", "--set", f"image.tag={tag}"]


def crd_schema(kind: str = "daskcluster") -> dict:
    """The openAPIV3Schema of a dask-kubernetes CRD, as shipped in the installed package."""
    import dask_kubernetes

    crds = Path(dask_kubernetes.__file__).parent / "operator/deployment/helm/dask-kubernetes-operator/crds"
    path = crds / f"{kind}.yaml"
    crd = yaml.safe_load(path.read_text())
    version = next(v for v in crd["spec"]["versions"] if v.get("served", True))
    return version["schema"]["openAPIV3Schema"]


def strict(schema: dict) -> dict:
    """A copy in which objects with declared properties refuse others, as `kubectl --validate=strict` does."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            if ("properties" in node and "additionalProperties" not in node
                    and not node.get("x-kubernetes-preserve-unknown-fields")):
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return schema


def validate_daskcluster(resource: dict) -> list[str]:
    """Errors of a DaskCluster against the CRD schema (metadata and apiVersion/kind are the API server's)."""
    import jsonschema

    body = {k: v for k, v in resource.items() if k not in ("apiVersion", "kind", "metadata")}
    schema = strict(crd_schema())
    schema.setdefault("properties", {})
    for key in ("apiVersion", "kind", "metadata", "status"):
        schema["properties"].pop(key, None)
    validator = jsonschema.Draft7Validator(schema)
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(body)]
    if resource.get("apiVersion") != "kubernetes.dask.org/v1" or resource.get("kind") != "DaskCluster":
        errors.append(f"not a kubernetes.dask.org/v1 DaskCluster: {resource.get('apiVersion')} {resource.get('kind')}")
    return errors


def validate_manifest(doc: dict, version: str) -> list[str]:
    import kubernetes_validate

    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as e:
        return [f"{doc.get('kind')} {doc.get('metadata', {}).get('name')}: {'/'.join(map(str, e.path))}: {e.message}"]
    return []


def pod_specs(doc: dict) -> list[tuple[str, dict]]:
    """(where, pod spec) of every pod template in a manifest."""
    kind, name = doc.get("kind"), (doc.get("metadata") or {}).get("name")
    spec = doc.get("spec") or {}
    if kind == "Pod":
        return [(f"Pod {name}", spec)]
    if kind == "Job":
        return [(f"Job {name}", spec["template"]["spec"])]
    if kind == "CronJob":
        return [(f"CronJob {name}", spec["jobTemplate"]["spec"]["template"]["spec"])]
    if kind == "DaskCluster":
        return [(f"DaskCluster {name} {part}", spec[part]["spec"]) for part in ("scheduler", "worker")]
    if kind in ("Deployment", "StatefulSet", "DaemonSet"):
        return [(f"{kind} {name}", spec["template"]["spec"])]
    return []


def restricted_violations(where: str, pod: dict) -> list[str]:
    """What the restricted Pod Security Standard would refuse (the checks that matter for our pods)."""
    found = []
    psc = pod.get("securityContext") or {}
    for c in (pod.get("containers") or []) + (pod.get("initContainers") or []):
        sc = c.get("securityContext") or {}
        who = f"{where} container {c.get('name')}"
        if sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is not True:
            found.append(f"{who}: runAsNonRoot is not true")
        if (sc.get("runAsUser", psc.get("runAsUser")) or 1) == 0:
            found.append(f"{who}: runs as UID 0")
        if sc.get("allowPrivilegeEscalation") is not False:
            found.append(f"{who}: allowPrivilegeEscalation is not false")
        if sc.get("privileged"):
            found.append(f"{who}: privileged")
        if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
            found.append(f"{who}: capabilities do not drop ALL")
        if set((sc.get("capabilities") or {}).get("add") or []) - {"NET_BIND_SERVICE"}:
            found.append(f"{who}: adds capabilities")
        seccomp = (sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            found.append(f"{who}: seccompProfile is not RuntimeDefault")
        if not (c.get("resources") or {}).get("limits"):
            found.append(f"{who}: no resource limits")
    for v in pod.get("volumes") or []:
        if "hostPath" in v:
            found.append(f"{where}: hostPath volume {v.get('name')}")
    if pod.get("hostNetwork") or pod.get("hostPID") or pod.get("hostIPC"):
        found.append(f"{where}: shares a host namespace")
    return found


def podmonitor_problems(doc: dict, cluster: dict) -> list[str]:
    """A PodMonitor (no Kubernetes schema has it) selects the scheduler pods of the driver's DaskCluster, not its
    workers, and scrapes a port the scheduler container names."""
    scheduler, worker = cluster["spec"]["scheduler"], cluster["spec"]["worker"]
    selector = doc["spec"]["selector"]["matchLabels"]
    ports = {p["name"] for p in scheduler["spec"]["containers"][0].get("ports") or []}
    found = []
    if any(scheduler["metadata"]["labels"].get(k) != v for k, v in selector.items()):
        found.append(f"PodMonitor {doc['metadata']['name']}: {selector} does not select the scheduler pods")
    if all(worker["metadata"]["labels"].get(k) == v for k, v in selector.items()):
        found.append(f"PodMonitor {doc['metadata']['name']}: {selector} selects the worker pods too")
    for endpoint in doc["spec"]["podMetricsEndpoints"]:
        if endpoint.get("port") not in ports:
            found.append(f"PodMonitor {doc['metadata']['name']}: port {endpoint.get('port')!r} is not one of the "
                         f"scheduler's {sorted(ports)}")
    return found


# The optional APIs templates look for with .Capabilities.APIVersions.Has.
OPTIONAL_APIS = ["--api-versions", "monitoring.coreos.com/v1/PodMonitor"]


def render(helm: str, values: list[str], release: str = "posts", namespace: str = "posts",
           extra: list[str] | None = None) -> list[dict]:
    cmd = [helm, "template", release, str(CHART), "-n", namespace]
    for v in values:
        cmd += ["-f", str(v)]
    cmd += extra or []
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr}")
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def driver_daskcluster(docs: list[dict]) -> dict:
    """The DaskCluster a run of this release would create, from the rendered ConfigMap's pipeline config."""
    import dask.config

    from pipeline.k8s.spec import cluster_name, cluster_spec

    cm = next(d for d in docs if d["kind"] == "ConfigMap")
    user = yaml.safe_load(cm["data"]["pipeline.yaml"])
    saved = copy.deepcopy(dask.config.config)
    try:
        dask.config.update(dask.config.config, user)
        settings = config.get("cluster.kubernetes")
        owner = {"apiVersion": "v1", "kind": "Pod", "name": "run-1-abcde",
                 "uid": "00000000-0000-0000-0000-000000000000"}
        return cluster_spec(settings, cluster_name(settings["name"]), owner=owner, environ={})
    finally:
        dask.config.config.clear()
        dask.config.config.update(saved)


def check(helm: str, version: str, values_files: list[str]) -> list[str]:
    problems = []
    for values in values_files:
        docs = render(helm, [values], extra=OPTIONAL_APIS)
        spec = driver_daskcluster(docs)
        for doc in docs:
            found = podmonitor_problems(doc, spec) if doc["kind"] == "PodMonitor" else validate_manifest(doc, version)
            problems += [f"[{Path(values).name}] {p}" for p in found]
            for where, pod in pod_specs(doc):
                problems += [f"[{Path(values).name}] {p}" for p in restricted_violations(where, pod)]
        problems += [f"[{Path(values).name}] DaskCluster: {p}" for p in validate_daskcluster(spec)]
        for where, pod in pod_specs(spec):
            pod_doc = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "dask"}, "spec": pod}
            problems += [f"[{Path(values).name}] {where}: {p}" for p in validate_manifest(pod_doc, version)]
            problems += [f"[{Path(values).name}] {p}" for p in restricted_violations(where, pod)]
        print(f"{Path(values).name}: {len(docs)} manifests and the driver's DaskCluster checked against "
              f"Kubernetes {version}")
    return problems


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kubernetes-version", required=True, help="e.g. 1.34")
    p.add_argument("--helm", default="helm")
    p.add_argument("values", nargs="+")
    args = p.parse_args(argv)
    problems = check(args.helm, args.kubernetes_version.lstrip("v"), args.values)
    for problem in problems:
        print("ERROR", problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
