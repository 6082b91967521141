"""The DaskCluster's life, owned here alone: created, started within ``start-timeout`` (or the cause named),
connected to, and deleted exactly once on the way out, whatever happens.

The connection is dask-kubernetes' ``KubeCluster`` in connect-only mode (it port-forwards when the
driver runs outside the cluster, and turns on adaptivity); it neither creates nor deletes the
DaskCluster. When the driver runs in a pod, that pod also owns the DaskCluster (``spec.owner_reference``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline.errors import PipelineError
from pipeline.k8s import diagnosis, spec
from pipeline.settings import KubernetesSettings

log = logging.getLogger(__name__)

GROUP, VERSION, PLURAL = "kubernetes.dask.org", "v1", "daskclusters"
SA_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
DELETE_TIMEOUT = 20  # seconds: a pod stopped by SIGTERM has terminationGracePeriodSeconds in all


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
        return [{"type": e.type, "reason": e.reason, "message": e.message} for e in items
                if (e.involved_object.name or "").startswith(name)]


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
    while True:
        try:
            phase = ((api.get(name, namespace).get("status")) or {}).get("phase")
            pods = api.pods(name, namespace)
        except ApiException as e:
            if e.status == 404:
                raise PipelineError(f"DaskCluster {name} disappeared while starting (deleted by someone else?)") \
                    from None
            raise diagnosis.api_error(e, "watch the Dask cluster", namespace) from None
        cause = diagnosis.diagnose(pods, api.events(name, namespace) if not pods else None)
        if cause:
            raise PipelineError(f"Dask cluster {name} cannot start: {cause}")
        if _started(pods, want_worker):
            return
        if time.monotonic() > deadline:
            if phase is None:
                raise PipelineError(
                    f"Dask cluster {name} did not start within {timeout:.0f} s: the dask-kubernetes operator never "
                    "acted on it — is the operator running? "
                    "(kubectl get pods -A -l app.kubernetes.io/name=dask-kubernetes-operator)"
                )
            raise PipelineError(f"Dask cluster {name} did not start within {timeout:.0f} s: "
                                f"{diagnosis.pending_reason(pods)}")
        time.sleep(poll)


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
        with kube_cluster(name, namespace, settings) as kube:
            log.info("%s", dashboard_hint(api.in_cluster, name, namespace, getattr(kube, "dashboard_link", None)))
            yield kube
    finally:
        delete_and_wait(api, name, namespace)
