"""The DaskCluster the driver creates: valid for the CRD, restricted, credentials by reference only;
start-up failures named within a bounded time and the DaskCluster deleted whatever happens."""

from __future__ import annotations

import json
import logging
from contextlib import contextmanager

import pytest
from kubernetes.client.rest import ApiException

from pipeline import cli, config, output
from pipeline import settings as pipeline_settings
from pipeline.errors import PipelineError
from pipeline.k8s import diagnosis, lifecycle
from pipeline.k8s.spec import cluster_name, cluster_spec, owner_reference
from pipeline.settings import KubernetesSettings

from support import chart as check  # the offline checks of `make chart-lint`


def settings(**over) -> KubernetesSettings:
    """The cluster.kubernetes settings with ``over`` (kebab keys) applied, checked as a run checks them."""
    s = dict(config.get("cluster.kubernetes"))
    s.update(over)
    return pipeline_settings.section(KubernetesSettings, s)


def pods_of(spec: dict) -> dict:
    return {part: spec["spec"][part]["spec"] for part in ("scheduler", "worker")}


@pytest.mark.parametrize("over", [
    {},
    {"adapt": "1:4", "env-from-secrets": ["s3-creds"], "secret-env": {"TOKEN_X": "other/key"}},
    {"n-workers": 0, "read-only-root-filesystem": False, "service-account": "dask", "image-pull-secrets": ["reg"]},
])
def test_spec_validates_against_the_crd_schema_shipped_in_dask_kubernetes(over):
    spec = cluster_spec(settings(**over), "posts-abc", environ={})
    assert check.validate_daskcluster(spec) == []
    assert spec["metadata"]["name"] == "posts-abc"


def test_crd_validation_catches_mistakes():
    spec = cluster_spec(settings(), "posts-abc", environ={})
    spec["spec"]["worker"]["spec"]["containers"][0]["securityContxt"] = {}
    spec["spec"]["worker"]["replicas"] = "two"
    errors = check.validate_daskcluster(spec)
    assert any("securityContxt" in e for e in errors) and any("replicas" in e for e in errors)


def test_dask_pods_are_valid_pods_for_the_cluster_version(kubernetes_version):
    pytest.importorskip("kubernetes_validate", reason="kubernetes-validate belongs in requirements/test-lock.txt")
    spec = cluster_spec(settings(**{"env-from-secrets": ["s3-creds"]}), "posts-abc", environ={})
    for where, pod in check.pod_specs(spec):
        doc = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "spec": pod}
        assert check.validate_manifest(doc, kubernetes_version) == [], where


def test_restricted_security_on_scheduler_and_workers():
    spec = cluster_spec(settings(), "posts-abc", environ={})
    for part, pod in pods_of(spec).items():
        assert check.restricted_violations(part, pod) == []
        c = pod["containers"][0]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert c["securityContext"]["allowPrivilegeEscalation"] is False
        assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]  # Dask's scratch space
        assert pod["automountServiceAccountToken"] is False  # Dask pods never call the API
        assert c["resources"]["limits"] and c["resources"]["requests"]
    worker = spec["spec"]["worker"]["spec"]["containers"][0]
    assert worker["args"][:4] == ["dask", "worker", "--nthreads", "1"]
    assert spec["spec"]["scheduler"]["spec"]["containers"][0]["args"][:2] == ["dask", "scheduler"]


def test_credentials_only_by_reference():
    environ = {"AWS_ACCESS_KEY_ID": "AKIADRIVER", "AWS_SECRET_ACCESS_KEY": "driver-secret-value",
               "POSTS_PIPELINE__STORAGE_OPTIONS__ENDPOINT_URL": "http://s3.test:5000"}
    spec = cluster_spec(settings(**{"env-from-secrets": ["s3-creds"], "secret-env": {"EXTRA_TOKEN": "tok/value"}}),
                                   "posts-abc", environ=environ)
    text = json.dumps(spec)
    assert "driver-secret-value" not in text and "AKIADRIVER" not in text
    for pod in pods_of(spec).values():
        c = pod["containers"][0]
        assert c["envFrom"] == [{"secretRef": {"name": "s3-creds"}}]
        env = {e["name"]: e for e in c["env"]}
        assert env["POSTS_PIPELINE__STORAGE_OPTIONS__ENDPOINT_URL"]["value"] == "http://s3.test:5000"
        assert env["EXTRA_TOKEN"] == {"name": "EXTRA_TOKEN",
                                      "valueFrom": {"secretKeyRef": {"name": "tok", "key": "value"}}}
        assert all("value" not in e for e in c["env"] if pipeline_settings.SECRET_NAME.search(e["name"]))


