"""Cluster: where the work runs, chosen once, outside the stages (they never know which).

``local`` starts an embedded LocalCluster; ``scheduler`` joins an existing one at
``tcp://host:8786`` after checking that its versions match ours; ``kubernetes`` starts a
DaskCluster for the run (``pipeline/k8s/``). Each is a context manager of one shape: it takes the
``cluster`` settings, yields a ``Client``, and stops what it started exactly once.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.forkserver
import os
import signal
import sys
import threading
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import dask
from distributed import Client, LocalCluster
from distributed.client import AllExit
from distributed.versions import VersionMismatchWarning

from pipeline import archive, model
from pipeline.errors import PipelineError
from pipeline.settings import ClusterSettings, LocalSettings, section

log = logging.getLogger(__name__)

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


# What the tasks of a run import, the classifier's libraries too: preloaded once in the fork server that
# local workers start from, beside the driver's start (pipeline.fork_server last: it freezes them).
WORKER_MODULES = ["distributed", "pipeline.questions", "pipeline.clean", "pipeline.analytics", "pipeline.model",
                  *model.CLASSIFIER_MODULES, "dask.dataframe.io.parquet.arrow", "pipeline.fork_server"]


# ``processes: auto``: plain inputs of at most this many bytes in all are passed by threads of the driver's
# process. Measured on 2 cores, whole process: a 3 MB real site 3.2 CPU s in threads against 9.5 with worker
# processes; 200 MB of generated text 9.0 against 17.2 CPU s (10.3 against 19.5 s wall) — processes cost the
# fork server's imports, the nannies, the dashboard, and results moved between processes. Above it (not
# measured) worker processes: one over its memory limit is restarted alone, and more cores than 2 are not
# held up by the GIL.
IN_PROCESS_UP_TO = 256 * 2**20


def in_process(settings: LocalSettings, files: Mapping[str, int] | None) -> bool:
    """Whether the local workers are threads of this process (``processes``): for ``auto``, when ``files``
    (path → size; None if not known) are small and none is packed (its size is not the work's)."""
    if settings.processes != "auto":
        return not settings.processes
    return (files is not None and sum(files.values()) <= IN_PROCESS_UP_TO
            and not any(map(archive.named_packed, files)))


def local_files(inputs: list[str] | tuple[str, ...] | None) -> dict[str, int] | None:
    """The sizes of ``inputs`` if each is a plain local path (no URL, no glob) that exists, else None: what
    ``in_process`` can tell before the inputs are listed (they are, then, by ``read.expand``)."""
    if not inputs or any("://" in p or any(c in p for c in "*?[") for p in inputs):
        return None
    try:
        return {p: os.stat(p).st_size for p in inputs}
    except OSError:
        return None


def start_method(setting: str) -> str:
    """``auto``: a fork server on Linux, spawn elsewhere (macOS system libraries are not fork-safe)."""
    if setting == "auto":
        return "forkserver" if sys.platform.startswith("linux") else "spawn"
    return setting


_server_spawned = False


@contextmanager
def _sigint_ignored() -> Iterator[None]:
    """SIGINT ignored while the fork server is spawned, so that it starts (and forks every worker) with
    SIGINT ignored: Ctrl-C reaches the whole process group, and only the driver should act on it (else
    the server prints a traceback from its imports). Only in the main thread and for the first spawn:
    a Ctrl-C within those milliseconds is lost (blocking it instead does not work: threads that
    libraries start in the server unblock it)."""
    global _server_spawned
    if _server_spawned or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
        _server_spawned = True
    finally:
        signal.signal(signal.SIGINT, previous)


def prepare_local(settings: LocalSettings | Mapping, wait: bool = False) -> None:
    """Start the fork server local workers are forked from, importing what their tasks need.

    Called as early as possible: the server imports while the driver does, on another core, and
    then every worker of every run in this process starts in a fraction of a second, where a
    spawned worker spends 1-2 s importing pandas, pyarrow, dask and scikit-learn again. Forked
    from a fresh single-threaded server, workers inherit none of the driver's threads or sockets
    (forking the driver itself was measured to lose a task about one run in ten). ``wait``
    returns only once the server is ready (for benchmarks that time the run alone).
    """
    if start_method(section(LocalSettings, settings).start_method) != "forkserver":
        return
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(WORKER_MODULES)
    with _sigint_ignored():
        multiprocessing.forkserver.ensure_running()
    if wait:  # until the server has imported them: a first child is forked only then
        child = context.Process(target=int)
        child.start()
        child.join()


def dask_setup(worker) -> None:
    """Run by each local worker process as it starts (this module is their ``preload``).

    Ctrl-C reaches the whole process group: the driver stops the run, and the workers' nannies stop
    them, without a traceback from each. Then the workers' logs, as ``quiet_workers``.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    quiet_workers()


def quiet_workers() -> None:
    """In a worker's process (a worker process, or the driver's for worker threads): a worker stopped
    mid-task warns that the task was cancelled: the driver's one line says why. A task that fails is logged
    by the worker ("Compute Failed", with its traceback) and raised at the driver: the driver's line is the
    one the user needs. A worker whose heartbeat finds the scheduler gone (it closes first, or the run was
    stopped) logs a traceback too: the driver, which owns both, has said or will say what happened."""
    logging.getLogger("distributed.worker.state_machine").setLevel(logging.ERROR)
    worker_log = logging.getLogger("distributed.worker")
    if _said_by_the_driver not in worker_log.filters:
        worker_log.addFilter(_said_by_the_driver)


WORKER_NOISE = ("Compute Failed", "Failed to communicate with scheduler during heartbeat")


def _said_by_the_driver(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith(WORKER_NOISE)


def _local_cluster(settings: LocalSettings, timeout: float, files: Mapping[str, int] | None) -> LocalCluster:
    if in_process(settings, files):
        log.info("local cluster: %d worker(s) of %d thread(s) in this process (cluster.local.processes: %s)",
                 settings.n_workers, settings.threads_per_worker, settings.processes)
        quiet_workers()
        # no memory limit: each worker would measure the whole process (the driver's imports, the other
        # worker) against it, and pause for good under a small one; no nanny would restart it either
        return _started(settings, timeout, processes=False, memory_limit=0)
    prepare_local(settings)
    with dask.config.set({"distributed.worker.multiprocessing-method": start_method(settings.start_method)}):
        # forked from the server, workers would have its environment, not ours
        return _started(settings, timeout, processes=True, env=dict(os.environ), preload=[__name__])


def dashboard(setting: str, processes: bool) -> bool:
    """Whether the scheduler serves the dashboard. ``auto``: for worker processes, not for threads of this
    process — a run small enough for them is over in about the time a page takes to load, and starting the
    dashboard (bokeh) costs 0.7 CPU s of it. Its HTTP server (``/metrics``, ``/health``) runs either way."""
    return processes if setting == "auto" else True


def _started(settings: LocalSettings, timeout: float, **kwargs) -> LocalCluster:
    try:
        return LocalCluster(**{
            "n_workers": settings.n_workers,
            "threads_per_worker": settings.threads_per_worker,
            "memory_limit": settings.memory_limit,
            "dashboard_address": ":0" if settings.dashboard_address == "auto" else settings.dashboard_address,
            "scheduler_kwargs": {"dashboard": dashboard(settings.dashboard_address, kwargs["processes"])},
            "death_timeout": timeout,  # a worker that has not started by then fails the start, not hangs it
            **kwargs,
        })
    except Exception as e:  # noqa: BLE001 - distributed fails a start in many ways (an AssertionError among them)
        raise PipelineError(
            f"the embedded LocalCluster could not start its {settings.n_workers} workers within {timeout:g} s "
            f"({type(e).__name__}: {e or 'timed out'}) — try fewer (--n-workers) or a longer "
            "cluster.connect-timeout"
        ) from None


@contextmanager
def local(settings: ClusterSettings, files: Mapping[str, int] | None = None) -> Iterator[Client]:
    """An embedded LocalCluster of worker processes (or threads, ``in_process``, for the inputs ``files``),
    stopped (workers and all) on the way out."""
    with _local_cluster(settings.local, settings.connect_timeout, files) as cluster, Client(cluster) as client:
        yield client


def _client(address, timeout: float) -> Client:
    with warnings.catch_warnings():
        # distributed prints its own table of version differences; check_versions says it in one line.
        warnings.simplefilter("ignore", VersionMismatchWarning)
        return Client(address, timeout=timeout)


@contextmanager
def scheduler(settings: ClusterSettings) -> Iterator[Client]:
    """A client of the scheduler at ``scheduler-address`` once a worker has joined it and the versions match;
    the cluster is left running."""
    address, timeout = settings.scheduler_address, settings.connect_timeout
    if not address:
        raise PipelineError("--cluster scheduler needs --scheduler tcp://host:8786")
    try:
        client = _client(address, timeout)
    except OSError as e:
        raise PipelineError(f"cannot reach the scheduler at {address} within {timeout:g} s: {e}") from None
    with client:
        try:
            client.wait_for_workers(1, timeout=timeout)
        except TimeoutError:
            raise PipelineError(f"no worker joined the scheduler at {address} within {timeout:g} s") from None
        check_versions(client)
        yield client


@contextmanager
def kubernetes(settings: ClusterSettings) -> Iterator[Client]:
    """A DaskCluster of this run's own (``pipeline.k8s``), deleted on the way out, whatever happens."""
    from pipeline.k8s import lifecycle

    with lifecycle.running(settings.kubernetes) as kube, _client(kube, settings.connect_timeout) as client:
        check_versions(client)
        yield client


