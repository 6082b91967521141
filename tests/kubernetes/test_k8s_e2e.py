"""End to end on the kind cluster (issue 4's acceptance list), run by `make e2e-k8s`:

namespace enforcing the restricted Pod Security Standard → moto's S3 server in the cluster with a
generated Posts.xml → the operator (helm/install-operator.sh) and the application chart (helm install)
→ `helm test` → `kubectl create job --from=cronjob/...` runs whose results equal a LocalCluster's →
a worker pod deleted mid-run → a wrong credential failing clearly with nothing left behind →
a run started by `helm install` (run.onInstall) → `helm upgrade` and `helm rollback` → the scheduler's
Prometheus metrics scraped through its Service during a run → `kubectl auth can-i` of the driver's
ServiceAccount → `helm uninstall` leaving nothing.
Timings (job creation → first worker running, total) are printed and written to
.tools/e2e-k8s-timings.json.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from pathlib import Path

import pytest
import yaml

from support import (
    Kubectl,
    S3Store,
    assert_same_results,
    chart,
    create_pipeline_user,
    generate_dump,
    moto_answers,
    reference_report,
    run,
    wait_for,
)

pytestmark = pytest.mark.kind

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / ".tools" / "bin"
IMAGES = ("posts-pipeline", "posts-pipeline-operator", "posts-pipeline-test")
BUCKET, S3_PORT, RELEASE = "posts", 5000, "posts"
FULLNAME = f"{RELEASE}-posts-pipeline"
SA = FULLNAME
BLOCKSIZE = "4MiB"
DUMP_SIZE = "24MB"
TIMINGS: dict = {}
SUBMITTED: list[str] = []


class K(Kubectl):
    """kubectl and helm in the test's namespace."""

    def helm(self, *args, check=True, timeout=600):
        return run([TOOLS / "helm", "--kubeconfig", self.kubeconfig, "-n", self.namespace, *args], check=check,
                   timeout=timeout)


# ------------------------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def images() -> dict[str, str]:
    """The project images in the kind cluster's registry (`make kind-up` pushes them; the nodes pull them)."""
    found = chart.pushed()["images"]
    missing = [name for name in IMAGES if name not in found]
    assert not missing, f"not in the kind registry: {missing} (docker/build-image.sh --test, then make kind-up)"
    return found


@pytest.fixture(scope="module")
def operator(kubectl, images):
    env = {**os.environ, "KUBECONFIG": kubectl.kubeconfig, "HELM": str(TOOLS / "helm"), "KUBECTL": kubectl.binary,
           "PYTHON": str(REPO / ".venv" / "bin" / "python")}
    repository, tag = images["posts-pipeline-operator"].rsplit(":", 1)
    t = time.monotonic()
    run(["bash", REPO / "helm" / "install-operator.sh", "--image", repository, "--tag", tag], env=env, timeout=600)
    TIMINGS["operator_install_s"] = round(time.monotonic() - t, 1)


@pytest.fixture(scope="module")
def k(kubectl, operator):
    """A namespace where the API server enforces the restricted Pod Security Standard; deleted afterwards."""
    ns = f"posts-e2e-{uuid.uuid4().hex[:6]}"
    kk = K(kubectl.binary, kubectl.kubeconfig, ns)
    kk("create", "namespace", ns, namespaced=False)
    kk("label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted",
       "pod-security.kubernetes.io/enforce-version=latest", namespaced=False)
    yield kk
    kk("delete", "namespace", ns, "--wait=false", check=False, namespaced=False)


