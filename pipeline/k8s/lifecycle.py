"""The DaskCluster's life, owned here alone: created, started within ``start-timeout`` (or the cause named),
connected to, and deleted exactly once on the way out, whatever happens.

The connection is dask-kubernetes' ``KubeCluster`` in connect-only mode (it port-forwards when the
driver runs outside the cluster, and turns on adaptivity); it neither creates nor deletes the
DaskCluster. When the driver runs in a pod, that pod also owns the DaskCluster (``spec.owner_reference``).

Workers a ResourceQuota or the nodes hold back do not stall a run: it starts with the first worker and
says how many of those asked for run and why the others do not; it fails (at ``start-timeout``, naming
the quota and its numbers) only if no worker can start. A failed run keeps the last lines of each
Dask pod's log in its driver's log (``output.attach``), read before the DaskCluster is deleted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline import output
from pipeline.errors import PipelineError
from pipeline.k8s import diagnosis, spec
from pipeline.settings import KubernetesSettings

log = logging.getLogger(__name__)

GROUP, VERSION, PLURAL = "kubernetes.dask.org", "v1", "daskclusters"
SA_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
DELETE_TIMEOUT = 20  # seconds: a pod stopped by SIGTERM has terminationGracePeriodSeconds in all
POD_LOG_LINES = 50  # of each Dask pod's log, kept in a failed run's driver log
POD_LOGS_AT_MOST = 20  # pods: the scheduler and the first workers (a large cluster's workers mostly say the same)
REQUEST_TIMEOUT = 10  # seconds, for each read of a pod's log on the way out


def _unless_gone(call: Callable[[], object]) -> bool:
    """``call()``; False if the API says the object is not there (404)."""
    from kubernetes.client.rest import ApiException

    try:
        call()
        return True
    except ApiException as e:
        if e.status == 404:
            return False
        raise


class Api:
    """The few Kubernetes API calls the driver makes itself (the official client, in or out of the cluster)."""

    def __init__(self):
        from kubernetes import client
        from kubernetes import config as kconfig

        try:
            kconfig.load_incluster_config()
            self.in_cluster = True
        except kconfig.ConfigException:
            try:
                kconfig.load_kube_config()
            except (kconfig.ConfigException, FileNotFoundError, TypeError) as e:
                raise PipelineError(f"no Kubernetes configuration (in-cluster service account or KUBECONFIG): {e}") \
                    from None
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

    def create(self, resource: dict, namespace: str) -> None:
        self.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, resource)

    def get(self, name: str, namespace: str) -> dict:
        return self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)

    def delete(self, name: str, namespace: str) -> bool:
        """Delete the DaskCluster (its pods go with it); False if it was already gone."""
        return _unless_gone(lambda: self.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL,
                                                                                name))

    def exists(self, name: str, namespace: str) -> bool:
        return _unless_gone(lambda: self.get(name, namespace))

    def pods(self, name: str, namespace: str) -> list[dict]:
        items = self.core.list_namespaced_pod(namespace, label_selector=f"dask.org/cluster-name={name}").items
        return [p.to_dict() for p in items]

    def events(self, name: str, namespace: str) -> list[dict]:
        try:
            items = self.core.list_namespaced_event(namespace).items
        except Exception:  # noqa: BLE001 - events only sharpen the message; reading them may be forbidden
            return []
        ours = sorted((e for e in items if (e.involved_object.name or "").startswith(name)),
                      key=lambda e: str(e.last_timestamp or e.event_time or e.metadata.creation_timestamp))
        return [{"type": e.type, "reason": e.reason, "message": e.message, "kind": e.involved_object.kind,
                 "name": e.involved_object.name} for e in ours]  # oldest first: the last one is the latest

    def quotas(self, namespace: str) -> list[dict]:
        """The namespace's ResourceQuotas: ``{"name", "hard", "used"}``."""
        try:
            items = self.core.list_namespaced_resource_quota(namespace).items
        except Exception:  # noqa: BLE001 - quotas only sharpen the message; reading them may be forbidden
            return []
        return [{"name": q.metadata.name, "hard": (q.status and q.status.hard) or {},
                 "used": (q.status and q.status.used) or {}} for q in items]

    def log_tail(self, pod: str, namespace: str, lines: int) -> str:
        return self.core.read_namespaced_pod_log(pod, namespace, tail_lines=lines, _request_timeout=REQUEST_TIMEOUT)


