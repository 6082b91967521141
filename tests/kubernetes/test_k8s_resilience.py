"""On the kind cluster, in a namespace of its own (the fixtures of test_k8s_e2e.py: moto's S3 server, the
operator, a small dump): a ResourceQuota that leaves room for one worker of two (the run completes with it
and names the quota), one that leaves room for none (the run fails within its start timeout naming the
quota and its numbers, no DaskCluster left), a run that fails on its workers, whose failed driver log
keeps the last lines of its Dask pods' logs, and a driver killed mid-run that the Job's retry resumes.
"""

from __future__ import annotations

import contextlib
import re
import time

import pytest
import test_k8s_e2e as e2e

from support import assert_same_results, wait_for

pytestmark = pytest.mark.kind

# The module fixtures of the end-to-end tier, for a namespace of this module's own.
images, operator, k, dump, s3, reference = e2e.images, e2e.operator, e2e.k, e2e.dump, e2e.s3, e2e.reference
stop_runs_of_failed_tests = e2e.stop_runs_of_failed_tests

QUOTA = "pp-quota"
# CPU requests in the namespace: moto's S3 server 100m (e2e.S3_MANIFEST), a run's driver 100m and scheduler
# 100m (the chart's defaults), each worker 250m (e2e.chart_values).
ONE_WORKER_ROOM, NO_WORKER_ROOM = "650m", "400m"  # 550m with one worker (800m with two); 300m with none


@contextlib.contextmanager
def quota(k, cpu: str):
    """A ResourceQuota on the namespace's CPU requests, in force (counted) while the block runs."""
    k.apply(f"apiVersion: v1\nkind: ResourceQuota\nmetadata: {{name: {QUOTA}}}\n"
            f"spec: {{hard: {{requests.cpu: {cpu}}}}}")
    wait_for(lambda: ((k.json("get", "resourcequota", QUOTA).get("status") or {}).get("hard") or {})
             .get("requests.cpu") == cpu, 60, "the quota to be counted")
    try:
        yield
    finally:
        k("delete", "resourcequota", QUOTA, check=False)


def no_dask_left(k) -> None:
    wait_for(lambda: not e2e.daskclusters(k) and not e2e.pods(k, "dask.org/component in (scheduler,worker)"), 120,
             "the run's DaskCluster and its pods to be gone")


def failed_log(s3, run: str) -> str:
    return s3.client().get_object(Bucket=s3.bucket, Key=f"runs/{run}.failed-driver.log")["Body"].read().decode()


def test_a_quota_with_room_for_one_of_two_workers_runs_with_one_and_names_the_quota(k, s3, reference):
    with quota(k, ONE_WORKER_ROOM), e2e.other_release(k, s3, "quota") as cronjob:
        e2e.submit(k, "quota-1", cronjob=cronjob)
        state = e2e.wait_job(k, "quota-1", timeout=600)
        out = e2e.job_logs(k, "quota-1")
        assert state == "Complete", out
        # "used" is what the quota counted when it refused the second worker: the first may not be counted yet.
        said = re.search(rf"1 of 2 workers running: exceeded quota {QUOTA} \(requested: requests\.cpu=250m, "
                         rf"used: requests\.cpu=\d+m, limited: requests\.cpu={ONE_WORKER_ROOM}\) — the run goes on "
                         "with those it has", out)
        assert said, out
        assert_same_results(s3.report("runs/quota-1"), reference)
        no_dask_left(k)


def test_a_quota_with_room_for_no_worker_fails_within_the_start_timeout_naming_it(k, s3):
    with quota(k, NO_WORKER_ROOM), e2e.other_release(k, s3, "noroom", "--set", "dask.startTimeout=30s") as cronjob:
        t0 = e2e.submit(k, "noroom-1", cronjob=cronjob)
        state = e2e.wait_job(k, "noroom-1", timeout=300)
        took = time.monotonic() - t0
        out = e2e.job_logs(k, "noroom-1")
        assert state == "Failed", out
        line = (rf"posts-pipeline: error: Dask cluster posts-\w+ did not start a worker within 30 s: exceeded quota "
                rf"{QUOTA} \(requested: requests\.cpu=250m, used: requests\.cpu=300m, "
                rf"limited: requests\.cpu={NO_WORKER_ROOM}\)")
        assert re.search(line, out), out
        assert "Traceback" not in out
        assert took < 30 + 90, f"the failure took {took:.0f} s"  # the timeout, plus job and pod start-up
        no_dask_left(k)
        e2e.assert_only_the_failed_log(s3, "runs/noroom-1", f"exceeded quota {QUOTA}")


