"""The application chart, rendered offline: lint, schemas of the cluster's Kubernetes version, restricted
pods, least-privilege RBAC, values documented and typed (wrong types rejected)."""

from __future__ import annotations

import json
import re
import subprocess

import jsonschema
import pytest
import yaml

from support import chart

CHART = chart.CHART
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
REQUIRED = ["--set", "run.input=s3://b/Posts.xml", "--set", "run.outputPrefix=s3://b/runs"]


def template(helm, *args, check_rc=True):
    proc = subprocess.run([helm, "template", "posts", str(CHART), "-n", "posts", *args], capture_output=True, text=True)
    if check_rc:
        assert proc.returncode == 0, proc.stderr
        return [d for d in yaml.safe_load_all(proc.stdout) if d]
    return proc


def by_kind(docs):
    out = {}
    for d in docs:
        out.setdefault(d["kind"], []).append(d)
    return out


@pytest.mark.parametrize("values", [None, *CI_VALUES], ids=lambda v: v.name if v else "defaults")
def test_helm_lint_strict(helm, values):
    args = [helm, "lint", "--strict", str(CHART)] + (["-f", str(values)] if values else [])
    proc = subprocess.run(args, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_manifests_and_driver_daskcluster_valid_offline(helm, kubernetes_version):
    pytest.importorskip("kubernetes_validate", reason="kubernetes-validate belongs in requirements/test-lock.txt")
    assert chart.check(helm, kubernetes_version, [str(v) for v in CI_VALUES]) == []


def test_a_broken_manifest_is_caught(kubernetes_version):
    pytest.importorskip("kubernetes_validate", reason="kubernetes-validate belongs in requirements/test-lock.txt")
    pod = {"containers": [{"name": "a", "image": "b", "cmd": []}]}
    bad = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "x"},
           "spec": {"backoffLimit": "none", "template": {"spec": pod}}}
    assert chart.validate_manifest(bad, kubernetes_version)


@pytest.mark.parametrize("args, message", [
    (["--set", "dask.workers=abc"], "/dask/workers"),
    (["--set-string", "run.backoffLimit=1"], "/run/backoffLimit"),
    (["--set", "dask.wokers=2"], "additional properties 'wokers'"),
    (["--set", "image.pullPolicy=Sometimes"], "/image/pullPolicy"),
    (["--set", "dask.adapt=3"], "/dask/adapt"),
    (["--set", "s3.endpointUrl=ftp://x"], "/s3/endpointUrl"),
    (["--set", "dask.workerResources.limits.memory=lots"], "/dask/workerResources/limits/memory"),
    (["--set", "run.extraArgs=--tag"], "/run/extraArgs"),
    (["--set", "podSecurityContext.runAsUser=0"], "/podSecurityContext/runAsUser"),
    (["--set-json", 'dask.workerTolerations=[{"key":"nvidia.com/gpu","operator":"Maybe"}]'],
     "/dask/workerTolerations/0/operator"),
    (["--set-json", 'dask.workerTolerations=[{"kye":"nvidia.com/gpu"}]'], "additional properties 'kye'"),
    (["--set-json", 'dask.workerNodeSelector={"nvidia.com/gpu.present":true}'], "/dask/workerNodeSelector"),
    (["--set", "metrics.pushgateway=pushgateway:9091"], "/metrics/pushgateway"),
    (["--set", "metrics.podMonitor.interval=often"], "/metrics/podMonitor/interval"),
])
def test_values_schema_rejects_wrong_types(helm, args, message):
    proc = template(helm, *REQUIRED, *args, check_rc=False)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr


@pytest.mark.parametrize("missing", ["run.input", "run.outputPrefix"])
def test_input_and_output_are_required(helm, missing):
    other = "run.outputPrefix=s3://b/runs" if missing == "run.input" else "run.input=s3://b/Posts.xml"
    proc = template(helm, "--set", other, check_rc=False)
    assert proc.returncode != 0 and f"{missing} is required" in proc.stderr


def schema_source() -> dict:
    return yaml.safe_load((CHART / "values.schema.yaml").read_text())


def test_values_schema_json_is_generated_from_the_yaml():
    """helm reads values.schema.json; its source is values.schema.yaml."""
    generated = json.loads((CHART / "values.schema.json").read_text())
    assert generated == schema_source(), "values.schema.json is out of date: run `make chart-schema`"


