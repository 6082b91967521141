"""Why a DaskCluster does not start, in words that name the cause: pure functions of what the API shows
(pods and events as dicts, snake_case keys as the official client's ``to_dict()`` gives them)."""

from __future__ import annotations

import json
import re

from pipeline.errors import PipelineError

PULL_FAILURES = {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull", "RegistryUnavailable"}
CONFIG_FAILURES = {"CreateContainerConfigError", "CreateContainerError", "RunContainerError"}
# What the kubelet says while it is still fetching a pod's Secrets or ConfigMaps (it tries again): not a cause.
STILL_SYNCING = ("failed to sync secret cache", "failed to sync configmap cache")
# A ResourceQuota's refusal of a pod (the API server's admission), as the ReplicaSet's FailedCreate event says it:
# resource lists are "name=quantity" joined by commas, the fields by ", ".
QUOTA_EXCEEDED = re.compile(r"exceeded quota: (?P<quota>[^,\s]+), requested: (?P<requested>\S+), used: (?P<used>\S+), "
                            r"limited: (?P<limited>\S+)")
QUOTA_UNSPECIFIED = re.compile(r"failed quota: (?P<quota>[^:\s]+): must specify (?P<what>\S+)")
# What a ResourceQuota counts that every Dask pod adds to (not services, configmaps, GPUs, ...).
POD_QUOTAS = {f"{kind}{resource}" for kind in ("", "requests.", "limits.") for resource in ("cpu", "memory",
                                                                                              "ephemeral-storage")}
POD_QUOTAS |= {"pods", "count/pods"}


def component(pod: dict) -> str:
    """``scheduler`` or ``worker``: the pod's part in the Dask cluster."""
    return ((pod.get("metadata") or {}).get("labels") or {}).get("dask.org/component", "pod")


def _container_statuses(pod: dict, init: bool = False) -> list[dict]:
    status = pod.get("status") or {}
    return (status.get("container_statuses") or []) + ((status.get("init_container_statuses") or []) if init else [])


def _waiting(cs: dict) -> dict:
    return ((cs.get("state") or {}).get("waiting")) or {}


def event_component(event: dict) -> str:
    """``scheduler`` or ``worker``: whose ReplicaSet (or pod) an event is about, from its name
    (``NAME-scheduler-…``, ``NAME-default-worker-…``)."""
    name = event.get("name") or ""
    return "worker" if "-worker-" in name else "scheduler" if "-scheduler" in name else "pod"


def _resources(text: str) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in text.split(",") if "=" in pair)


def _more(a: str, b: str) -> bool:
    from kubernetes.utils.quantity import parse_quantity

    try:
        return parse_quantity(a) > parse_quantity(b)
    except ValueError:
        return False


def quota_refusal(message: str) -> tuple[str, bool] | None:
    """A ResourceQuota's refusal of a pod in words, with the quota's name and numbers, and whether it is final
    (the pod alone asks for more than the quota allows, or lacks a request the quota needs); ``None`` if the
    message is not a quota's refusal. One that is not final may pass later, once other pods are gone."""
    if m := QUOTA_EXCEEDED.search(message or ""):
        requested, limited = _resources(m["requested"]), _resources(m["limited"])
        final = any(_more(amount, limited[key]) for key, amount in requested.items() if key in limited)
        said = (f"exceeded quota {m['quota']} (requested: {m['requested']}, used: {m['used']}, "
                f"limited: {m['limited']})")
        return (said + " — more than the quota allows at all" if final else said), final
    if m := QUOTA_UNSPECIFIED.search(message or ""):
        return (f"quota {m['quota']} refuses pods that do not set {m['what']} (set them in "
                "cluster.kubernetes.worker-resources / scheduler-resources)"), True
    return None


def full_quotas(quotas: list) -> str | None:
    """The namespace's ResourceQuotas that are used up (``{"name", "hard", "used"}`` dicts), in words."""
    full = [f"quota {q['name']} is used up ({key}: used {q['used'][key]} of {hard})"
            for q in quotas for key, hard in (q.get("hard") or {}).items()
            if key in POD_QUOTAS and key in (q.get("used") or {}) and not _more(hard, q["used"][key])]
    return "; ".join(full) or None