S3_MANIFEST = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: s3, labels: {app: s3}}
spec:
  replicas: 1
  selector: {matchLabels: {app: s3}}
  template:
    metadata: {labels: {app: s3}}
    spec:
      automountServiceAccountToken: false
      securityContext: {runAsNonRoot: true, runAsUser: 1000, seccompProfile: {type: RuntimeDefault}}
      containers:
        - name: moto
          image: posts-pipeline-test:latest
          imagePullPolicy: IfNotPresent
          args: [python, -m, moto.server, -H, 0.0.0.0, -p, "5000"]
          env:
            - {name: PYTHONPATH, value: /opt/test-extras}
            - {name: INITIAL_NO_AUTH_ACTION_COUNT, value: "3"}  # support.MOTO_ENV
          ports: [{containerPort: 5000}]
          readinessProbe: {tcpSocket: {port: 5000}, periodSeconds: 1}
          resources: {requests: {cpu: 100m, memory: 256Mi}, limits: {cpu: "1", memory: 1Gi}}
          securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}, readOnlyRootFilesystem: true}
          volumeMounts: [{name: tmp, mountPath: /tmp}]
      volumes: [{name: tmp, emptyDir: {}}]
---
apiVersion: v1
kind: Service
metadata: {name: s3}
spec:
  selector: {app: s3}
  ports: [{port: 5000, targetPort: 5000}]
"""


@pytest.fixture(scope="module")
def dump(tmp_path_factory) -> Path:
    return generate_dump(tmp_path_factory.mktemp("k8s-dump") / "Posts.xml", DUMP_SIZE, 4)


@pytest.fixture(scope="module")
def s3(k, dump, images):
    """moto's S3 server in the namespace (auth on), reached from here through kubectl port-forward;
    a bucket with the dump; the pipeline's key in a Secret."""
    k.apply(S3_MANIFEST.replace("posts-pipeline-test:latest", images["posts-pipeline-test"]))
    k("rollout", "status", "deployment/s3", "--timeout=300s", timeout=320)
    with k.port_forward("svc/s3", S3_PORT, moto_answers) as endpoint:
        # moto reads a dotted Host (s3.<ns>.svc) as a virtual-hosted bucket: pods use the short name
        server = S3Store(endpoint, *create_pipeline_user(endpoint), pipeline_endpoint=f"http://s3:{S3_PORT}",
                         bucket=BUCKET)
        server.client().create_bucket(Bucket=BUCKET)
        server.client().upload_file(str(dump), BUCKET, "Posts.xml")
        k("create", "secret", "generic", "s3-creds", f"--from-literal=AWS_ACCESS_KEY_ID={server.key}",
          f"--from-literal=AWS_SECRET_ACCESS_KEY={server.secret}")
        yield server


@pytest.fixture(scope="module")
def reference(dump, tmp_path_factory) -> dict:
    return reference_report(dump, tmp_path_factory.mktemp("k8s-reference") / "run", BLOCKSIZE)


def chart_values(s3: S3Store, secret: str) -> list[str]:
    return ["--set", f"s3.existingSecret={secret}",
            "--set", f"s3.endpointUrl={s3.pipeline_endpoint}",
            "--set", f"run.input=s3://{BUCKET}/Posts.xml", "--set", f"run.outputPrefix=s3://{BUCKET}/runs",
            "--set", "dask.workers=2", "--set", "dask.startTimeout=4m",
            "--set-json", f'run.extraArgs=["--blocksize","{BLOCKSIZE}","--no-progress"]',
            "--set", "dask.workerResources.requests.cpu=250m", "--set", "dask.workerResources.requests.memory=768Mi"]


@contextlib.contextmanager
def other_release(k, s3, name: str, *settings: str, secret: str = "s3-creds"):
    """A second release of the chart (without its helm tests) for one test; yields its CronJob's name."""
    k.helm("install", name, *chart.install_source(), *chart_values(s3, secret), "--set", "tests.enabled=false",
           *settings, "--wait", "--timeout", "3m")
    try:
        yield f"{name}-posts-pipeline"
    finally:
        k.helm("uninstall", name, "--wait", check=False)


@pytest.fixture(scope="module")
def release(k, s3):
    t = time.monotonic()
    k.helm("install", RELEASE, *chart.install_source(), *chart_values(s3, "s3-creds"),
           "--wait", "--timeout", "5m")
    TIMINGS["helm_install_s"] = round(time.monotonic() - t, 1)
    yield RELEASE
    k.helm("uninstall", RELEASE, "--wait", check=False)