def test_every_value_is_documented_and_described_in_the_schema():
    """Each key of values.yaml has a `## @param` comment, and the schema describes it with the same text;
    every property the schema declares has a description."""
    text = (CHART / "values.yaml").read_text()
    schema = schema_source()
    values = yaml.safe_load(text)
    params = dict(re.findall(r"^\s*## @param (\S+) (.+)$", text, re.M))

    def leaves(tree, prefix=""):
        for k, v in tree.items():
            path = prefix + k
            # a documented mapping (resources, security contexts, …) covers its children
            if path in params or not isinstance(v, dict) or not v:
                yield path
            else:
                yield from leaves(v, path + ".")

    assert set(leaves(values)) == set(params)
    for param, description in params.items():
        node = schema
        for part in param.split("."):
            assert part in node.get("properties", {}), f"{param} is not in values.schema.yaml"
            node = node["properties"][part]
        assert " ".join(node.get("description", "").split()) == description, param

    def undescribed(node, where):
        for name, sub in {**node.get("properties", {}), **node.get("$defs", {})}.items():
            if "description" not in sub:
                yield f"{where}{name}"
            yield from undescribed(sub, f"{where}{name}.")

    assert list(undescribed(schema, "")) == []


def values_errors(values: dict) -> list[str]:
    schema = schema_source()
    validator = jsonschema.validators.validator_for(schema)(schema)
    return ["/".join(map(str, e.absolute_path)) for e in validator.iter_errors(values)]


