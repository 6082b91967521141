"""Why workers do not start, read from what the API shows (pure functions of pipeline.k8s.diagnosis): a
ResourceQuota's refusal (the ReplicaSet's FailedCreate event, the quota objects) and a pod no node fits.
The messages are the API server's and the scheduler's own wording (Kubernetes 1.34)."""

from __future__ import annotations

from pipeline.k8s import diagnosis

CLUSTER = "posts-3f9a1c2b4d"
WORKER_RS = f"{CLUSTER}-default-worker-8e1f2a3b4c-5d7f9c6b8"


def refused(message: str, replica_set: str = WORKER_RS) -> dict:
    """The ReplicaSet controller's event when the API server refuses its pod."""
    return {"type": "Warning", "reason": "FailedCreate", "kind": "ReplicaSet", "name": replica_set,
            "message": f'Error creating: pods "{replica_set}-" is forbidden: {message}'}


EXCEEDED = "exceeded quota: pp-quota, requested: requests.cpu=250m, used: requests.cpu=1800m, limited: requests.cpu=2"
TOO_BIG = ("exceeded quota: small, requested: limits.memory=2Gi,requests.cpu=500m, used: limits.memory=1Gi,"
           "requests.cpu=200m, limited: limits.memory=1536Mi,requests.cpu=2")
UNSPECIFIED = "failed quota: compute: must specify limits.cpu,limits.memory"
NO_NODE = ("0/3 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, "
           "2 Insufficient cpu. preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, "
           "2 No preemption victims found for incoming pod.")