def pods(k, selector: str) -> list[dict]:
    return k.json("get", "pods", "-l", selector)["items"]


def running(pod: dict) -> bool:
    return any("running" in (cs.get("state") or {}) for cs in pod["status"].get("containerStatuses") or [])


def job_state(k, name: str) -> str | None:
    status = k.json("get", "job", name).get("status") or {}
    for cond in status.get("conditions") or []:
        if cond["type"] in ("Complete", "Failed", "SuccessCriteriaMet", "FailureTarget") and cond["status"] == "True":
            return {"SuccessCriteriaMet": "Complete", "FailureTarget": "Failed"}.get(cond["type"], cond["type"])
    return None


def live_workers(k) -> list[dict]:
    """Running worker pods of existing DaskClusters (not those of a cluster being deleted)."""
    alive = set(daskclusters(k))
    return [p for p in pods(k, "dask.org/component=worker") if running(p) and not p["metadata"].get("deletionTimestamp")
            and p["metadata"]["labels"].get("dask.org/cluster-name") in alive]


def wait_first_worker(k, run: str, timeout: float = 600) -> list[dict]:
    """Running worker pods, as soon as there is one; fails at once with the log if the run ends first."""
    def check():
        workers = live_workers(k)
        if not workers and job_state(k, run):
            raise AssertionError(f"job {run} ended ({job_state(k, run)}) before a worker ran:\n{job_logs(k, run)}")
        return workers
    return wait_for(check, timeout, f"a running Dask worker for {run}", interval=0.5)


def submit(k, run: str, cronjob: str = FULLNAME) -> float:
    k("create", "job", f"--from=cronjob/{cronjob}", run)
    SUBMITTED.append(run)
    return time.monotonic()


@pytest.fixture(autouse=True)
def stop_runs_of_failed_tests(request):
    """A failed test deletes the runs it started (their drivers then delete their Dask clusters),
    so that the next test starts from a namespace without Dask clusters."""
    SUBMITTED.clear()
    yield
    report = getattr(request.node, "rep_call", None)
    if SUBMITTED and (report is None or report.failed) and "k" in request.fixturenames:
        k = request.getfixturevalue("k")
        for run in SUBMITTED:
            k("delete", "job", run, "--wait=false", check=False)
        try:
            wait_for(lambda: not daskclusters(k) and not pods(k, "dask.org/component=worker"), 180, "cleanup")
        except AssertionError:
            k("delete", "daskclusters", "--all", check=False)


def wait_job(k, run: str, timeout: float = 1200) -> str:
    state = wait_for(lambda: job_state(k, run), timeout, f"job {run} to finish", interval=2)
    return state


def job_logs(k, run: str) -> str:
    return k("logs", f"job/{run}", "--tail=-1", check=False)


def daskclusters(k) -> list[str]:
    return [d["metadata"]["name"] for d in k.json("get", "daskclusters")["items"]]


def save_timings():
    print("timings:", json.dumps(TIMINGS))
    (REPO / ".tools").mkdir(exist_ok=True)
    (REPO / ".tools" / "e2e-k8s-timings.json").write_text(json.dumps(TIMINGS, indent=2) + "\n")


# ------------------------------------------------------------------------------------------- the tests, in order

def test_helm_test_checks_permissions_and_s3(k, release):
    # Succeeded test pods are deleted (hook-succeeded), failed ones stay for `kubectl logs`.
    proc = k.helm("test", release, "--timeout", "5m", check=False)
    failed = [p["metadata"]["name"] for p in pods(k, "app.kubernetes.io/component=test")]
    logs = {p: k("logs", p, check=False) for p in failed}
    assert proc.returncode == 0, proc.stdout + proc.stderr + json.dumps(logs, indent=1)
    assert proc.stdout.count("Phase:          Succeeded") == 2, proc.stdout