@pytest.mark.parametrize("over", [
    {"env": {"AWS_SECRET_ACCESS_KEY": "s3cr3t-value"}},
    {"env": {"DB_PASSWORD": "s3cr3t-value"}},
    {"forward-env": ["AWS_SECRET_ACCESS_KEY"]},
])
def test_literal_credentials_are_refused_with_the_settings(over):
    with pytest.raises(PipelineError, match="looks like a credential.*Secret") as refused:
        settings(**over)
    assert "s3cr3t-value" not in str(refused.value)  # the value itself is never shown


def test_a_forwarded_url_with_a_password_is_refused():
    environ = {"POSTS_PIPELINE__STORAGE_OPTIONS__ENDPOINT_URL": "http://admin:hunter2@s3.test:5000"}
    with pytest.raises(PipelineError, match="URL with a user and password.*secret-env") as refused:
        cluster_spec(settings(), "posts-abc", environ=environ)
    assert "hunter2" not in str(refused.value)


def test_the_spec_takes_the_configs_mapping_checked_the_same_way():
    """support.chart (`make chart-lint`) passes the chart's config as a mapping: it is checked like a run's."""
    raw = {**config.get("cluster.kubernetes"), "threads-per-worker": 0}
    with pytest.raises(PipelineError, match="cluster.kubernetes.threads-per-worker must be an integer ≥ 1, not 0"):
        cluster_spec(raw, "posts-abc", environ={})


def test_owner_reference_from_the_driver_pod():
    owner = owner_reference({"POSTS_PIPELINE_POD_NAME": "run-1-x", "POSTS_PIPELINE_POD_UID": "u-1"})
    spec = cluster_spec(settings(), "posts-abc", owner=owner, environ={})
    assert spec["metadata"]["ownerReferences"] == [{"apiVersion": "v1", "kind": "Pod", "name": "run-1-x", "uid": "u-1"}]
    assert owner_reference({}) is None


def test_adapt_and_idle_timeout():
    spec = cluster_spec(settings(adapt="2:5", **{"idle-timeout": "10m"}), "posts-abc", environ={})
    assert spec["spec"]["worker"]["replicas"] == 2
    assert spec["spec"]["idleTimeout"] == 600
    assert settings(adapt=None).adapt is None and settings(adapt=" 0 : 3 ").adapt == (0, 3)
    for bad in ("3", "4:2", "0:0", "a:b"):
        with pytest.raises(PipelineError, match=f"cluster.kubernetes.adapt must be MIN:MAX.*not '{bad}'"):
            settings(adapt=bad)


def test_the_scheduler_service_exposes_the_dashboard_port_that_serves_metrics():
    """Prometheus (and the chart's PodMonitor, by port name) reaches /metrics on the scheduler's dashboard port."""
    scheduler = cluster_spec(settings(), "posts-abc", environ={})["spec"]["scheduler"]
    container_ports = {p["name"]: p["containerPort"] for p in scheduler["spec"]["containers"][0]["ports"]}
    service_ports = {p["name"]: (p["port"], p["targetPort"]) for p in scheduler["service"]["ports"]}
    assert container_ports["http-dashboard"] == 8787
    assert service_ports["http-dashboard"] == (8787, "http-dashboard")