def create(api: Api, resource: dict, namespace: str) -> None:
    """Write the DaskCluster; a refusal is one line that names the cause."""
    from kubernetes.client.rest import ApiException
    from urllib3.exceptions import HTTPError

    try:
        api.create(resource, namespace)
    except ApiException as e:
        raise diagnosis.api_error(e, "create a DaskCluster", namespace) from None
    except (HTTPError, OSError) as e:
        raise PipelineError(f"cannot reach the Kubernetes API: {e}") from None


def _started(pods: list[dict], want_worker: bool) -> bool:
    scheduler = [p for p in pods if diagnosis.component(p) == "scheduler"]
    workers = [p for p in pods if diagnosis.component(p) == "worker"]
    return bool(scheduler) and diagnosis.ready(scheduler[0]) and (not want_worker or any(map(diagnosis.running,
                                                                                             workers)))


def wait_until_started(api: Api, name: str, namespace: str, timeout: float, want_worker: bool,
                       poll: float = 1.0) -> None:
    """Return once the scheduler is ready (and a worker runs); raise a PipelineError naming the cause otherwise."""
    from kubernetes.client.rest import ApiException

    deadline = time.monotonic() + timeout
    said = None
    while True:
        try:
            phase = ((api.get(name, namespace).get("status")) or {}).get("phase")
            pods = api.pods(name, namespace)
        except ApiException as e:
            if e.status == 404:
                raise PipelineError(f"DaskCluster {name} disappeared while starting (deleted by someone else?)") \
                    from None
            raise diagnosis.api_error(e, "watch the Dask cluster", namespace) from None
        events = api.events(name, namespace)
        cause = diagnosis.diagnose(pods, events)
        if cause:
            raise PipelineError(f"Dask cluster {name} cannot start: {cause}")
        if _started(pods, want_worker):
            return
        scheduler_up = any(diagnosis.component(p) == "scheduler" and diagnosis.ready(p) for p in pods)
        part = "worker" if scheduler_up else "scheduler"
        held = diagnosis.held_back(part, pods, events, api.quotas(namespace))
        if held and held != said:  # it may pass (other pods end): said at once, and waited for up to the timeout
            log.warning("%s Dask %s cannot start yet: %s — waiting up to %.0f s in all",
                        "a" if part == "worker" else "the", part, held, timeout)
            said = held
        if time.monotonic() > deadline:
            if phase is None:
                raise PipelineError(
                    f"Dask cluster {name} did not start within {timeout:.0f} s: the dask-kubernetes operator never "
                    "acted on it — is the operator running? "
                    "(kubectl get pods -A -l app.kubernetes.io/name=dask-kubernetes-operator)"
                )
            if held:
                raise PipelineError(f"Dask cluster {name} did not start a {part} within {timeout:.0f} s: {held}")
            raise PipelineError(f"Dask cluster {name} did not start within {timeout:.0f} s: "
                                f"{diagnosis.pending_reason(pods)}")
        time.sleep(poll)


def report_workers(api: Api, name: str, namespace: str, asked: int) -> None:
    """Say how many of the workers asked for run, once the first one does, and what holds the others back
    (a quota, the nodes): the run goes on with those it has, and Dask takes the others as they join."""
    try:
        short = diagnosis.shortfall(api.pods(name, namespace), api.events(name, namespace), api.quotas(namespace),
                                    asked)
    except Exception as e:  # noqa: BLE001 - only a report: the run does not depend on it
        log.info("could not count the running workers: %s", e)
        return
    if short and short[1]:
        log.warning("%s — the run goes on with those it has", short[0])
    elif short:
        log.info("%s", short[0])