def test_kubectl_job_results_equal_local_cluster(k, release, s3, reference):
    t0 = submit(k, "run-1")
    wait_first_worker(k, "run-1")
    TIMINGS["run1_job_to_first_worker_s"] = round(time.monotonic() - t0, 1)
    state = wait_job(k, "run-1")
    TIMINGS["run1_total_s"] = round(time.monotonic() - t0, 1)
    out = job_logs(k, "run-1")
    save_timings()
    assert state == "Complete", out
    assert "dashboard:" in out and "kubectl port-forward" in out
    got = s3.report("runs/run-1")
    assert_same_results(got, reference)
    assert s3.secret not in out and s3.secret not in json.dumps(got)
    wait_for(lambda: not daskclusters(k) and not pods(k, "dask.org/component=worker"), 120,
             "the run's DaskCluster and its pods to be deleted")


def test_warm_run_timing_and_worker_pod_deleted_mid_run(k, release, s3, reference):
    t0 = submit(k, "run-2")
    wait_first_worker(k, "run-2")
    TIMINGS["run2_warm_job_to_first_worker_s"] = round(time.monotonic() - t0, 1)
    # As soon as both workers compute, take one away: the operator replaces it and Dask recomputes.
    # (Once both are up, this dump takes only seconds: waiting longer can miss the run.)
    wait_for(lambda: len(live_workers(k)) >= 2, 300, "two workers")
    time.sleep(2)
    running = live_workers(k)
    too_small = "the run finished before a worker could be deleted: use a larger dump"
    assert running and job_state(k, "run-2") is None, too_small
    k("delete", "pod", running[0]["metadata"]["name"], "--wait=false")
    assert job_state(k, "run-2") is None, "the run finished before the worker was deleted: use a larger dump"
    TIMINGS["run2_worker_deleted_after_s"] = round(time.monotonic() - t0, 1)
    state = wait_job(k, "run-2")
    TIMINGS["run2_total_s"] = round(time.monotonic() - t0, 1)
    save_timings()
    assert state == "Complete", job_logs(k, "run-2")
    assert_same_results(s3.report("runs/run-2"), reference)
    wait_for(lambda: not daskclusters(k) and not pods(k, "dask.org/component=worker"), 120,
             "the run's DaskCluster and its pods to be deleted")



def assert_only_the_failed_log(s3, run: str, cause: str) -> None:
    """A failed run left no part of a result, only its driver's log beside where the result would be."""
    assert s3.keys(run) == [f"{run}.failed-driver.log"], s3.keys(run)
    log = s3.client().get_object(Bucket=s3.bucket, Key=f"{run}.failed-driver.log")["Body"].read().decode()
    assert "the run failed" in log and cause in log, log[-2000:]

def test_wrong_credential_fails_clearly_and_leaves_nothing(k, release, s3):
    k("create", "secret", "generic", "s3-wrong", f"--from-literal=AWS_ACCESS_KEY_ID={s3.key}",
      "--from-literal=AWS_SECRET_ACCESS_KEY=wrong-secret")
    with other_release(k, s3, "bad", secret="s3-wrong") as cronjob:
        submit(k, "bad-1", cronjob=cronjob)
        state = wait_job(k, "bad-1", timeout=600)
        out = job_logs(k, "bad-1")
        assert state == "Failed", out
        assert "posts-pipeline: error:" in out, out
        assert "Traceback" not in out
        assert "wrong-secret" not in out
        assert not daskclusters(k)
        assert s3.keys("runs/bad-1") == []


def test_unpullable_image_fails_with_the_cause_within_the_timeout(k, release, s3):
    with other_release(k, s3, "badimg", "--set", "dask.startTimeout=90s",
                       "--set", "config.cluster.kubernetes.image=posts-pipeline:no-such-tag") as cronjob:
        t0 = submit(k, "badimg-1", cronjob=cronjob)
        state = wait_job(k, "badimg-1", timeout=400)
        TIMINGS["unpullable_image_failure_s"] = round(time.monotonic() - t0, 1)
        out = job_logs(k, "badimg-1")
        assert state == "Failed", out
        assert "posts-pipeline:no-such-tag" in out and "cannot be pulled" in out, out
        wait_for(lambda: not daskclusters(k), 60, "no DaskCluster left after the failed start")
        assert_only_the_failed_log(s3, "runs/badimg-1", "cannot be pulled")