GPU = {"worker-resources": {"requests": {"cpu": "2", "memory": "8Gi"},
                             "limits": {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": 1}},
       "worker-node-selector": {"nvidia.com/gpu.present": "true"},
       "worker-tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]}


def test_a_gpu_worker_group_asks_for_gpus_on_gpu_nodes_only(kubernetes_version):
    """Workers get the GPU limit, the node selector and the toleration; the scheduler stays where it was."""
    spec = cluster_spec(settings(**GPU), "posts-abc", environ={})
    worker, scheduler = pods_of(spec)["worker"], pods_of(spec)["scheduler"]
    assert worker["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"  # the CRD takes strings only
    assert worker["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert worker["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert "nodeSelector" not in scheduler and "tolerations" not in scheduler
    assert "nvidia.com/gpu" not in scheduler["containers"][0]["resources"]["limits"]
    assert check.validate_daskcluster(spec) == []
    pytest.importorskip("kubernetes_validate", reason="kubernetes-validate belongs in requirements/test-lock.txt")
    doc = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "spec": worker}
    assert check.validate_manifest(doc, kubernetes_version) == []


def test_workers_go_anywhere_by_default():
    worker = pods_of(cluster_spec(settings(), "posts-abc", environ={}))["worker"]
    assert "nodeSelector" not in worker and "tolerations" not in worker


@pytest.mark.parametrize("over, message", [
    ({"worker-resources": {"limits": {"gpu": 1}}}, "worker-resources.limits must be a mapping of resource names"),
    ({"worker-resources": {"limits": {"nvidia.com/gpu": "one"}}},
     "worker-resources.limits.nvidia.com/gpu must be a Kubernetes quantity"),
    ({"worker-node-selector": {"nvidia.com/gpu.present": True}},
     "worker-node-selector.nvidia.com/gpu.present must be a string, not true"),
    ({"worker-tolerations": [{"key": "nvidia.com/gpu", "operator": "Maybe"}]},
     "worker-tolerations must be a list of Kubernetes tolerations"),
    ({"worker-tolerations": {"key": "nvidia.com/gpu"}}, "worker-tolerations must be a list of Kubernetes tolerations"),
])
def test_gpu_placement_mistakes_are_one_line_naming_the_key(over, message):
    with pytest.raises(PipelineError, match=f"^cluster.kubernetes.{message}"):
        settings(**over)


def test_cluster_names_are_unique_and_valid():
    names = {cluster_name("posts-{uuid}") for _ in range(20)}
    assert len(names) == 20 and all(pipeline_settings.CLUSTER_NAME.match(n) for n in names)
    fixed = cluster_name("My_Run")
    assert fixed.startswith("my-run-") and pipeline_settings.CLUSTER_NAME.match(fixed)
    with pytest.raises(PipelineError, match="at most 40"):
        cluster_name("x" * 50 + "-{uuid}")
    with pytest.raises(PipelineError, match="cluster.kubernetes.name must be .*at most 40"):
        settings(name="x" * 50 + "-{uuid}")  # refused with the settings, before anything is created


def test_cli_flags_reach_the_kubernetes_settings():
    args = cli.parser().parse_args(["run", "--cluster", "kubernetes", "--image", "reg/posts:1", "--namespace", "ns",
                                    "--kube-workers", "3", "--adapt", "1:3", "--env-from-secret", "a",
                                    "--env-from-secret", "b", "--start-timeout", "90s", "--idle-timeout", "5m"])
    config.load(flags={key: getattr(args, dest) for dest, key in cli.RUN_SETTINGS.items()}, environ={})
    k = pipeline_settings.load().cluster.kubernetes
    assert (k.image, k.namespace, k.n_workers, k.adapt) == ("reg/posts:1", "ns", 3, (1, 3))
    assert (k.env_from_secrets, k.start_timeout, k.idle_timeout) == (("a", "b"), 90, 300)
    assert config.get("cluster.kind") == "kubernetes"


# --- start-up failures -------------------------------------------------------------------------

def pod(component, reason=None, message="", ready=False, running=False, image="posts-pipeline:latest", last=None):
    cs = {"image": image, "state": {"waiting": {"reason": reason, "message": message}} if reason else
          ({"running": {"started_at": "2026-01-01T00:00:00Z"}} if running else {}),
          "last_state": {"terminated": last} if last else {}}
    return {"metadata": {"name": f"c-{component}", "namespace": "ns", "labels": {"dask.org/component": component}},
            "status": {"phase": "Running" if running else "Pending", "container_statuses": [cs],
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def test_diagnose_names_the_cause():
    assert diagnosis.diagnose([pod("scheduler", running=True, ready=True)]) is None
    assert "cannot be pulled" in diagnosis.diagnose([pod("worker", "ImagePullBackOff", "not found", image="x:nope")])
    assert "x:nope" in diagnosis.diagnose([pod("worker", "ErrImagePull", image="x:nope")])
    crash = diagnosis.diagnose([pod("scheduler", "CrashLoopBackOff", last={"exit_code": 1, "reason": "Error"})])
    assert "keeps crashing" in crash and "exit code 1" in crash and "kubectl logs" in crash
    missing = diagnosis.diagnose([pod("worker", "CreateContainerConfigError", 'secret "s3-creds" not found')])
    assert 'secret "s3-creds" not found' in missing
    # The kubelet still fetching the Secret is not a cause: the start goes on (and times out if it must).
    assert diagnosis.diagnose([pod("worker", "CreateContainerConfigError",
                                   "failed to sync secret cache: timed out waiting for the condition")]) is None
    refused = diagnosis.diagnose([], [{"type": "Warning", "reason": "FailedCreate", "message": "violates PodSecurity"}])
    assert "violates PodSecurity" in refused


class FakeApi:
    """The driver's Api against a scripted API server; records deletions."""

    in_cluster = False

    def __init__(self, create_error=None, phase="Running", pods=(), raise_in_wait=None, events=(), quotas=(),
                 logs=None):
        self.create_error, self.phase, self._pods, self.raise_in_wait = create_error, phase, list(pods), raise_in_wait
        self._events, self._quotas, self._logs = list(events), list(quotas), dict(logs or {})
        self.created, self.deleted = [], []

    def default_namespace(self):
        return "ns"

    def create(self, spec, namespace):
        if self.create_error:
            raise self.create_error
        self.created.append(spec["metadata"]["name"])

    def get(self, name, namespace):
        if self.raise_in_wait:
            raise self.raise_in_wait
        return {"status": {"phase": self.phase} if self.phase else {}}

    def pods(self, name, namespace):
        return self._pods

    def events(self, name, namespace):
        return self._events

    def quotas(self, namespace):
        return self._quotas

    def log_tail(self, pod, namespace, lines):
        if pod not in self._logs:
            raise api_exception(400, f'container "worker" in pod "{pod}" is waiting to start: ContainerCreating')
        return "\n".join(self._logs[pod].splitlines()[-lines:]) + "\n"

    def delete(self, name, namespace):
        self.deleted.append(name)
        return True

    def exists(self, name, namespace):
        return False


def api_exception(status, message):
    e = ApiException(status=status, reason="x")
    e.body = json.dumps({"message": message})
    return e


@pytest.mark.parametrize("status, message, expected", [
    (404, "the server could not find the requested resource",
     "CRD daskclusters.kubernetes.dask.org missing.*install-operator"),
    (403, 'daskclusters.kubernetes.dask.org is forbidden: User "system:serviceaccount:ns:x" cannot create',
     "permission denied.*RBAC.*cannot create"),
])
def test_create_refused_is_one_clear_message(monkeypatch, status, message, expected):
    fake = FakeApi(create_error=api_exception(status, message))
    monkeypatch.setattr(lifecycle, "Api", lambda: fake)
    with pytest.raises(PipelineError, match=expected):
        with lifecycle.running(settings()):
            pass
    assert fake.created == []


@pytest.mark.parametrize("fake, expected", [
    (FakeApi(phase=None), "within 2 s: the dask-kubernetes operator never acted on it"),
    (FakeApi(pods=[pod("scheduler", "ImagePullBackOff", image="posts-pipeline:nope")]),
     "posts-pipeline:nope.*cannot be pulled"),
    (FakeApi(pods=[pod("scheduler", "CrashLoopBackOff", last={"exit_code": 2})]), "scheduler keeps crashing"),
    (FakeApi(pods=[pod("scheduler", running=True, ready=True), pod("worker")]),
     "within 2 s: scheduler c-scheduler: Running; worker c-worker: Pending"),
])
def test_start_failures_are_bounded_named_and_clean_up(monkeypatch, fake, expected):
    monkeypatch.setattr(lifecycle, "Api", lambda: fake)
    monkeypatch.setattr(lifecycle.time, "sleep", lambda s: None)
    with pytest.raises(PipelineError, match=expected):
        with lifecycle.running(settings(**{"start-timeout": "2s"})):
            pass
    assert fake.deleted == fake.created and len(fake.created) == 1  # no DaskCluster left behind


def test_interrupted_start_deletes_the_daskcluster(monkeypatch):
    fake = FakeApi(raise_in_wait=KeyboardInterrupt("signal 15"))
    monkeypatch.setattr(lifecycle, "Api", lambda: fake)
    with pytest.raises(KeyboardInterrupt):
        with lifecycle.running(settings()):
            pass
    assert fake.deleted == fake.created and len(fake.created) == 1


def test_missing_image_setting():
    with pytest.raises(PipelineError, match="cluster.kubernetes.image must be a non-empty string, not ''"):
        settings(image="")


def test_connect_deletes_the_daskcluster_once_whether_refused_or_done(monkeypatch):
    """cluster.connect on Kubernetes: a refused cluster (here: a version mismatch) is deleted, not left running,
    and a run's cluster is deleted once; the connection (a LocalCluster in place of the KubeCluster) is closed."""
    from distributed import LocalCluster

    from pipeline import cluster as clusters

    connections = []

    @contextmanager
    def kube_cluster(name, namespace, settings):
        with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as local:
            connections.append(local)
            yield local

    fake = FakeApi(pods=[pod("scheduler", running=True, ready=True), pod("worker", running=True)])
    monkeypatch.setattr(lifecycle, "Api", lambda: fake)
    monkeypatch.setattr(lifecycle, "kube_cluster", kube_cluster)
    on_kubernetes = pipeline_settings.section(
        pipeline_settings.ClusterSettings,
        {**config.get("cluster"), "kind": "kubernetes", "connect-timeout": "10s",
         "kubernetes": {**config.get("cluster.kubernetes"), "start-timeout": "2s"}})

    def mismatch(client):
        raise PipelineError("version mismatch between this driver and the cluster")

    monkeypatch.setattr(clusters, "check_versions", mismatch)
    with pytest.raises(PipelineError, match="version mismatch"):
        with clusters.connect(on_kubernetes):
            pass
    assert len(fake.created) == 1 and fake.deleted == fake.created
    assert connections[0].status.name == "closed"
    monkeypatch.setattr(clusters, "check_versions", lambda client: None)
    with clusters.connect(on_kubernetes) as client:
        assert client.submit(sum, [1, 2]).result() == 3
        assert len(fake.created) == 2 and fake.deleted == fake.created[:1]  # not before the run ends
    assert fake.deleted == fake.created  # each deleted exactly once
    assert connections[1].status.name == "closed"


# --- workers held back by a quota; the Dask pods' logs of a failed run -------------------------------

QUOTA_EVENT = {"type": "Warning", "reason": "FailedCreate", "kind": "ReplicaSet", "name": "c-default-worker-1a-5d",
               "message": 'Error creating: pods "c-default-worker-1a-5d-" is forbidden: exceeded quota: pp-quota, '
                          "requested: requests.cpu=250m, used: requests.cpu=1800m, limited: requests.cpu=2"}
QUOTA_SAID = ("exceeded quota pp-quota (requested: requests.cpu=250m, used: requests.cpu=1800m, "
              "limited: requests.cpu=2)")


@contextmanager
def connected(name, namespace, settings):
    yield object()  # in place of the KubeCluster: these tests stop before a client connects


def test_a_run_with_fewer_workers_than_asked_goes_on_and_says_which_quota_holds_the_others(monkeypatch, caplog):
    fake = FakeApi(pods=[pod("scheduler", running=True, ready=True), pod("worker", running=True)],
                   events=[QUOTA_EVENT])
    monkeypatch.setattr(lifecycle, "Api", lambda: fake)
    monkeypatch.setattr(lifecycle, "kube_cluster", connected)
    with caplog.at_level(logging.INFO, logger="pipeline.k8s.lifecycle"):
        with lifecycle.running(settings(**{"n-workers": 2, "start-timeout": "2s"})):
            assert fake.deleted == []
    said = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in said] == [f"1 of 2 workers running: {QUOTA_SAID} — the run goes on with those it "
                                              "has"]
    assert fake.deleted == fake.created


def test_no_worker_within_the_timeout_fails_with_the_quota_and_its_numbers(monkeypatch, caplog):
    fake = FakeApi(pods=[pod("scheduler", running=True, ready=True)], events=[QUOTA_EVENT])
    monkeypatch.setattr(lifecycle, "Api", lambda: fake)
    clock = iter(range(0, 1000, 1))
    monkeypatch.setattr(lifecycle.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(lifecycle.time, "sleep", lambda s: None)
    with caplog.at_level(logging.WARNING, logger="pipeline.k8s.lifecycle"):
        with pytest.raises(PipelineError) as failed:
            with lifecycle.running(settings(**{"start-timeout": "5s"})):
                pass
    assert str(failed.value) == f"Dask cluster {fake.created[0]} did not start a worker within 5 s: {QUOTA_SAID}"
    # said once as soon as seen (it may pass: other pods may end), not at every poll
    assert [r.getMessage() for r in caplog.records] == [
        f"a Dask worker cannot start yet: {QUOTA_SAID} — waiting up to 5 s in all"]
    assert fake.deleted == fake.created


def test_a_failed_run_keeps_each_dask_pods_last_log_lines_in_the_driver_log_redacted(monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="pipeline.k8s.lifecycle")  # as the CLI sets it
    scheduler, worker, waiting = (pod("scheduler", running=True, ready=True), pod("worker", running=True),
                                  pod("worker", "ContainerCreating"))
    waiting["metadata"]["name"] = "c-worker-2"
    logs = {"c-scheduler": "".join(f"scheduler line {i}\n" for i in range(80)),
            "c-worker": "worker started\nreading s3 via http://admin:hunter2@minio:9000/posts\nKilledWorker\n"}
    fake = FakeApi(pods=[worker, waiting, scheduler], logs=logs)
    monkeypatch.setattr(lifecycle, "Api", lambda: fake)
    monkeypatch.setattr(lifecycle, "kube_cluster", connected)
    with output.driver_log() as lines:
        with pytest.raises(ValueError):
            with lifecycle.running(settings(**{"n-workers": 1, "start-timeout": "2s"})):
                raise ValueError("a task failed")
        kept = lines.read(ValueError("a task failed")).decode()
    assert fake.deleted == fake.created
    sections = kept.split("----- last 50 lines of the log of ")
    assert [s.split(" -----")[0] for s in sections[1:]] == ["scheduler pod c-scheduler", "worker pod c-worker",
                                                             "worker pod c-worker-2"]  # scheduler first
    assert "scheduler line 30\n" in sections[1] and "scheduler line 29\n" not in sections[1]  # the last 50
    assert "http://***@minio:9000/posts" in sections[2] and "hunter2" not in kept
    assert '(no log: container "worker" in pod "c-worker-2" is waiting to start: ContainerCreating)' in sections[3]
    assert kept.rstrip().splitlines()[-1].endswith("the run failed: ValueError('a task failed')")
    assert "the last lines of the logs of 3 Dask pods are kept in the driver's log" in kept


def test_pod_logs_are_not_gathered_when_the_run_succeeds_or_is_interrupted(monkeypatch):
    fake = FakeApi(pods=[pod("scheduler", running=True, ready=True), pod("worker", running=True)],
                   logs={"c-scheduler": "s\n", "c-worker": "w\n"})
    monkeypatch.setattr(lifecycle, "Api", lambda: fake)
    monkeypatch.setattr(lifecycle, "kube_cluster", connected)
    with output.driver_log() as lines:
        with lifecycle.running(settings(**{"n-workers": 1})):
            pass
        with pytest.raises(KeyboardInterrupt):
            with lifecycle.running(settings(**{"n-workers": 1})):
                raise KeyboardInterrupt
        assert "-----" not in lines.read().decode()
