"""The DaskCluster resource for the ``cluster.kubernetes`` settings: pure functions, tested against the
CRD schema shipped in dask-kubernetes.

The spec comes from dask-kubernetes' ``make_cluster_spec``, then hardened: restricted pod security,
no API token in the Dask pods, credentials from Secrets by reference only.
"""

from __future__ import annotations

import copy
import os
import uuid
from collections.abc import Mapping

from pipeline.config import redacted_url
from pipeline.errors import PipelineError
from pipeline.settings import Invalid, KubernetesSettings, section
from pipeline.settings import cluster_name as _cluster_name

LABELS = {"app.kubernetes.io/part-of": "posts-pipeline", "app.kubernetes.io/component": "dask"}


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


def security(settings: KubernetesSettings) -> tuple[dict, dict]:
    """The pod's and the container's securityContext: what the ``restricted`` Pod Security Standard asks."""
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
    pod_security, container_security = security(settings)
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


def owner_reference(environ: Mapping | None = None) -> dict | None:
    """The driver's own Pod as owner of the DaskCluster (given by the chart through the downward API), so that
    Kubernetes removes the DaskCluster even if the driver is killed outright."""
    environ = os.environ if environ is None else environ
    pod, uid = environ.get("POSTS_PIPELINE_POD_NAME"), environ.get("POSTS_PIPELINE_POD_UID")
    if not pod or not uid:
        return None
    return {"apiVersion": "v1", "kind": "Pod", "name": pod, "uid": uid}