def test_adaptive_run_with_dask_autoscaler(k, release, s3, reference):
    """--adapt MIN:MAX: the driver creates a DaskAutoscaler; the run completes with the same results."""
    with other_release(k, s3, "adapt", "--set", "dask.adapt=1:2") as cronjob:
        t0 = submit(k, "adapt-1", cronjob=cronjob)
        wait_first_worker(k, "adapt-1")
        wait_for(lambda: k.json("get", "daskautoscalers")["items"] or job_state(k, "adapt-1"), 120, "a DaskAutoscaler")
        state = wait_job(k, "adapt-1")
        TIMINGS["adaptive_run_total_s"] = round(time.monotonic() - t0, 1)
        assert state == "Complete", job_logs(k, "adapt-1")
        assert_same_results(s3.report("runs/adapt-1"), reference)
        wait_for(lambda: not daskclusters(k) and not k.json("get", "daskautoscalers")["items"], 120,
                 "the DaskCluster and its DaskAutoscaler to be deleted")


def test_rbac_denied_is_named(k, release, s3):
    """Without the chart's Role the driver is refused by the API server: one message naming RBAC."""
    with other_release(k, s3, "norbac", "--set", "rbac.create=false") as cronjob:
        submit(k, "norbac-1", cronjob=cronjob)
        state = wait_job(k, "norbac-1", timeout=300)
        out = job_logs(k, "norbac-1")
        assert state == "Failed", out
        assert "permission denied by the Kubernetes API (RBAC)" in out and "Traceback" not in out, out
        assert not daskclusters(k)


def test_deleting_a_running_job_deletes_its_dask_cluster_and_partial_output(k, release, s3):
    submit(k, "run-3")
    wait_first_worker(k, "run-3")
    time.sleep(5)
    t0 = time.monotonic()
    k("delete", "job", "run-3", "--wait=false")  # the driver gets SIGTERM
    wait_for(lambda: not daskclusters(k) and not pods(k, "dask.org/component=worker"), 180,
             "the DaskCluster and its pods to go after SIGTERM")
    TIMINGS["sigterm_to_cluster_gone_s"] = round(time.monotonic() - t0, 1)
    save_timings()
    wait_for(lambda: s3.keys("runs/run-3/") == [], 60, "the interrupted run's partial output to be removed")
    assert_only_the_failed_log(s3, "runs/run-3", "Interrupted")


def test_run_on_install_completes_and_a_helm_upgrade_turning_it_off_keeps_its_results(k, release, s3, reference):
    """run.onInstall: `helm install` itself starts a run (the release's Job <fullname>-install), whose results
    land in the object store; the upgrade that turns it off (as values.yaml says to before changing run
    settings) succeeds, takes the finished Job out of the release and leaves its results alone."""
    with other_release(k, s3, "oninstall", "--set", "run.onInstall=true") as cronjob:
        job = f"{cronjob}-install"
        SUBMITTED.append(job)
        t0 = time.monotonic()
        state = wait_job(k, job)
        TIMINGS["run_on_install_total_s"] = round(time.monotonic() - t0, 1)
        save_timings()
        assert state == "Complete", job_logs(k, job)
        assert_same_results(s3.report(f"runs/{job}"), reference)
        wait_for(lambda: not daskclusters(k), 120, "the install run's DaskCluster to be deleted")
        k.helm("upgrade", "oninstall", *chart.install_source(), *chart_values(s3, "s3-creds"),
               "--set", "tests.enabled=false", "--set", "run.onInstall=false", "--set", "dask.workers=1",
               "--wait", "--timeout", "3m")
        wait_for(lambda: job not in [j["metadata"]["name"] for j in k.json("get", "jobs")["items"]], 120,
                 "the install Job to leave the release")
        assert_same_results(s3.report(f"runs/{job}"), reference)  # the finished run's results stay