def _requests(pod: dict) -> str:
    asked: dict[str, str] = {}
    for container in (pod.get("spec") or {}).get("containers") or []:
        asked.update(((container.get("resources") or {}).get("requests")) or {})
    return ", ".join(f"{key}={value}" for key, value in sorted(asked.items())) or "nothing"


def unschedulable(pod: dict) -> str | None:
    """The scheduler's reason a pod is not placed (e.g. ``0/3 nodes are available: 3 Insufficient cpu``)."""
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False" and cond.get("message"):
            return cond["message"].strip()
    return None


def held_back(part: str, pods: list, events: list, quotas: list) -> str | None:
    """Why ``part`` (``scheduler`` or ``worker``) pods are missing or not placed, if a quota or the nodes say so:
    the latest quota refusal of its ReplicaSets, a pod the scheduler cannot place, or a used-up quota."""
    refusals = [quota_refusal(e.get("message") or "") for e in events
                if e.get("reason") == "FailedCreate" and event_component(e) == part]
    if refusals := [r for r in refusals if r]:
        return refusals[-1][0]
    for pod in pods:
        if component(pod) == part and (why := unschedulable(pod)):
            return (f"{part} pod {(pod.get('metadata') or {}).get('name')} cannot be placed on a node: {why} "
                    f"(it requests {_requests(pod)})")
    return full_quotas(quotas) if not any(component(p) == part for p in pods) else None


def shortfall(pods: list, events: list, quotas: list, asked: int) -> tuple[str, bool] | None:
    """Fewer workers running than ``asked``, in words (``1 of 2 workers running: exceeded quota …``), and whether
    a quota or the nodes hold the others back (else they are still starting); ``None`` if all run."""
    up = sum(1 for p in pods if component(p) == "worker" and running(p))
    if up >= asked:
        return None
    why = held_back("worker", pods, events, quotas)
    return f"{up} of {asked} workers running: {why or 'the others are still starting'}", why is not None


def diagnose(pods: list, events: list | None = None) -> str | None:
    """The reason this cluster cannot start, if the pods or events already show a final one (else ``None``).
    A quota's refusal that may pass later is not final: the start waits for it (see ``held_back``)."""
    for pod in pods:
        meta, part = pod.get("metadata") or {}, component(pod)
        for cs in _container_statuses(pod, init=True):
            reason, message = _waiting(cs).get("reason"), (_waiting(cs).get("message") or "").strip()
            if reason in PULL_FAILURES:
                return (f"the {part} image {cs.get('image')!r} cannot be pulled ({reason}: {message}) — "
                        "push it to a registry the nodes pull from (on kind: make kind-up) "
                        "or fix cluster.kubernetes.image")
            if reason in CONFIG_FAILURES and not message.startswith(STILL_SYNCING):
                return f"the {part} container cannot be created ({reason}: {message})"
            if reason == "CrashLoopBackOff":
                last = ((cs.get("last_state") or {}).get("terminated")) or {}
                return (f"the {part} keeps crashing (CrashLoopBackOff, exit code {last.get('exit_code')}, "
                        f"{last.get('reason')}) — see `kubectl logs -n {meta.get('namespace')} {meta.get('name')} "
                        "--previous`")
    for event in events or []:
        if event.get("type") != "Warning" or event.get("reason") not in ("FailedCreate", "Forbidden"):
            continue
        quota = quota_refusal(event.get("message") or "")
        if quota and quota[1]:
            return f"the {event_component(event)} cannot be created: {quota[0]}"
        if not quota and not pods:
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


def api_message(e) -> str:
    """What the Kubernetes API said with an ApiException (the ``message`` of its JSON body)."""
    try:
        return json.loads(e.body).get("message", e.body)
    except (TypeError, ValueError, AttributeError):
        return getattr(e, "body", None) or getattr(e, "reason", None) or str(e)


def api_error(e, action: str, namespace: str) -> PipelineError:
    """An ApiException from the Kubernetes API, in words that name the cause."""
    detail = api_message(e)
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
