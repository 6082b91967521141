"""Kubernetes: Dask workers started by the dask-kubernetes operator for one run.

``start()`` writes a ``DaskCluster`` (the spec comes from dask-kubernetes' ``make_cluster_spec``,
then hardened: restricted pod security, credentials from Secrets by reference only), waits for its
scheduler and first worker while watching for the usual reasons they never come (operator not
installed, RBAC, an image that cannot be pulled, a crash-looping scheduler, a missing Secret), then
hands the running cluster to the operator-based ``KubeCluster`` for the client, scaling and adaptivity.
Whatever happens, the ``DaskCluster`` is deleted on the way out; when the driver runs in a pod it is
also owned by that pod, so Kubernetes removes it even if the driver is killed outright.
"""

from __future__ import annotations

import copy
import logging
import os
import time
import uuid
from collections.abc import Mapping
from pathlib import Path

from pipeline.config import redacted_url
from pipeline.errors import PipelineError
from pipeline.settings import KubernetesSettings, Invalid, section
from pipeline.settings import cluster_name as _cluster_name

log = logging.getLogger(__name__)

GROUP, VERSION, PLURAL = "kubernetes.dask.org", "v1", "daskclusters"
SA_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
PULL_FAILURES = {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull", "RegistryUnavailable"}
CONFIG_FAILURES = {"CreateContainerConfigError", "CreateContainerError", "RunContainerError"}
LABELS = {"app.kubernetes.io/part-of": "posts-pipeline", "app.kubernetes.io/component": "dask"}


# ---------------------------------------------------------------------------------------------
# The spec: pure functions, tested against the CRD schema shipped in dask-kubernetes.

def cluster_name(template: str) -> str:
    """A unique, valid DaskCluster name from a template such as ``posts-{uuid}``."""
    try:
        return _cluster_name(template, uuid.uuid4().hex[:10])
    except Invalid as e:
        raise PipelineError(f"cluster.kubernetes.name must be {e}, not {template!r}") from None


def environment(settings: KubernetesSettings, environ: Mapping | None = None) -> tuple[list[dict], list[dict]]:
    """(env, envFrom) for scheduler and workers: plain values, Secret references, forwarded variables.

    Names that look like credentials were refused with the settings; a forwarded URL that carries a
    user and password is refused here: those come from Secrets only.
    """
    environ = os.environ if environ is None else environ
    env: list[dict] = [{"name": "DASK_TEMPORARY_DIRECTORY", "value": "/tmp"}]
    plain = {name: environ[name] for name in settings.forward_env if name in environ}
    plain.update(settings.env)
    for name, value in plain.items():
        if redacted_url(value) != value:
            raise PipelineError(
                f"{name} is a URL with a user and password: give it from a Kubernetes Secret "
                "(cluster.kubernetes.secret-env, and leave it out of forward-env), never as a literal value"
            )
        env.append({"name": name, "value": value})
    for name, (secret, key) in settings.secret_env.items():
        env.append({"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}})
    env_from = [{"secretRef": {"name": s}} for s in settings.env_from_secrets]
    return env, env_from


def _security(settings: KubernetesSettings) -> tuple[dict, dict]:
    pod = {
        "runAsNonRoot": True,
        "runAsUser": settings.run_as_user,
        "runAsGroup": settings.run_as_user,
        "fsGroup": settings.run_as_user,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    container = {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": settings.read_only_root_filesystem,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    return pod, container


def _harden(pod_spec: dict, container: dict, settings: KubernetesSettings, env: list[dict], env_from: list[dict],
            resources: dict, labels: dict, metadata_holder: dict) -> None:
    pod_security, container_security = _security(settings)
    pod_spec["securityContext"] = pod_security
    pod_spec["automountServiceAccountToken"] = False  # Dask pods never talk to the Kubernetes API
    if settings.service_account:
        pod_spec["serviceAccountName"] = settings.service_account
    pod_spec["volumes"] = [{"name": "tmp", "emptyDir": {"sizeLimit": settings.tmp_size}}]
    pod_spec["enableServiceLinks"] = False
    if settings.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": s} for s in settings.image_pull_secrets]
    container["securityContext"] = container_security
    container["imagePullPolicy"] = settings.image_pull_policy
    container["env"] = env
    if env_from:
        container["envFrom"] = env_from
    container["resources"] = copy.deepcopy(resources)
    container["volumeMounts"] = [{"name": "tmp", "mountPath": "/tmp"}]
    metadata_holder["metadata"] = {"labels": dict(labels)}


def cluster_spec(settings: KubernetesSettings | Mapping, name: str, owner: dict | None = None,
                 environ: Mapping | None = None) -> dict:
    """The DaskCluster resource for the ``cluster.kubernetes`` settings (or their mapping, checked the same way)."""
    from dask_kubernetes.operator import make_cluster_spec

    settings = section(KubernetesSettings, settings)
    n_workers = settings.adapt[0] if settings.adapt else settings.n_workers
    env, env_from = environment(settings, environ)
    spec = make_cluster_spec(
        name=name,
        image=settings.image,
        n_workers=n_workers,
        worker_command=["dask", "worker", "--nthreads", str(settings.threads_per_worker), "--memory-limit",
                        settings.worker_memory_limit],
        idle_timeout=settings.idle_timeout,
    )
    labels = {**LABELS, "posts-pipeline/cluster": name}
    spec["metadata"]["labels"] = dict(labels)
    if owner:
        spec["metadata"]["ownerReferences"] = [owner]
    worker, scheduler = spec["spec"]["worker"], spec["spec"]["scheduler"]
    # The image has the `dask` command only (no dask-scheduler/dask-worker shims).
    scheduler["spec"]["containers"][0]["args"] = ["dask", "scheduler", "--host", "0.0.0.0"]
    _harden(worker["spec"], worker["spec"]["containers"][0], settings, env, env_from,
            settings.worker_resources, {**labels, "app.kubernetes.io/component": "dask-worker"}, worker)
    # Where workers may run: GPU nodes are usually labelled, and tainted to keep other pods off them.
    if settings.worker_node_selector:
        worker["spec"]["nodeSelector"] = dict(settings.worker_node_selector)
    if settings.worker_tolerations:
        worker["spec"]["tolerations"] = copy.deepcopy(list(settings.worker_tolerations))
    _harden(scheduler["spec"], scheduler["spec"]["containers"][0], settings, env, env_from,
            settings.scheduler_resources, {**labels, "app.kubernetes.io/component": "dask-scheduler"}, scheduler)
    return spec


# ---------------------------------------------------------------------------------------------
# Start-up: one clear cause, within a bounded time.

def diagnose(pods: list, events: list | None = None) -> str | None:
    """The reason this cluster cannot start, if the pods already show one (else ``None``).

    ``pods`` are Kubernetes Pod objects as dicts (``to_dict()`` of the client, snake_case keys).
    """
    for pod in pods:
        meta, status = pod.get("metadata") or {}, pod.get("status") or {}
        component = (meta.get("labels") or {}).get("dask.org/component", "pod")
        for cs in (status.get("container_statuses") or []) + (status.get("init_container_statuses") or []):
            waiting = ((cs.get("state") or {}).get("waiting")) or {}
            reason, message = waiting.get("reason"), (waiting.get("message") or "").strip()
            if reason in PULL_FAILURES:
                return (f"the {component} image {cs.get('image')!r} cannot be pulled ({reason}: {message}) — "
                        "load it into the cluster (kind load docker-image) or fix cluster.kubernetes.image")
            if reason in CONFIG_FAILURES:
                return f"the {component} container cannot be created ({reason}: {message})"
            if reason == "CrashLoopBackOff":
                last = ((cs.get("last_state") or {}).get("terminated")) or {}
                return (f"the {component} keeps crashing (CrashLoopBackOff, exit code {last.get('exit_code')}, "
                        f"{last.get('reason')}) — see `kubectl logs -n {meta.get('namespace')} {meta.get('name')} --previous`")
    for event in events or []:
        if event.get("type") == "Warning" and event.get("reason") in ("FailedCreate", "Forbidden"):
            return f"{event.get('reason')}: {event.get('message')}"
    return None


def pending_reason(pods: list) -> str:
    """Where the start-up got to, for the time-out message."""
    if not pods:
        return "no scheduler or worker pod was created (see `kubectl get events` in the namespace: pod security or quota may refuse them)"
    parts = []
    for pod in pods:
        meta, status = pod.get("metadata") or {}, pod.get("status") or {}
        component = (meta.get("labels") or {}).get("dask.org/component", "pod")
        why = status.get("phase")
        for cond in status.get("conditions") or []:
            if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
                why = f"unschedulable: {cond.get('message')}"
        for cs in status.get("container_statuses") or []:
            waiting = ((cs.get("state") or {}).get("waiting")) or {}
            if waiting.get("reason"):
                why = waiting["reason"]
        parts.append(f"{component} {meta.get('name')}: {why}")
    return "; ".join(parts)


def _ready(pod: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in (pod.get("status") or {}).get("conditions") or [])


def _running(pod: dict) -> bool:
    return any(((cs.get("state") or {}).get("running")) for cs in (pod.get("status") or {}).get("container_statuses") or [])


class Api:
    """The few Kubernetes API calls the driver makes itself (the official client, in or out of the cluster)."""

    def __init__(self):
        from kubernetes import client, config as kconfig

        try:
            kconfig.load_incluster_config()
            self.in_cluster = True
        except kconfig.ConfigException:
            try:
                kconfig.load_kube_config()
            except (kconfig.ConfigException, FileNotFoundError, TypeError) as e:
                raise PipelineError(f"no Kubernetes configuration (in-cluster service account or KUBECONFIG): {e}") from None
            self.in_cluster = False
        self.custom = client.CustomObjectsApi()
        self.core = client.CoreV1Api()

    def default_namespace(self) -> str:
        if SA_NAMESPACE_FILE.is_file():
            return SA_NAMESPACE_FILE.read_text().strip()
        from kubernetes import config as kconfig

        try:
            _, context = kconfig.list_kube_config_contexts()
            return context["context"].get("namespace") or "default"
        except Exception:  # noqa: BLE001 - any trouble reading the kubeconfig means the default namespace
            return "default"

    def create(self, spec: dict, namespace: str) -> None:
        self.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, spec)

    def get(self, name: str, namespace: str) -> dict:
        return self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)

    def delete(self, name: str, namespace: str) -> bool:
        """Delete the DaskCluster (foreground: its pods go first); False if it was already gone."""
        from kubernetes.client.rest import ApiException

        try:
            self.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
            return True
        except ApiException as e:
            if e.status == 404:
                return False
            raise

    def exists(self, name: str, namespace: str) -> bool:
        from kubernetes.client.rest import ApiException

        try:
            self.get(name, namespace)
            return True
        except ApiException as e:
            if e.status == 404:
                return False
            raise

    def pods(self, name: str, namespace: str) -> list[dict]:
        items = self.core.list_namespaced_pod(namespace, label_selector=f"dask.org/cluster-name={name}").items
        return [p.to_dict() for p in items]

    def events(self, name: str, namespace: str) -> list[dict]:
        try:
            items = self.core.list_namespaced_event(namespace).items
        except Exception:  # noqa: BLE001 - events only sharpen the message; reading them may be forbidden
            return []
        return [{"type": e.type, "reason": e.reason, "message": e.message} for e in items
                if (e.involved_object.name or "").startswith(name)]


def _api_error(e, action: str, namespace: str) -> PipelineError:
    """An ApiException from creating the DaskCluster, in words that name the cause."""
    import json

    try:
        detail = json.loads(e.body).get("message", e.body)
    except (TypeError, ValueError):
        detail = e.body or e.reason
    if e.status == 404:
        return PipelineError(
            f"cannot {action}: the DaskCluster resource type is not installed in this Kubernetes cluster "
            f"(CRD daskclusters.kubernetes.dask.org missing) — install the dask-kubernetes operator first "
            f"(helm/install-operator.sh) [{detail}]"
        )
    if e.status in (401, 403):
        return PipelineError(
            f"cannot {action} in namespace {namespace}: permission denied by the Kubernetes API (RBAC) — the driver's "
            f"ServiceAccount needs the posts-pipeline chart's Role [{detail}]"
        )
    return PipelineError(f"cannot {action} in namespace {namespace}: Kubernetes API said {e.status} {detail}")


def owner_reference(environ: dict | None = None) -> dict | None:
    """The driver's own Pod as owner of the DaskCluster (given by the chart through the downward API)."""
    environ = os.environ if environ is None else environ
    pod, uid = environ.get("POSTS_PIPELINE_POD_NAME"), environ.get("POSTS_PIPELINE_POD_UID")
    if not pod or not uid:
        return None
    return {"apiVersion": "v1", "kind": "Pod", "name": pod, "uid": uid}


def wait_until_started(api: Api, name: str, namespace: str, timeout: float, want_worker: bool,
                       poll: float = 1.0) -> None:
    """Return once the scheduler is ready (and a worker runs); raise a PipelineError naming the cause otherwise."""
    from kubernetes.client.rest import ApiException

    deadline = time.monotonic() + timeout
    phase, pods = None, []
    while True:
        try:
            phase = ((api.get(name, namespace).get("status")) or {}).get("phase")
            pods = api.pods(name, namespace)
        except ApiException as e:
            if e.status == 404:
                raise PipelineError(f"DaskCluster {name} disappeared while starting (deleted by someone else?)") from None
            raise _api_error(e, "watch the Dask cluster", namespace) from None
        cause = diagnose(pods, api.events(name, namespace) if not pods else None)
        if cause:
            raise PipelineError(f"Dask cluster {name} cannot start: {cause}")
        scheduler = [p for p in pods if (p["metadata"].get("labels") or {}).get("dask.org/component") == "scheduler"]
        workers = [p for p in pods if (p["metadata"].get("labels") or {}).get("dask.org/component") == "worker"]
        if scheduler and _ready(scheduler[0]) and (not want_worker or any(_running(w) for w in workers)):
            return
        if time.monotonic() > deadline:
            if phase is None:
                raise PipelineError(
                    f"Dask cluster {name} did not start within {timeout:.0f} s: the dask-kubernetes operator never "
                    "acted on it — is the operator running? (kubectl get pods -A -l app.kubernetes.io/name=dask-kubernetes-operator)"
                )
            raise PipelineError(f"Dask cluster {name} did not start within {timeout:.0f} s: {pending_reason(pods)}")
        time.sleep(poll)


def delete_and_wait(api: Api, name: str, namespace: str, timeout: float = 60) -> None:
    """Delete the DaskCluster and wait until it is gone (bounded); log, never raise, on trouble."""
    try:
        if api.delete(name, namespace):
            deadline = time.monotonic() + timeout
            while api.exists(name, namespace) and time.monotonic() < deadline:
                time.sleep(0.5)
        log.info("Dask cluster %s deleted", name)
    except Exception as e:  # noqa: BLE001 - cleanup must not hide the run's own error
        log.warning("could not delete DaskCluster %s in %s: %s — delete it with kubectl delete daskcluster -n %s %s",
                    name, namespace, e, namespace, name)


class Started:
    """A running Dask cluster on Kubernetes: ``kube`` (the operator KubeCluster) and ``close()``, which deletes it."""

    def __init__(self, api: Api, name: str, namespace: str):
        self.api, self.name, self.namespace = api, name, namespace
        self.kube = None
        self.closed = False

    def dashboard_hint(self) -> str:
        """Where to see the dashboard: the in-cluster address, and the port-forward that reaches it from outside."""
        inside = f"http://{self.name}-scheduler.{self.namespace}:8787/status"
        forward = f"kubectl port-forward -n {self.namespace} svc/{self.name}-scheduler 8787:8787"
        if self.api.in_cluster:
            return f"dashboard: {inside} (from your machine: {forward}, then http://localhost:8787/status)"
        link = getattr(self.kube, "dashboard_link", None) or inside
        return f"dashboard: {link} (forwarded by KubeCluster; or: {forward})"

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.kube is not None:
            try:
                self.kube.close(timeout=20)  # a pod stopped by SIGTERM has terminationGracePeriodSeconds in all
            except Exception as e:  # noqa: BLE001 - fall back to deleting it ourselves
                log.warning("KubeCluster.close failed (%s); deleting DaskCluster %s directly", e, self.name)
        delete_and_wait(self.api, self.name, self.namespace, timeout=20)


def start(settings: KubernetesSettings | Mapping) -> Started:
    """Create the DaskCluster for the ``cluster.kubernetes`` settings and connect a ``KubeCluster`` to it.

    Bounded by ``start-timeout``; on any failure or interruption the DaskCluster is deleted before raising.
    """
    from kubernetes.client.rest import ApiException
    from urllib3.exceptions import HTTPError

    settings = section(KubernetesSettings, settings)
    adapt, timeout = settings.adapt, settings.start_timeout
    name = cluster_name(settings.name)
    api = Api()
    namespace = settings.namespace or api.default_namespace()
    spec = cluster_spec(settings, name, owner=owner_reference() if api.in_cluster else None)
    t0 = time.monotonic()
    try:
        api.create(spec, namespace)
    except ApiException as e:
        raise _api_error(e, "create a DaskCluster", namespace) from None
    except (HTTPError, OSError) as e:
        raise PipelineError(f"cannot reach the Kubernetes API: {e}") from None
    workers = spec["spec"]["worker"]["replicas"]
    log.info("DaskCluster %s created in namespace %s (image %s, %s)", name, namespace, settings.image,
             f"adaptive {adapt[0]}:{adapt[1]} workers" if adapt else f"{workers} workers")
    started = Started(api, name, namespace)
    try:
        wait_until_started(api, name, namespace, timeout, want_worker=workers > 0)
        log.info("scheduler and first worker running %.1f s after the DaskCluster was created", time.monotonic() - t0)
        from dask_kubernetes.operator import KubeCluster
        from dask_kubernetes.operator.kubecluster.kubecluster import CreateMode

        started.kube = KubeCluster(name=name, namespace=namespace, create_mode=CreateMode.CONNECT_ONLY,
                                   shutdown_on_close=True, resource_timeout=int(timeout), quiet=True)
        if adapt:
            started.kube.adapt(minimum=adapt[0], maximum=adapt[1])
    except BaseException:
        started.close()
        raise
    log.info("%s", started.dashboard_hint())
    return started