def helm_status(k, name: str) -> dict:
    return json.loads(k.helm("status", name, "-o", "json").stdout)


def test_helm_upgrade_changes_schedule_arguments_and_settings_and_rollback_restores_them(k, release, s3, reference):
    """`helm upgrade` with other values: the CronJob's schedule and arguments and the ConfigMap change, the next
    run uses them (--top 5: five top tags, the reference's first five), the release is deployed at revision 2;
    `helm rollback` brings revision 1's values back."""
    with other_release(k, s3, "upgrade") as cronjob:
        before = k.json("get", "cronjob", cronjob)
        assert before["spec"]["schedule"] == "0 0 1 1 *"
        k.helm("upgrade", "upgrade", *chart.install_source(), *chart_values(s3, "s3-creds"),
               "--set", "tests.enabled=false", "--set", "run.schedule=30 2 * * *", "--set", "dask.workers=1",
               "--set-json", f'run.extraArgs=["--blocksize","{BLOCKSIZE}","--no-progress","--top","5"]',
               "--wait", "--timeout", "3m")
        status = helm_status(k, "upgrade")
        assert (status["info"]["status"], status["version"]) == ("deployed", 2)
        after = k.json("get", "cronjob", cronjob)
        assert after["spec"]["schedule"] == "30 2 * * *" and after["spec"]["suspend"] is True
        args = after["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"]
        assert args[-2:] == ["--top", "5"]
        config_map = yaml.safe_load(k.json("get", "configmap", cronjob)["data"]["pipeline.yaml"])
        assert config_map["posts-pipeline"]["cluster"]["kubernetes"]["n-workers"] == 1
        submit(k, "upgraded-1", cronjob=cronjob)
        state = wait_job(k, "upgraded-1")
        assert state == "Complete", job_logs(k, "upgraded-1")
        got = s3.report("runs/upgraded-1")
        assert got["counts"]["questions"] == reference["counts"]["questions"]
        assert got["top_tags"] == reference["top_tags"][:5]
        assert got["cooccurrence"]["top"] == reference["cooccurrence"]["top"][:5]
        wait_for(lambda: not daskclusters(k), 120, "the upgraded run's DaskCluster to be deleted")
        k.helm("rollback", "upgrade", "1", "--wait", "--timeout", "3m")
        rolled = k.json("get", "cronjob", cronjob)
        assert rolled["spec"]["schedule"] == "0 0 1 1 *"
        assert "--top" not in rolled["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"]
        assert helm_status(k, "upgrade")["info"]["status"] == "deployed"


# Run in the driver's container (the project image): GET a URL, print the body.
SCRAPE = "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())"


