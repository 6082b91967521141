"""Cluster: where the work runs, chosen once, outside the stages (they never know which).

``local`` starts an embedded LocalCluster; ``scheduler`` joins an existing one at
``tcp://host:8786`` after checking that its versions match ours; ``kubernetes`` starts workers
with dask-kubernetes (``pipeline/kubernetes.py``).
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.forkserver
import os
import sys
import warnings
from contextlib import contextmanager
from collections.abc import Iterator

import dask
from dask.utils import parse_timedelta
from distributed import Client, LocalCluster
from distributed.versions import VersionMismatchWarning

from pipeline.errors import PipelineError

log = logging.getLogger(__name__)

KINDS = ("local", "scheduler", "kubernetes")
# Modules whose versions must match on driver, scheduler and workers: task graphs and
# pickled objects (frames, the model) cross between them.
CHECKED = ("dask", "distributed", "pandas", "numpy", "sklearn", "dask_ml", "pyarrow", "cloudpickle")


def _python(info: dict) -> str:
    return ".".join(str(info["host"]["python"]).split(".")[:2])


def mismatches(versions: dict) -> list[str]:
    """Differences between the client's versions and the scheduler's and workers', in words."""
    ours = versions["client"]
    sides = {"scheduler": versions["scheduler"], **{f"worker {a}": v for a, v in versions["workers"].items()}}
    found = []
    for side, theirs in sides.items():
        if _python(theirs) != _python(ours):
            found.append(f"python {_python(ours)} here, {_python(theirs)} on {side}")
        for name in CHECKED:
            mine, other = ours["packages"].get(name), theirs["packages"].get(name)
            if mine != other and not (side == "scheduler" and name not in ("dask", "distributed")):
                found.append(f"{name} {mine} here, {other} on {side}")
    return found


def check_versions(client: Client) -> None:
    """Refuse a cluster whose Python or Dask stack differs from the driver's."""
    problems = mismatches(client.get_versions(packages=list(CHECKED)))
    if problems:
        raise PipelineError(
            f"version mismatch between this driver and the cluster at {client.scheduler.address}: "
            + "; ".join(problems) + " — run the driver from the same image or lock file as the workers"
        )


# What the tasks of a run import: preloaded in the fork server that local workers start from.
WORKER_MODULES = ["distributed", "pipeline.questions", "pipeline.clean", "pipeline.analytics", "pipeline.model",
                  "dask.dataframe.io.parquet.arrow"]


def start_method(setting: str) -> str:
    """``auto``: a fork server on Linux, spawn elsewhere (macOS system libraries are not fork-safe)."""
    if setting == "auto":
        return "forkserver" if sys.platform.startswith("linux") else "spawn"
    return setting


def prepare_local(settings: dict, wait: bool = False) -> None:
    """Start the fork server local workers are forked from, importing what their tasks need.

    Called as early as possible: the server imports while the driver does, on another core, and
    then every worker of every run in this process starts in a fraction of a second, where a
    spawned worker spends 1-2 s importing pandas, pyarrow, dask and scikit-learn again. Forked
    from a fresh single-threaded server, workers inherit none of the driver's threads or sockets
    (forking the driver itself was measured to lose a task about one run in ten). ``wait``
    returns only once the server is ready (for benchmarks that time the run alone).
    """
    if start_method(settings["start-method"]) != "forkserver":
        return
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(WORKER_MODULES)
    multiprocessing.forkserver.ensure_running()
    if wait:  # until the server has imported them: a first child is forked only then
        child = context.Process(target=int)
        child.start()
        child.join()


def _local(settings: dict) -> LocalCluster:
    prepare_local(settings)
    with dask.config.set({"distributed.worker.multiprocessing-method": start_method(settings["start-method"])}):
        return LocalCluster(
            n_workers=settings["n-workers"],
            threads_per_worker=settings["threads-per-worker"],
            memory_limit=settings["memory-limit"],
            dashboard_address=settings["dashboard-address"],
            processes=True,
            env=dict(os.environ),  # forked from the server, workers would have its environment, not ours
        )


def _client(address, timeout: float) -> Client:
    with warnings.catch_warnings():
        # distributed prints its own table of version differences; check_versions says it in one line.
        warnings.simplefilter("ignore", VersionMismatchWarning)
        return Client(address, timeout=timeout)


def _scheduler(address: str | None, connect_timeout: str) -> Client:
    if not address:
        raise PipelineError("--cluster scheduler needs --scheduler tcp://host:8786")
    timeout = parse_timedelta(connect_timeout)
    try:
        client = _client(address, timeout)
    except OSError as e:
        raise PipelineError(f"cannot reach the scheduler at {address} within {connect_timeout}: {e}") from None
    try:
        client.wait_for_workers(1, timeout=timeout)
        check_versions(client)
    except TimeoutError:
        client.close()
        raise PipelineError(f"no worker joined the scheduler at {address} within {connect_timeout}") from None
    except BaseException:
        client.close()
        raise
    return client


def _kubernetes(connect_timeout: str):
    from pipeline import config, kubernetes

    cluster = kubernetes.start(config.get("cluster.kubernetes"))
    client = None
    try:
        client = _client(cluster.kube, parse_timedelta(connect_timeout))
        check_versions(client)
    except BaseException:
        if client is not None:
            client.close()
        cluster.close()  # deletes the DaskCluster
        raise
    return client, cluster


@contextmanager
def connect(kind: str, scheduler_address: str | None, local: dict, connect_timeout: str) -> Iterator[Client]:
    """A client for the chosen cluster, closed (and a cluster we started stopped) on the way out."""
    if kind not in KINDS:
        raise PipelineError(f"cluster kind must be one of {', '.join(KINDS)}, not {kind!r}")
    cluster = None
    if kind == "local":
        cluster = _local(local)
        client = Client(cluster)
    elif kind == "scheduler":
        client = _scheduler(scheduler_address, connect_timeout)
    else:
        client, cluster = _kubernetes(connect_timeout)
    log.info("dashboard: %s", client.dashboard_link)
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