@pytest.mark.parametrize("path, value, ok", [
    ("dask/workerResources/limits/memory", "1.5Gi", True),
    ("dask/workerResources/limits/cpu", 0.5, True),
    ("dask/workerResources/limits/nvidia.com~1gpu", 1, True),
    ("driver/resources/requests/memory", "lots", False),
    ("tests/resources/limits/cpu", -1, False),
    ("dask/schedulerResources/requests/cpu", "1 core", False),
    ("dask/schedulerResources/spare", {}, False),
    ("dask/startTimeout", "90s", True),
    ("dask/idleTimeout", 600, True),
    ("dask/idleTimeout", "10 parsecs", False),
    ("s3/existingSecret", "", True),
    ("s3/existingSecret", "Creds_1", False),
    ("imagePullSecrets", ["regcred"], True),
    ("imagePullSecrets", ["-bad"], False),
    ("serviceAccount/annotations", {"eks.amazonaws.com/role-arn": 1}, False),
    ("driver/nodeSelector", {"disk": "ssd"}, True),
])
def test_values_schema_shared_definitions(path, value, ok):
    """The shared definitions ($defs) accept and refuse what each of their copies used to."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values_errors(values) == []
    *parents, key = [part.replace("~1", "/") for part in path.split("/")]  # a JSON pointer
    target = values
    for part in parents:
        target = target[part]
    target[key] = value
    assert (values_errors(values) == []) == ok, values_errors(values)


def test_driver_runs_from_a_suspended_cronjob_with_restricted_pods(helm):
    kinds = by_kind(template(helm, "-f", str(CHART / "ci" / "ci-values.yaml")))
    cron = kinds["CronJob"][0]
    assert cron["metadata"]["name"] == "posts-posts-pipeline" and cron["spec"]["suspend"] is True
    job = cron["spec"]["jobTemplate"]["spec"]
    assert job["backoffLimit"] == 0 and job["activeDeadlineSeconds"] > 0
    pod = job["template"]["spec"]
    c = pod["containers"][0]
    assert c["args"][:4] == ["posts-pipeline", "run", "--config", "/etc/posts-pipeline/pipeline.yaml"]
    assert "$(OUTPUT_PREFIX)/$(RUN_NAME)" in c["args"]  # each run writes to <prefix>/<job name>
    env = {e["name"]: e for e in c["env"]}
    assert env["RUN_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.labels['batch.kubernetes.io/job-name']"
    # the pod owns its DaskCluster
    assert env["POSTS_PIPELINE_POD_UID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.uid"
    assert c["envFrom"] == [{"secretRef": {"name": "s3-creds"}}]
    assert pod["terminationGracePeriodSeconds"] >= 30  # time to delete the DaskCluster after SIGTERM
    assert chart.restricted_violations("driver", pod) == []
    assert "Job" in kinds  # run.onInstall
    cfg = yaml.safe_load(kinds["ConfigMap"][0]["data"]["pipeline.yaml"])["posts-pipeline"]
    assert cfg["cluster"]["kind"] == "kubernetes" and cfg["cluster"]["kubernetes"]["env-from-secrets"] == ["s3-creds"]
    assert cfg["cluster"]["kubernetes"]["adapt"] == "1:3" and cfg["analytics"]["top"] == 10  # config merged



@pytest.mark.parametrize("retries", [0, 2])
def test_a_retried_run_resumes_its_failed_attempt(helm, retries):
    """With retries the Job's pods (same job name, same output) carry on with --resume; without, a failed
    run cleans up after itself."""
    job = by_kind(template(helm, *REQUIRED, "--set", f"run.backoffLimit={retries}"))["CronJob"][0]["spec"]
    spec = job["jobTemplate"]["spec"]
    assert spec["backoffLimit"] == retries
    assert ("--resume" in spec["template"]["spec"]["containers"][0]["args"]) is (retries > 0)

def test_rbac_is_least_privilege(helm):
    kinds = by_kind(template(helm, *REQUIRED))
    assert "ClusterRole" not in kinds and "ClusterRoleBinding" not in kinds
    rules = kinds["Role"][0]["rules"]
    granted = {(g, r, v) for rule in rules for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}
    assert all("*" not in item for item in granted)
    assert ("kubernetes.dask.org", "daskclusters", "create") in granted
    assert ("kubernetes.dask.org", "daskclusters", "delete") in granted
    assert not any(r in ("secrets", "configmaps", "roles", "rolebindings") for _, r, _ in granted)
    assert not any(r.startswith("pods") and v in ("create", "update", "patch", "delete") for _, r, v in granted)
    binding = kinds["RoleBinding"][0]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "posts-posts-pipeline", "namespace": "posts"}]


def test_credentials_from_an_existing_secret_or_a_created_one(helm):
    kinds = by_kind(template(helm, *REQUIRED, "--set", "s3.existingSecret=mine"))
    assert "Secret" not in kinds
    kinds = by_kind(template(helm, "-f", str(CHART / "ci" / "created-secret-values.yaml")))
    secret = kinds["Secret"][0]
    assert secret["metadata"]["name"] == "posts-posts-pipeline-s3"
    assert set(secret["stringData"]) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    cron = kinds["CronJob"][0]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert cron["envFrom"] == [{"secretRef": {"name": "posts-posts-pipeline-s3"}}]
    config_map = kinds["ConfigMap"][0]["data"]["pipeline.yaml"]
    assert "not-a-real-secret" not in config_map and "posts-posts-pipeline-s3" in config_map


def test_helm_tests_check_permissions_and_s3(helm):
    pods = [d for d in template(helm, *REQUIRED) if d["kind"] == "Pod"]
    assert sorted(p["metadata"]["annotations"]["helm.sh/hook"] for p in pods) == ["test", "test"]
    names = sorted(p["metadata"]["name"] for p in pods)
    assert names == ["posts-posts-pipeline-test-permissions", "posts-posts-pipeline-test-s3"]
    for p in pods:
        assert chart.restricted_violations(p["metadata"]["name"], p["spec"]) == []


PODMONITOR_API = ["--api-versions", "monitoring.coreos.com/v1/PodMonitor"]


@pytest.mark.parametrize("args, rendered", [
    ([], False),  # off by default
    (["--set", "metrics.podMonitor.enabled=true"], False),  # no prometheus-operator in the cluster
    (PODMONITOR_API, False),
    (["--set", "metrics.podMonitor.enabled=true", *PODMONITOR_API], True),
])
def test_podmonitor_only_when_enabled_and_the_api_exists(helm, args, rendered):
    kinds = by_kind(template(helm, *REQUIRED, *args))
    assert ("PodMonitor" in kinds) == rendered


def test_podmonitor_scrapes_the_schedulers_metrics_and_not_the_workers(helm):
    docs = template(helm, *REQUIRED, "--set", "metrics.podMonitor.enabled=true", "--set",
                    "metrics.podMonitor.labels.release=prometheus", *PODMONITOR_API)
    monitor = by_kind(docs)["PodMonitor"][0]
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["podMetricsEndpoints"] == [{"port": "http-dashboard", "path": "/metrics", "interval": "15s"}]
    cluster = chart.driver_daskcluster(docs)
    assert chart.podmonitor_problems(monitor, cluster) == []
    monitor["spec"]["selector"]["matchLabels"] = {"app.kubernetes.io/part-of": "posts-pipeline"}
    monitor["spec"]["podMetricsEndpoints"][0]["port"] = "metrics"
    found = chart.podmonitor_problems(monitor, cluster)
    assert any("selects the worker pods too" in p for p in found) and any("'metrics'" in p for p in found)


def test_pushgateway_reaches_the_drivers_settings(helm):
    docs = template(helm, *REQUIRED, "--set", "metrics.pushgateway=http://pushgateway.monitoring:9091")
    cfg = yaml.safe_load(by_kind(docs)["ConfigMap"][0]["data"]["pipeline.yaml"])["posts-pipeline"]
    assert cfg["metrics"] == {"pushgateway": "http://pushgateway.monitoring:9091", "job": "posts-posts-pipeline"}
    cfg = yaml.safe_load(by_kind(template(helm, *REQUIRED))["ConfigMap"][0]["data"]["pipeline.yaml"])
    assert cfg["posts-pipeline"]["metrics"]["pushgateway"] is None


def test_gpu_values_reach_the_worker_pods_the_driver_creates(helm):
    """ci/gpu-values.yaml → ConfigMap → the driver's settings → the DaskCluster's worker pods (not the scheduler's)."""
    cluster = chart.driver_daskcluster(template(helm, "-f", str(CHART / "ci" / "gpu-values.yaml")))
    worker, scheduler = cluster["spec"]["worker"]["spec"], cluster["spec"]["scheduler"]["spec"]
    assert worker["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert worker["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert worker["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert "nodeSelector" not in scheduler and "tolerations" not in scheduler