def test_a_run_failing_on_its_workers_keeps_their_last_log_lines_in_its_failed_log(k, s3):
    """The workers get a wrong key (their own Secret, the driver keeps the right one): the driver lists the
    input, the workers' reads are refused. The failed driver log ends with each Dask pod's last lines."""
    k("create", "secret", "generic", "s3-wrong", f"--from-literal=AWS_ACCESS_KEY_ID={s3.key}",
      "--from-literal=AWS_SECRET_ACCESS_KEY=wrong-secret")
    workers_secret = '{"cluster": {"kubernetes": {"env-from-secrets": ["s3-wrong"]}}}'
    with e2e.other_release(k, s3, "podlogs", "--set-json", f"config={workers_secret}") as cronjob:
        e2e.submit(k, "podlogs-1", cronjob=cronjob)
        state = e2e.wait_job(k, "podlogs-1", timeout=600)
        out = e2e.job_logs(k, "podlogs-1")
        assert state == "Failed", out
        no_dask_left(k)
        log = failed_log(s3, "podlogs-1")
        sections = re.findall(r"^----- last 50 lines of the log of (scheduler|worker) pod (\S+) -----\n(.*?)"
                              r"^----- end of ", log, re.M | re.S)
        parts = [part for part, _, _ in sections]
        assert parts[0] == "scheduler" and parts.count("worker") >= 1, log[-3000:]
        scheduler_log = sections[0][2]
        assert "Scheduler at:" in scheduler_log, scheduler_log
        workers_logs = "".join(text for part, _, text in sections if part == "worker")
        assert "Compute Failed" in workers_logs, workers_logs  # the refused read, as the worker said it
        assert "wrong-secret" not in log and s3.secret not in log
        assert "Traceback" not in out and "----- last 50 lines" not in out  # the terminal keeps its one line
        assert log.rstrip().splitlines()[-1].startswith(tuple("0123456789"))  # ends with the driver's last line
        assert "the run failed" in log.rstrip().splitlines()[-1]


def done_blocks(s3, run: str) -> int:
    """Blocks the run has recorded as done (``_progress/blocks/N.json`` in its staging under the prefix)."""
    return sum(1 for key in s3.keys(f"runs/{run}/_progress/blocks/") if key.endswith(".json"))


def test_a_killed_driver_is_retried_by_the_job_and_resumes_to_the_same_results(k, s3, reference):
    """run.backoffLimit=1 (the chart adds --resume): the driver pod killed once a block is done; the Job's next
    pod takes over the staging, reuses the finished blocks and ends with an undisturbed run's results; the
    killed driver's DaskCluster goes with its pod (its owner)."""
    with e2e.other_release(k, s3, "retry", "--set", "run.backoffLimit=1") as cronjob:
        e2e.submit(k, "retry-1", cronjob=cronjob)
        e2e.wait_first_worker(k, "retry-1")
        wait_for(lambda: done_blocks(s3, "retry-1") or e2e.job_state(k, "retry-1"), 300, "a finished block")
        driver = [p for p in e2e.pods(k, "batch.kubernetes.io/job-name=retry-1") if e2e.running(p)]
        assert len(driver) == 1 and not e2e.job_state(k, "retry-1"), "the run ended before its driver was killed"
        killed_with = done_blocks(s3, "retry-1")
        k("delete", "pod", driver[0]["metadata"]["name"], "--grace-period=0", "--force")
        state = e2e.wait_job(k, "retry-1")
        logs = {p["metadata"]["name"]: k("logs", p["metadata"]["name"], check=False)
                for p in e2e.pods(k, "batch.kubernetes.io/job-name=retry-1")}
        assert state == "Complete", logs
        retry = [text for name, text in logs.items() if name != driver[0]["metadata"]["name"]]
        assert len(retry) == 1, logs
        reused = re.search(r"resuming the interrupted run: (\d+) of (\d+) blocks done, reused", retry[0])
        assert reused and int(reused[1]) >= killed_with >= 1, retry[0]
        assert_same_results(s3.report("runs/retry-1"), reference)
        assert not [key for key in s3.keys("runs/retry-1/") if "/_progress/" in key]  # not part of the result
        no_dask_left(k)
