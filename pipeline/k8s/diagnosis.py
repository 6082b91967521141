"""Why a DaskCluster does not start, in words that name the cause: pure functions of what the API shows
(pods and events as dicts, snake_case keys as the official client's ``to_dict()`` gives them)."""

from __future__ import annotations

import json

from pipeline.errors import PipelineError

PULL_FAILURES = {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull", "RegistryUnavailable"}
CONFIG_FAILURES = {"CreateContainerConfigError", "CreateContainerError", "RunContainerError"}
# What the kubelet says while it is still fetching a pod's Secrets or ConfigMaps (it tries again): not a cause.
STILL_SYNCING = ("failed to sync secret cache", "failed to sync configmap cache")


def component(pod: dict) -> str:
    """``scheduler`` or ``worker``: the pod's part in the Dask cluster."""
    return ((pod.get("metadata") or {}).get("labels") or {}).get("dask.org/component", "pod")


def _container_statuses(pod: dict, init: bool = False) -> list[dict]:
    status = pod.get("status") or {}
    return (status.get("container_statuses") or []) + ((status.get("init_container_statuses") or []) if init else [])


def _waiting(cs: dict) -> dict:
    return ((cs.get("state") or {}).get("waiting")) or {}


def diagnose(pods: list, events: list | None = None) -> str | None:
    """The reason this cluster cannot start, if the pods already show one (else ``None``)."""
    for pod in pods:
        meta, part = pod.get("metadata") or {}, component(pod)
        for cs in _container_statuses(pod, init=True):
            reason, message = _waiting(cs).get("reason"), (_waiting(cs).get("message") or "").strip()
            if reason in PULL_FAILURES:
                return (f"the {part} image {cs.get('image')!r} cannot be pulled ({reason}: {message}) — "
                        "load it into the cluster (kind load docker-image) or fix cluster.kubernetes.image")
            if reason in CONFIG_FAILURES and not message.startswith(STILL_SYNCING):
                return f"the {part} container cannot be created ({reason}: {message})"
            if reason == "CrashLoopBackOff":
                last = ((cs.get("last_state") or {}).get("terminated")) or {}
                return (f"the {part} keeps crashing (CrashLoopBackOff, exit code {last.get('exit_code')}, "
                        f"{last.get('reason')}) — see `kubectl logs -n {meta.get('namespace')} {meta.get('name')} "
                        "--previous`")
    for event in events or []:
        if event.get("type") == "Warning" and event.get("reason") in ("FailedCreate", "Forbidden"):
            return f"{event.get('reason')}: {event.get('message')}"
    return None


def pending_reason(pods: list) -> str:
    """Where the start-up got to, for the time-out message."""
    if not pods:
        return ("no scheduler or worker pod was created (see `kubectl get events` in the namespace: pod security "
                "or quota may refuse them)")
    parts = []
    for pod in pods:
        status = pod.get("status") or {}
        why = status.get("phase")
        for cond in status.get("conditions") or []:
            if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
                why = f"unschedulable: {cond.get('message')}"
        for cs in _container_statuses(pod):
            if _waiting(cs).get("reason"):
                why = _waiting(cs)["reason"]
        parts.append(f"{component(pod)} {(pod.get('metadata') or {}).get('name')}: {why}")
    return "; ".join(parts)


def ready(pod: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def running(pod: dict) -> bool:
    return any((cs.get("state") or {}).get("running") for cs in _container_statuses(pod))


def api_error(e, action: str, namespace: str) -> PipelineError:
    """An ApiException from the Kubernetes API, in words that name the cause."""
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
            f"cannot {action} in namespace {namespace}: permission denied by the Kubernetes API (RBAC) — the "
            f"driver's ServiceAccount needs the posts-pipeline chart's Role [{detail}]"
        )
    return PipelineError(f"cannot {action} in namespace {namespace}: Kubernetes API said {e.status} {detail}")