# Every backend: a context manager that takes the ``cluster`` settings and yields a Client, and cleans up once.
BACKENDS = {"local": local, "scheduler": scheduler, "kubernetes": kubernetes}


class _WithoutAllExit(logging.Filter):
    """Drop asyncio's "Task exception was never retrieved" for distributed's ``AllExit``: ``Client.gather``
    leaves one per future when it is interrupted (Ctrl-C, SIGTERM) or a task fails, and they say nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and record.exc_info[0] is AllExit)


def _quiet_gather() -> None:
    asyncio_log = logging.getLogger("asyncio")
    if not any(isinstance(f, _WithoutAllExit) for f in asyncio_log.filters):
        asyncio_log.addFilter(_WithoutAllExit())


@contextmanager
def connect(settings: ClusterSettings | Mapping, files: Mapping[str, int] | None = None) -> Iterator[Client]:
    """A client of the cluster ``settings.cluster`` names (or its mapping, checked the same way), for the
    inputs ``files`` (path → size); whatever the backend started is stopped on the way out."""
    settings = section(ClusterSettings, settings)
    _quiet_gather()
    backend = local(settings, files) if settings.kind == "local" else BACKENDS[settings.kind](settings)
    with backend as client:
        if settings.kind != "local" or dashboard(settings.local.dashboard_address, client.cluster.processes):
            log.info("dashboard: %s", client.dashboard_link)
        yield client
