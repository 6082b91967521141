"""Output: a run directory (local path or s3:// prefix) that is complete or not there at all, and that
replaces nothing but a run of ours.

Every run writes ``_RUN`` (when and where it started) first and ``_SUCCESS`` (a manifest of every
file) last, so that a directory is recognisably ours, finished or not. ``--overwrite`` replaces only
such a directory, and only if it holds no file its run did not write: never an input or a directory
holding one, never a file or anything else. Each refusal is one line and touches nothing.

Locally, a run works in a hidden sibling ``.NAME.partial-ID/`` that it keeps locked (``flock`` on
``_LOCK``) while it lives. The results go to ``run/`` in it and are renamed into place at the end:
one atomic step, which fails if another run put its results there first (``rename`` replaces a
directory only if it is empty). A run being overwritten is first renamed into the work directory,
and deleted once the new one is in place. A run killed by SIGKILL leaves its work directory
unlocked: the next run to the same parent removes it, putting back a run it had moved aside.

Object stores have no rename: the files go straight under the prefix, and a failed run deletes what
it wrote. A run claims the prefix by creating ``_RUN`` with a conditional write (``If-None-Match: *``)
or, to overwrite, by replacing the old ``_RUN`` only if it is unchanged (``If-Match``), and checks
that ``_RUN`` is still its own before it writes ``_SUCCESS``. Readers should look for ``_SUCCESS``
(as Hadoop and Spark jobs do).

A run with ``resume`` keeps its staging when it fails or is interrupted, with what it finished recorded
in ``_progress/`` (``pipeline.resume``), and takes over the staging such a run left for its output:
locally the newest unlocked work directory whose ``_progress/plan.json`` is there, on S3 the unfinished
run under the prefix (its ``_RUN`` replaced with ``If-Match``). ``_progress/`` is not part of the result.

The driver's log goes into the run as ``driver.log``. A failed run leaves it beside the output, as
``NAME.failed-driver.log`` (the staging is gone, or hidden), and a resumable one in its staging too,
where the run that resumes it carries it on. Sections may be added to it that the terminal does not show
(``attach``): a failed Kubernetes run's last lines of each Dask pod's log.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import posixpath
import re
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline import config, storage
from pipeline.errors import PipelineError
from pipeline.storage import storage_errors

log = logging.getLogger(__name__)

WRITER = "posts-pipeline"
MANIFEST = "_SUCCESS"  # written last: every file of the run and its size
MARKER = "_RUN"  # written first: who started the run, when and where
LOCK = "_LOCK"  # in a local work directory: locked by its run while it lives
REPLACED = "replaced"  # in a local work directory: the run being overwritten, moved aside
PROGRESS = "_progress"  # in the staging: what a run has finished, for --resume (not part of the result)
PLAN = "plan.json"  # in _progress: written first; a staging without it has nothing to resume
DRIVER_LOG = "driver.log"
FAILED_LOG = ".failed-driver.log"  # the driver's log of a failed run, beside its output: NAME.failed-driver.log
# The first line of a driver's log (config.LOG_FORMAT): an earlier failed run's log may be replaced, nothing else.
DRIVER_LOG_LINE = re.compile(rb"\d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+: ")
WORK_DIRECTORY = re.compile(r"\.(?P<name>.+)\.partial-[0-9a-f]{12}")


class RunDirectory:
    """Where a run writes (``path``, ``directory``, ``write``), put in place by ``commit`` or removed by
    ``abort``. ``inputs`` (the run's input files) are never written over."""

    def __init__(self, url: str, storage_options: dict, overwrite: bool = False, inputs: Iterable[str] = (),
                 resume: bool = False):
        self.url = url.rstrip("/")
        self.run_id = uuid.uuid4().hex[:12]
        self.claimed = False  # whether abort may delete what is there: never another run's results
        self.resume = resume
        self.recorded_plan: dict | None = None  # the plan of the interrupted run taken over (``resume``)
        self._earlier_log = b""  # the driver's log of the attempts before, carried on
        self._take_over = False  # on S3, with resume: the prefix holds an unfinished run of ours
        self._lock = None
        self.fs, path = storage.filesystem(self.url, storage_options)
        self.local = storage.is_local(self.fs)
        self.final = os.path.realpath(path) if self.local else path.rstrip("/")
        with storage_errors(self.url):
            self._refuse_inputs(inputs, storage_options)
            adopted = self._adopt_local() if self.local and resume else None
            try:
                self.replacing = self._replaceable(overwrite)
            except BaseException:
                self._unlock()
                raise
            self._replaced = self._identity(self.final) if self.replacing or self._take_over else None
            if self.local:
                self._start_local(adopted)
            else:
                self._start_remote()

    @property
    def progress(self) -> str:
        """Where the run records what it has finished (a URL workers can write to), outside its results."""
        return self.fs.unstrip_protocol(posixpath.join(self.work if self.local else self.final, PROGRESS))

    def progress_directory(self, name: str) -> str:
        """A directory under ``progress``, made now."""
        url = f"{self.progress}/{name}"
        with storage_errors(self.url):
            self.fs.makedirs(self.fs._strip_protocol(url), exist_ok=True)
        return url

    def path(self, name: str) -> str:
        """Where ``name`` is written now (a URL workers can write to)."""
        return self.fs.unstrip_protocol(posixpath.join(self.staging, name))

    def directory(self, name: str) -> str:
        """A directory for workers to write files into, made now (local files need it to exist)."""
        with storage_errors(self.url):
            self.fs.makedirs(posixpath.join(self.staging, name), exist_ok=True)
        return self.path(name)

    def write(self, name: str, data: bytes | str) -> None:
        with storage_errors(self.url):
            with self.fs.open(posixpath.join(self.staging, name), "wb", **storage.typed(self.fs, name)) as f:
                f.write(data.encode() if isinstance(data, str) else data)

    def commit(self, driver_log: bytes = b"") -> dict:
        """Write the driver's log, the manifest last, and put the run in place; return the manifest."""
        with storage_errors(self.url):
            if driver_log or self._earlier_log:
                self.write(DRIVER_LOG, self._earlier_log + driver_log)
            progress = posixpath.join(self.final, PROGRESS)
            if not self.local and self.fs.exists(progress):
                self.fs.rm(progress, recursive=True)
            self.fs.invalidate_cache()
            files = {
                posixpath.relpath(path, self.staging): info["size"]
                for path, info in self.fs.find(self.staging, detail=True).items()
            }
            manifest = {"written_by": WRITER, "run_id": self.run_id, "files": dict(sorted(files.items()))}
            if self.local:
                self.write(MANIFEST, json.dumps(manifest, indent=2))
                self._put_in_place()
            else:
                if not self._still_ours():
                    raise PipelineError(f"output {self.url} was taken over by another run (--overwrite) while this "
                                        "one ran: this run's results were not kept")
                self._create(MANIFEST, json.dumps(manifest, indent=2))
        return manifest

    def abort(self, driver_log: bytes = b"") -> None:
        """Remove what this run wrote, so that nothing half-written is left behind (and nothing else goes) —
        unless it may be resumed: then its staging stays, driver's log included. The log goes beside the
        output as well (``NAME.failed-driver.log``)."""
        try:
            if driver_log and self.claimed:
                self._write_failed_log(self._earlier_log + driver_log)
            if self.claimed and self.resume and (self.local or self._still_ours()):
                self.write(DRIVER_LOG, self._earlier_log + driver_log)
                if self.local:
                    _put_back(self.work, self.final)
            elif self.claimed and self.local:
                _tidy(self.work, self.final)
            elif self.claimed and self._still_ours():
                self.fs.rm(self.final, recursive=True)
        except Exception:  # the original error matters more than a failed clean-up
            pass
        finally:
            self._unlock()

    def _write_failed_log(self, data: bytes) -> None:
        path = self.final + FAILED_LOG
        try:
            if self.fs.exists(path) and not DRIVER_LOG_LINE.match(self.fs.cat_file(path, start=0, end=200)):
                log.warning("the failed run's log is not written to %s: a file that is not a driver's log is there",
                            path)
                return
            self.fs.pipe_file(path, data)
        except Exception:  # a full disk, say: then no log rather than half of one, and the clean-up goes on
            try:
                self.fs.rm(path)
            except Exception:
                pass

    # What may be written over

    def _refuse_inputs(self, inputs: Iterable[str], storage_options: dict) -> None:
        inside = self.final.rstrip("/") + "/"
        for url in inputs:
            fs, path = storage.filesystem(url, storage_options)
            if fs.protocol != self.fs.protocol:
                continue
            path = os.path.realpath(path) if self.local else path
            if path == self.final:
                raise PipelineError(f"output {self.url} is an input of this run: choose another output")
            if path.startswith(inside):
                raise PipelineError(f"output {self.url} holds an input of this run ({url.removeprefix('file://')}): "
                                    "choose another output")

    def _replaceable(self, overwrite: bool) -> bool:
        """Whether there is a run to replace (False: nothing there, or an empty directory); refuse anything else."""
        if self.local:
            self._refuse_file_parent()
        self.fs.invalidate_cache()
        if not self.fs.exists(self.final):
            return False
        if not self.fs.isdir(self.final):
            raise PipelineError(f"output {self.url} already exists and is a file, not a run directory: "
                                "not even --overwrite replaces it; choose another output")
        files = self._files(self.final)
        if not files:
            return False
        finished = self._check_ours(self.final, files)
        if not finished and self.resume and not self.local:
            # The interrupted run to take over (_start_remote): to resume, or to start again if it had
            # recorded no plan yet (killed while its cluster started, say).
            self._take_over = True
            if posixpath.join(PROGRESS, PLAN) in files:
                self._read_plan(self.final)
            return False
        if overwrite:
            return True
        if finished:
            raise PipelineError(f"output {self.url} already exists: choose a new run directory or pass --overwrite "
                                "to replace it")
        raise PipelineError(f"output {self.url} holds a run that has not finished (it failed, was killed or is still "
                            "going): choose a new run directory, or pass --overwrite to replace it")

    def _refuse_file_parent(self) -> None:
        ancestor = posixpath.dirname(self.final)
        while not os.path.lexists(ancestor):
            ancestor = posixpath.dirname(ancestor)
        if not os.path.isdir(ancestor):
            raise PipelineError(f"cannot create output {self.url}: {ancestor} is a file, not a directory")

    def _files(self, path: str) -> set[str]:
        return {posixpath.relpath(p, path) for p in self.fs.find(path)}

    def _check_ours(self, path: str, files: set[str]) -> bool:
        """Whether the run at ``path`` finished; refuse what is not a run of ours, or holds files its run did
        not write (a Spark job's ``_SUCCESS`` is an empty file, not our manifest)."""
        manifest = self._read_json(path, MANIFEST) if MANIFEST in files else {}
        if isinstance(manifest.get("files"), dict) and "run_id" in manifest:
            foreign = sorted(files - set(manifest["files"]) - {MANIFEST, MARKER})
            if foreign:
                raise PipelineError(f"output {self.url} holds files its run did not write ({', '.join(foreign[:3])}"
                                    f"{', …' if len(foreign) > 3 else ''}): not even --overwrite replaces it; "
                                    "move them away or choose another output")
            return True
        if MARKER in files and self._read_json(path, MARKER).get("written_by") == WRITER:
            return False
        raise PipelineError(f"output {self.url} already exists and is not a run directory of {WRITER} (no "
                            f"{MANIFEST} manifest or {MARKER} marker): not even --overwrite replaces it; "
                            "choose another output")

    def _read_plan(self, staging: str) -> bool:
        """Read the plan recorded in ``staging`` (and the driver's log so far), if it has one."""
        self.recorded_plan = self._read_json(posixpath.join(staging, PROGRESS), PLAN) or None
        if self.recorded_plan:
            log_file = posixpath.join(self.staging_of(staging), DRIVER_LOG)
            self._earlier_log = self.fs.cat_file(log_file) if self.fs.exists(log_file) else b""
        return self.recorded_plan is not None

    def staging_of(self, work: str) -> str:
        return posixpath.join(work, "run") if self.local else work

    def _read_json(self, path: str, name: str) -> dict:
        try:
            value = json.loads(self.fs.cat_file(posixpath.join(path, name)))
        except (ValueError, FileNotFoundError):
            return {}
        return value if isinstance(value, dict) else {}

    def _identity(self, path: str):
        """What tells the run at ``path`` from another one put there meanwhile."""
        if self.local:
            stat = os.stat(path)
            return stat.st_dev, stat.st_ino
        marker = posixpath.join(path, MARKER)
        return self.fs.info(marker)["ETag"] if self.fs.exists(marker) else None

    def _marker(self) -> str:
        return json.dumps({"written_by": WRITER, "run_id": self.run_id, "host": socket.gethostname(),
                           "pid": os.getpid(), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})

    # Local: a locked work directory beside the output, renamed into place

    def _adopt_local(self) -> str | None:
        """The newest work directory a run to this output left with a plan recorded, locked, its replaced run
        put back (the run that resumes sees the output as it was); None if there is none."""
        parent, name = posixpath.split(self.final)
        if not os.path.isdir(parent):
            return None
        found = []
        for entry in os.scandir(parent):
            match = WORK_DIRECTORY.fullmatch(entry.name)
            plan = posixpath.join(entry.path, PROGRESS, PLAN)
            if match and match["name"] == name and entry.is_dir(follow_symlinks=False) and os.path.isfile(plan):
                found.append((os.path.getmtime(plan), entry.path))
        for _, work in sorted(found, reverse=True):
            try:
                lock = open(posixpath.join(work, LOCK), "rb")
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock.close()
                continue  # a live run's
            self._lock = lock
            if self._read_plan(work):
                _put_back(work, self.final)
                return work
            self._unlock()
        return None

    def _start_local(self, adopted: str | None = None) -> None:
        parent, name = posixpath.split(self.final)
        os.makedirs(parent, exist_ok=True)
        if adopted:
            self.work, self.staging = adopted, self.staging_of(adopted)
            self.claimed = True
            _remove_leftovers(parent, name)  # not the one adopted: it is locked
            self.write(MARKER, self._marker())
            return
        _remove_leftovers(parent, name)
        starting = posixpath.join(parent, f".{name}.starting-{self.run_id}")
        self.work = posixpath.join(parent, f".{name}.partial-{self.run_id}")
        self.staging = posixpath.join(self.work, "run")
        try:
            os.mkdir(starting)
            self._lock = open(posixpath.join(starting, LOCK), "xb")
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.rename(starting, self.work)  # other runs see it only once it is locked
            self.claimed = True
            os.mkdir(self.staging)
            self.write(MARKER, self._marker())
        except BaseException:
            shutil.rmtree(starting, ignore_errors=True)
            self.abort()
            raise

    def _put_in_place(self) -> None:
        if self.replacing:
            self._move_aside(posixpath.join(self.work, REPLACED))
        try:
            os.rename(self.staging, self.final)
        except OSError as exc:
            if exc.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR):
                raise PipelineError(f"output {self.url} was created by another run while this one ran: this run's "
                                    "results were not kept (the other run's are intact)") from None
            if exc.errno in (errno.EBUSY, errno.EXDEV):
                raise PipelineError(f"cannot put the run in place at {self.url}: {exc.strerror} (a mount point? "
                                    "choose a directory inside it)") from None
            raise
        shutil.rmtree(self.work)  # with the run it replaced
        self._unlock()

    def _move_aside(self, aside: str) -> None:
        """Move the run being replaced into the work directory, if it is still the one checked at the start."""
        try:
            os.rename(self.final, aside)
        except FileNotFoundError:
            return  # removed meanwhile: nothing to replace
        try:
            if self._identity(aside) != self._replaced:
                raise PipelineError(f"output {self.url} was replaced by another run while this one ran: this run's "
                                    "results were not kept (the other run's are intact)")
            self._check_ours(aside, self._files(aside))
        except BaseException:
            os.rename(aside, self.final)
            raise

    def _unlock(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    # Object stores: the prefix claimed by a conditional write of _RUN

    def _start_remote(self) -> None:
        self.staging = self.final
        key = posixpath.join(self.final, MARKER)
        try:
            if self._replaced:  # replaced, or taken over to resume
                bucket, path, _ = self.fs.split_path(key)
                self.fs.call_s3("put_object", Bucket=bucket, Key=path, Body=self._marker().encode(),
                                IfMatch=self._replaced)
            else:
                self._create(MARKER, self._marker())
        except OSError as exc:  # 412 Precondition Failed: EINVAL from s3fs, FileExistsError for If-None-Match
            if not isinstance(exc, (FileExistsError, FileNotFoundError)) and exc.errno != errno.EINVAL:
                raise
            raise PipelineError(f"output {self.url} was claimed by another run just now: choose another "
                                "output") from None
        self.claimed = True
        restart = self.replacing or (self._take_over and not self.recorded_plan)
        old = [p for p in self.fs.find(self.final) if p != key] if restart else []
        if old:
            self.fs.rm(old)

    def _create(self, name: str, data: str) -> None:
        """Write ``name`` only if it does not exist (``If-None-Match: *``)."""
        self.fs.pipe_file(posixpath.join(self.final, name), data.encode(), mode="create")

    def _still_ours(self) -> bool:
        return self._read_json(self.final, MARKER).get("run_id") == self.run_id


def _remove_leftovers(parent: str, name: str) -> None:
    """Remove the work directories left in ``parent`` by runs that were killed: those no live run keeps locked,
    but not one that can be resumed, unless it is for ``name``, the output of the run starting now."""
    for entry in os.scandir(parent):
        match = WORK_DIRECTORY.fullmatch(entry.name)
        if not match or not entry.is_dir(follow_symlinks=False):
            continue
        if match["name"] != name and os.path.isfile(posixpath.join(entry.path, PROGRESS, PLAN)):
            continue
        try:
            lock = open(posixpath.join(entry.path, LOCK), "rb")
        except FileNotFoundError:
            if os.path.isdir(entry.path):
                log.warning("left alone %s: it has no %s, so whether a run still writes there is unknown "
                            "(remove it if none does)", entry.path, LOCK)
            continue
        with lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live run's
            try:
                _tidy(entry.path, posixpath.join(parent, match["name"]))
            except FileNotFoundError:
                continue  # another run removed it first
            except OSError as exc:
                log.warning("could not remove %s, left by a run that was killed: %s", entry.path, exc)
                continue
        log.warning("removed %s, left by a run that was killed", entry.path)


def _tidy(work: str, final: str) -> None:
    """Remove a local work directory, putting back the run it had moved aside if nothing took its place."""
    _put_back(work, final)
    shutil.rmtree(work)


def _put_back(work: str, final: str) -> None:
    """Put back the run a local work directory had moved aside, if nothing took its place (else remove it)."""
    replaced = posixpath.join(work, REPLACED)
    if os.path.isdir(replaced) and not os.path.lexists(final):
        os.rename(replaced, final)
        log.warning("put back %s: the run that was replacing it did not finish", final)
    elif os.path.isdir(replaced):
        shutil.rmtree(replaced)


class DriverLog:
    """The driver's log lines since the run started, at INFO whatever the terminal shows, credentials
    redacted, in an unnamed temporary file (nothing left behind by a kill)."""

    def __init__(self):
        self._file = tempfile.TemporaryFile()
        self.handler = logging.StreamHandler(open(self._file.fileno(), "w", encoding="utf-8", closefd=False))
        self.handler.setLevel(logging.INFO)
        self.handler.setFormatter(logging.Formatter(config.LOG_FORMAT, config.LOG_DATE_FORMAT))
        self.handler.addFilter(config.RedactingFilter())

    def read(self, failure: BaseException | None = None) -> bytes:
        """The lines so far, and a last one for ``failure``: the error the run ends with."""
        if failure is not None:
            said = str(failure) if isinstance(failure, PipelineError) else repr(failure)  # the filter redacts
            self.handler.handle(logging.makeLogRecord({"name": __name__, "levelno": logging.ERROR,
                                                       "levelname": "ERROR", "msg": f"the run failed: {said}"}))
        self.handler.flush()
        return os.pread(self._file.fileno(), os.fstat(self._file.fileno()).st_size, 0)

    def section(self, title: str, text: str) -> None:
        """``text`` under a ``----- title -----`` line, credentials redacted as the log lines are."""
        body = config.redacted_text(text).rstrip("\n")
        self.handler.acquire()  # not between the lines other threads log
        try:
            self.handler.stream.write(f"----- {title} -----\n{body}\n----- end of {title} -----\n")
            self.handler.stream.flush()
        finally:
            self.handler.release()

    def close(self) -> None:
        self.handler.close()
        self.handler.stream.close()
        self._file.close()


_OPEN: list[DriverLog] = []  # the driver logs being kept (one per run in progress), for ``attach``


@contextmanager
def driver_log() -> Iterator[DriverLog]:
    """The driver's log (every logger's records that reach the root) kept while the block runs."""
    lines = DriverLog()
    root = logging.getLogger()
    root.addHandler(lines.handler)
    _OPEN.append(lines)
    try:
        yield lines
    finally:
        _OPEN.remove(lines)
        root.removeHandler(lines.handler)
        lines.close()


def attach(title: str, text: str) -> bool:
    """Add ``text`` as a section of the driver's log of the run in progress (not shown on the terminal: too
    long for it); False if no run keeps a driver's log."""
    for lines in _OPEN:
        lines.section(title, text)
    return bool(_OPEN)


def write_parquet(frame: pd.DataFrame, url: str, schema: pa.Schema, storage_options: dict,
                  row_group_size: int | None = None) -> None:
    """One Parquet file of ``frame`` with the types of ``schema`` (and pandas' metadata, as dask writes it).
    It runs in a worker's task: a full disk there reaches the driver as one line naming the file."""
    table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
    with storage.open_file(url, "wb", storage_options) as f:
        pq.write_table(table, f, row_group_size=row_group_size)


# The run directory's layout: where each part of a result goes, named in one place.
def part_file(index: int) -> str:
    """The file of block ``index`` in a Parquet directory written by the first pass."""
    return f"part.{index}.parquet"


def site_file(site: str | None, name: str) -> str:
    """Where a site's own file goes: at the top of a one-site run, under ``sites/<site>/`` in a run of many."""
    return name if site is None else f"sites/{site}/{name}"
