"""The pipeline on a real multi-container Dask cluster: results in S3 equal to a LocalCluster's,
a worker killed mid-run, a worker from another environment refused."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from containers import BUCKET, TEST_IMAGE, Session, docker, logs, run_driver, start_cluster, state, wait_exit
from support import assert_same_results

pytestmark = pytest.mark.docker


def locked_dask() -> str:
    import re

    from containers import REPO

    return re.search(r"^dask==(\S+)", (REPO / "requirements" / "lock.txt").read_text(), re.M).group(1)


def test_results_in_s3_equal_local_cluster(session, s3, s3_input, reference, cluster):
    prefix = f"runs/{uuid.uuid4().hex[:8]}"
    driver = run_driver(session, s3, cluster.address_net, s3_input, f"s3://{BUCKET}/{prefix}", "driver-ok")
    code, out = wait_exit(driver), logs(driver)
    assert code == 0, out
    got = s3.report(prefix)
    assert got["status"] == "complete"
    assert_same_results(got, reference)
    # The work ran on the two worker containers, with the image's locked versions.
    with cluster.client() as client:
        workers = client.get_versions()["workers"]
    assert len(workers) == 2
    assert {w["packages"]["dask"] for w in workers.values()} == {got["versions"]["dask"]}
    # The other results are there too.
    keys = s3.keys(prefix)
    for name in ("report.html", "tag_counts.csv", "model.joblib"):
        assert f"{prefix}/{name}" in keys
    assert any(k.startswith(f"{prefix}/questions/") and k.endswith(".parquet") for k in keys)
    # The credentials reach neither the report nor the driver's output.
    assert s3.secret not in json.dumps(got) and s3.secret not in out


def test_worker_killed_mid_run_still_completes(session, s3, s3_input, reference, cluster):
    prefix = f"runs/{uuid.uuid4().hex[:8]}"
    victim, survivor = list(cluster.workers)
    driver = run_driver(session, s3, cluster.address_net, s3_input, f"s3://{BUCKET}/{prefix}", "driver-kill")
    with cluster.client() as client:

        def victim_busy() -> bool:
            info = client.scheduler_info(n_workers=-1)["workers"]
            addr = [a for a, w in info.items() if w.get("name") == victim]
            if not addr:
                return False
            return bool(client.processing(workers=addr).get(addr[0]) or client.has_what(workers=addr).get(addr[0]))

        deadline = time.monotonic() + 300
        while not victim_busy():
            assert state(driver) == "running", f"the driver ended before {victim} got work:\n{logs(driver)}"
            assert time.monotonic() < deadline, f"{victim} never got work"
            time.sleep(0.05)
        docker("kill", cluster.workers[victim])
        assert state(driver) == "running", "the driver had finished before the worker was killed"
        assert state(cluster.workers[victim]) == "exited"

        code, out = wait_exit(driver), logs(driver)
        assert code == 0, out
        # The scheduler saw the worker go; the run finished on the survivor.
        names = {w.get("name") for w in client.scheduler_info(n_workers=-1)["workers"].values()}
        assert names == {survivor}
    assert_same_results(s3.report(prefix), reference)


def test_worker_from_another_environment_is_refused(session, s3, s3_input):
    tag = uuid.uuid4().hex[:4]
    good, skew = f"worker-good-{tag}", f"worker-skew-{tag}"
    c = start_cluster(session, s3, f"scheduler-skew-{tag}", {
        good: {},
        # The test image carries an older dask/distributed in /opt/skew (docker/Dockerfile, stage test).
        skew: {"image": TEST_IMAGE, "env": {"PYTHONPATH": "/opt/skew"}},
    })
    try:
        with c.client() as client:
            versions = client.get_versions()["workers"]
        dask_versions = sorted({v["packages"]["dask"] for v in versions.values()})
        assert len(dask_versions) == 2, f"the skewed worker runs the same dask: {dask_versions}"
        prefix = f"runs/{uuid.uuid4().hex[:8]}"
        driver = run_driver(session, s3, c.address_net, s3_input, f"s3://{BUCKET}/{prefix}", f"driver-skew-{tag}")
        code, out = wait_exit(driver), logs(driver)
        assert code != 0, f"the driver ran against a mismatched worker:\n{out}"
        # One error line that names both sides: the driver's version and the skewed worker's.
        lines = [ln for ln in out.splitlines() if ln.startswith("posts-pipeline: error:")]
        assert len(lines) == 1, out
        assert "version mismatch" in lines[0], lines[0]
        ours, theirs = locked_dask(), next(v for v in dask_versions if v != locked_dask())
        assert f"dask {ours} here, {theirs} on worker" in lines[0], lines[0]
        assert "Traceback" not in out, out
        assert s3.keys(prefix) == [f"{prefix}.failed-driver.log"], "a refused run wrote results (or no log)"
    finally:
        Session.remove(*c.containers())