def keep_pod_logs(api: Api, name: str, namespace: str, lines: int = POD_LOG_LINES) -> None:
    """The last ``lines`` of each scheduler and worker pod's log, into the driver's log of the failed run
    (``output.attach``), before the DaskCluster and its pods are deleted; never raises."""
    try:
        pods = sorted(api.pods(name, namespace), key=lambda p: (diagnosis.component(p) != "scheduler",
                                                                 (p.get("metadata") or {}).get("name", "")))
    except Exception as e:  # noqa: BLE001 - the run's own error matters more
        log.warning("could not list the Dask pods to keep their logs: %s", e)
        return
    kept = 0
    for pod in pods[:POD_LOGS_AT_MOST]:
        pod_name = (pod.get("metadata") or {}).get("name")
        try:
            text = api.log_tail(pod_name, namespace, lines)
        except Exception as e:  # noqa: BLE001 - a pod that never started has no log: say so and go on
            text = f"(no log: {diagnosis.api_message(e)})"
        kept += output.attach(f"last {lines} lines of the log of {diagnosis.component(pod)} pod {pod_name}", text)
    if kept:
        log.info("the last lines of the logs of %d Dask pods are kept in the driver's log", kept)


def delete_and_wait(api: Api, name: str, namespace: str, timeout: float = DELETE_TIMEOUT) -> None:
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


def dashboard_hint(in_cluster: bool, name: str, namespace: str, link: str | None) -> str:
    """Where to see the dashboard: the in-cluster address, and the port-forward that reaches it from outside."""
    inside = f"http://{name}-scheduler.{namespace}:8787/status"
    forward = f"kubectl port-forward -n {namespace} svc/{name}-scheduler 8787:8787"
    if in_cluster:
        return f"dashboard: {inside} (from your machine: {forward}, then http://localhost:8787/status)"
    return f"dashboard: {link or inside} (forwarded by KubeCluster; or: {forward})"


@contextmanager
def kube_cluster(name: str, namespace: str, settings: KubernetesSettings) -> Iterator:
    """The running DaskCluster as a connect-only ``KubeCluster`` (what a ``Client`` is made from), adaptive if
    ``adapt`` is set; closing it closes the connection and leaves the DaskCluster to ``running``."""
    from dask_kubernetes.operator import KubeCluster
    from dask_kubernetes.operator.kubecluster.kubecluster import CreateMode

    kube = KubeCluster(name=name, namespace=namespace, create_mode=CreateMode.CONNECT_ONLY, shutdown_on_close=False,
                       resource_timeout=int(settings.start_timeout), quiet=True)
    try:
        if settings.adapt:
            kube.adapt(minimum=settings.adapt[0], maximum=settings.adapt[1])
        yield kube
    finally:
        try:
            kube.close(timeout=DELETE_TIMEOUT)
        except Exception as e:  # noqa: BLE001 - the DaskCluster is deleted next, whatever happened here
            log.warning("could not close the connection to DaskCluster %s: %s", name, e)


@contextmanager
def running(settings: KubernetesSettings) -> Iterator:
    """A DaskCluster for the ``cluster.kubernetes`` settings, started and connected to (``kube_cluster``); deleted
    exactly once on the way out, on success, failure or interruption alike."""
    api = Api()
    name = spec.cluster_name(settings.name)
    namespace = settings.namespace or api.default_namespace()
    resource = spec.cluster_spec(settings, name, owner=spec.owner_reference() if api.in_cluster else None)
    started = time.monotonic()
    create(api, resource, namespace)
    workers = resource["spec"]["worker"]["replicas"]
    log.info("DaskCluster %s created in namespace %s (image %s, %s)", name, namespace, settings.image,
             f"adaptive {settings.adapt[0]}:{settings.adapt[1]} workers" if settings.adapt else f"{workers} workers")
    try:
        wait_until_started(api, name, namespace, settings.start_timeout, want_worker=workers > 0)
        log.info("scheduler and first worker running %.1f s after the DaskCluster was created",
                 time.monotonic() - started)
        if workers > 1:
            report_workers(api, name, namespace, workers)
        with kube_cluster(name, namespace, settings) as kube:
            log.info("%s", dashboard_hint(api.in_cluster, name, namespace, getattr(kube, "dashboard_link", None)))
            yield kube
    except Exception:
        keep_pod_logs(api, name, namespace)
        raise
    finally:
        delete_and_wait(api, name, namespace)