def test_the_schedulers_metrics_are_scraped_through_its_service_during_a_run(k, release, s3):
    """From a pod (the run's driver) through the scheduler's Service, as Prometheus would: Dask's real metrics
    (prometheus_client is in the image), with the run's client and its workers in them."""
    from prometheus_client.parser import text_string_to_metric_families

    submit(k, "metrics-1")

    def scheduler_ready():
        ready = [p for p in pods(k, "dask.org/component=scheduler") if not p["metadata"].get("deletionTimestamp")
                 and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or [])]
        if not ready and job_state(k, "metrics-1"):
            raise AssertionError(f"metrics-1 ended before its scheduler was ready:\n{job_logs(k, 'metrics-1')}")
        return ready

    scheduler = wait_for(scheduler_ready, 600, "the run's scheduler to be ready")[0]
    cluster = scheduler["metadata"]["labels"]["dask.org/cluster-name"]
    url = f"http://{cluster}-scheduler.{k.namespace}:8787/metrics"
    scrapes = []

    def scrape_with_a_worker():
        proc = k.run("exec", "job/metrics-1", "-c", "driver", "--", "python", "-c", SCRAPE, url, check=False)
        if proc.returncode:
            if job_state(k, "metrics-1"):
                raise AssertionError(f"the run ended before a scrape showed a worker; scrapes: {scrapes}")
            return None
        got = {(s.name, s.labels.get("state")): s.value
               for family in text_string_to_metric_families(proc.stdout) for s in family.samples}
        scrapes.append(got)
        workers = sum(v for (name, _), v in got.items() if name == "dask_scheduler_workers")
        return got if workers >= 1 else None

    got = wait_for(scrape_with_a_worker, 300, f"a scrape of {url} that counts a worker", interval=1)
    assert got[("dask_scheduler_clients", None)] >= 1  # the driver's client
    assert any(name == "dask_scheduler_tasks" for name, _ in got)
    service = k.json("get", "service", f"{cluster}-scheduler")
    assert {"name": "http-dashboard", "port": 8787} in [{"name": p["name"], "port": p["port"]}
                                                         for p in service["spec"]["ports"]]
    # The chart's PodMonitor (kind has no prometheus-operator: rendered here) selects this scheduler pod, no other.
    docs = chart.render(str(TOOLS / "helm"), [], extra=[
        *chart.OPTIONAL_APIS, "--set", "metrics.podMonitor.enabled=true",
        "--set", "run.input=s3://posts/Posts.xml", "--set", "run.outputPrefix=s3://posts/runs"])
    selector = next(d for d in docs if d["kind"] == "PodMonitor")["spec"]["selector"]["matchLabels"]
    selected = pods(k, ",".join(f"{key}={value}" for key, value in selector.items()))
    assert [p["metadata"]["name"] for p in selected] == [scheduler["metadata"]["name"]]
    assert wait_job(k, "metrics-1") == "Complete", job_logs(k, "metrics-1")
    wait_for(lambda: not daskclusters(k), 120, "the run's DaskCluster to be deleted")


@pytest.mark.parametrize("verb, resource, namespace, allowed", [
    ("create", "daskclusters.kubernetes.dask.org", None, True),
    ("delete", "daskclusters.kubernetes.dask.org", None, True),
    ("create", "daskautoscalers.kubernetes.dask.org", None, True),
    ("get", "pods", None, True),
    ("list", "resourcequotas", None, True),
    ("get", "secrets", None, False),
    ("list", "secrets", None, False),
    ("create", "pods", None, False),
    ("create", "pods/exec", None, False),
    ("create", "deployments.apps", None, False),
    ("create", "daskclusters.kubernetes.dask.org", "default", False),
    ("list", "pods", "kube-system", False),
    ("get", "secrets", "kube-system", False),
    ("create", "rolebindings.rbac.authorization.k8s.io", None, False),
])
def test_driver_service_account_can_only_what_kubecluster_needs(k, release, verb, resource, namespace, allowed):
    where = namespace or k.namespace
    proc = k.run("auth", "can-i", verb, resource, "-n", where, f"--as=system:serviceaccount:{k.namespace}:{SA}",
                 check=False, namespaced=False)
    assert proc.stdout.strip() == ("yes" if allowed else "no"), proc.stdout + proc.stderr


def test_helm_uninstall_leaves_nothing(k, release, s3):
    k.helm("uninstall", release, "--wait", "--timeout", "3m")
    kinds = "all,configmaps,secrets,serviceaccounts,roles,rolebindings,cronjobs,jobs,daskclusters,daskworkergroups"

    def gone():
        left = k.json("get", kinds, "-l", f"app.kubernetes.io/instance={release}")["items"]
        # runs created with kubectl are owned by the CronJob
        runs = [j["metadata"]["name"] for j in k.json("get", "jobs")["items"]]
        return not left and not runs and not daskclusters(k)

    wait_for(gone, 180, "the release, its runs and their Dask clusters to be gone", interval=2)
    secrets = [s["metadata"]["name"] for s in k.json("get", "secrets")["items"]]
    assert set(secrets) <= {"s3-creds", "s3-wrong"}  # only what the test itself created