def pod(component: str, name: str, running=False, ready=False, unschedulable: str | None = None) -> dict:
    conditions = [{"type": "Ready", "status": "True" if ready else "False"}]
    if unschedulable:
        conditions.append({"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                           "message": unschedulable})
    return {"metadata": {"name": name, "namespace": "ns", "labels": {"dask.org/component": component}},
            "spec": {"containers": [{"name": component,
                                     "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}}]},
            "status": {"phase": "Running" if running else "Pending", "conditions": conditions,
                       "container_statuses": [{"state": {"running": {"started_at": "2026-12-02T05:00:00Z"}} if running
                                              else {"waiting": {"reason": "ContainerCreating"}}}]}}


SCHEDULER = pod("scheduler", f"{CLUSTER}-scheduler-6c9d8-abcde", running=True, ready=True)
WORKER = pod("worker", f"{WORKER_RS}-x2k4p", running=True, ready=True)


def test_a_quota_refusal_is_named_with_its_numbers_and_may_pass_later():
    said, final = diagnosis.quota_refusal(refused(EXCEEDED)["message"])
    assert said == ("exceeded quota pp-quota (requested: requests.cpu=250m, used: requests.cpu=1800m, "
                    "limited: requests.cpu=2)")
    assert not final  # 250m fits in 2 once other pods are gone


def test_a_pod_asking_more_than_the_quota_allows_at_all_is_final():
    said, final = diagnosis.quota_refusal(refused(TOO_BIG)["message"])  # 2Gi > 1536Mi, whatever else runs
    assert final and "exceeded quota small" in said and "limits.memory=2Gi,requests.cpu=500m" in said
    said, final = diagnosis.quota_refusal(refused(UNSPECIFIED)["message"])
    assert final and "quota compute refuses pods that do not set limits.cpu,limits.memory" in said
    assert diagnosis.quota_refusal('pods "x" is forbidden: violates PodSecurity "restricted:latest"') is None


def test_events_say_whose_replica_set_was_refused():
    assert diagnosis.event_component(refused(EXCEEDED)) == "worker"
    assert diagnosis.event_component(refused(EXCEEDED, f"{CLUSTER}-scheduler-6c9d8")) == "scheduler"


def test_fewer_workers_than_asked_names_the_quota_that_holds_them_back():
    short = diagnosis.shortfall([SCHEDULER, WORKER], [refused(EXCEEDED)], [], asked=2)
    assert short == ("1 of 2 workers running: exceeded quota pp-quota (requested: requests.cpu=250m, "
                     "used: requests.cpu=1800m, limited: requests.cpu=2)", True)
    # the latest refusal counts (the numbers change as pods come and go)
    later = EXCEEDED.replace("used: requests.cpu=1800m", "used: requests.cpu=1900m")
    short = diagnosis.shortfall([SCHEDULER, WORKER], [refused(EXCEEDED), refused(later)], [], asked=3)
    assert short[0].startswith("1 of 3 workers running:") and "used: requests.cpu=1900m" in short[0]


def test_fewer_workers_than_asked_while_the_others_start_is_no_cause():
    starting = pod("worker", f"{CLUSTER}-default-worker-1a2b3c4d5e-6f7a8-zzzzz")
    assert diagnosis.shortfall([SCHEDULER, WORKER, starting], [], [], asked=2) == (
        "1 of 2 workers running: the others are still starting", False)
    assert diagnosis.shortfall([SCHEDULER, WORKER], [], [], asked=1) is None


def test_a_worker_no_node_fits_is_named_with_what_it_requests():
    stuck = pod("worker", f"{WORKER_RS}-q8w7e", unschedulable=NO_NODE)
    said, held = diagnosis.shortfall([SCHEDULER, WORKER, stuck], [], [], asked=2)
    assert held and said.startswith(f"1 of 2 workers running: worker pod {WORKER_RS}-q8w7e cannot be placed on a "
                                    "node: 0/3 nodes are available:")
    assert "2 Insufficient cpu" in said and said.endswith("(it requests cpu=500m, memory=1Gi)")


def test_a_used_up_quota_explains_missing_pods_when_no_event_does():
    """Events may be unreadable or expired (1 h): the ResourceQuota objects still show a quota at its limit."""
    quotas = [{"name": "pp-quota", "hard": {"requests.cpu": "2", "services": "5"},
               "used": {"requests.cpu": "2", "services": "5"}},
              {"name": "roomy", "hard": {"pods": "10"}, "used": {"pods": "3"}}]
    assert diagnosis.held_back("worker", [SCHEDULER], [], quotas) == \
        "quota pp-quota is used up (requests.cpu: used 2 of 2)"  # services are not what a pod needs
    assert diagnosis.held_back("worker", [SCHEDULER, pod("worker", "w")], [], quotas) is None  # a pod exists
    assert diagnosis.held_back("worker", [SCHEDULER], [], quotas[1:]) is None


def test_diagnose_fails_at_once_only_for_a_quota_that_can_never_fit():
    assert diagnosis.diagnose([SCHEDULER], [refused(EXCEEDED)]) is None  # waited for: it may pass
    assert diagnosis.diagnose([], [refused(EXCEEDED, f"{CLUSTER}-scheduler-6c9d8")]) is None
    final = diagnosis.diagnose([SCHEDULER], [refused(TOO_BIG)])
    assert final.startswith("the worker cannot be created: exceeded quota small (") and "at all" in final
    assert "must specify" not in diagnosis.diagnose([SCHEDULER], [refused(UNSPECIFIED)])
    # Other refusals stay final when no pod could be made at all (e.g. pod security), as before.
    security = refused('violates PodSecurity "restricted:latest": runAsNonRoot != true')
    assert "violates PodSecurity" in diagnosis.diagnose([], [security])
    assert diagnosis.diagnose([SCHEDULER], [security]) is None


def test_the_api_gives_events_oldest_first_and_quotas_as_dicts_from_the_clients_objects():
    """lifecycle.Api's reading of the official client's objects (a stand-in for its CoreV1Api)."""
    from datetime import datetime, timezone

    from kubernetes import client

    from pipeline.k8s import lifecycle

    def event(name, minute, message):
        return client.CoreV1Event(
            involved_object=client.V1ObjectReference(kind="ReplicaSet", name=name), type="Warning",
            reason="FailedCreate", message=message, metadata=client.V1ObjectMeta(name=f"{name}.1"),
            last_timestamp=datetime(2026, 12, 2, 5, minute, tzinfo=timezone.utc))

    class Core:
        def list_namespaced_event(self, namespace):
            return client.CoreV1EventList(items=[event(WORKER_RS, 9, "later"), event("someone-else", 5, "not ours"),
                                                 event(WORKER_RS, 1, "earlier")])

        def list_namespaced_resource_quota(self, namespace):
            return client.V1ResourceQuotaList(items=[
                client.V1ResourceQuota(metadata=client.V1ObjectMeta(name="pp-quota"),
                                       status=client.V1ResourceQuotaStatus(hard={"requests.cpu": "2"},
                                                                           used={"requests.cpu": "2"})),
                client.V1ResourceQuota(metadata=client.V1ObjectMeta(name="new"))])  # not counted yet

    api = lifecycle.Api.__new__(lifecycle.Api)
    api.core = Core()
    events = api.events(CLUSTER, "ns")
    assert [e["message"] for e in events] == ["earlier", "later"]
    assert events[0] | {"message": None} == {"type": "Warning", "reason": "FailedCreate", "kind": "ReplicaSet",
                                             "name": WORKER_RS, "message": None}
    assert api.quotas("ns") == [{"name": "pp-quota", "hard": {"requests.cpu": "2"}, "used": {"requests.cpu": "2"}},
                                {"name": "new", "hard": {}, "used": {}}]
