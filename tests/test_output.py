"""The output is ours or untouched: what --overwrite replaces, two runs at once, killed runs, storage errors.

The cases a user meets run the installed command in its own process, on real files: a real dump
where the run is refused before any block is read, a generated one (with python and r questions)
where it must finish. The rest hold RunDirectory to the same rules directly, on real files.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

from pipeline.errors import PipelineError
from pipeline.generate import Options, generate
from pipeline.output import RunDirectory

from support import POSTS_PIPELINE, assert_refused, at_once, posts_pipeline

REAL_DUMP = Path(__file__).parent / "data" / "real-dumps" / "coffee.stackexchange" / "Posts.xml"
LOGGED = ("run", "--no-progress", "--blocksize", "512KiB")
RUN = (*LOGGED, "--quiet")  # stderr: only what is wrong


@pytest.fixture(scope="module")
def dump(tmp_path_factory) -> Path:
    """A small generated dump with python and r questions, for runs that finish."""
    path = tmp_path_factory.mktemp("dump") / "Posts.xml"
    generate(str(path), Options(size=2_000_000, seed=3))
    return path


def everything(root: Path) -> dict[str, bytes | None]:
    """Every file (its bytes) and directory (None) under ``root``, hidden ones included."""
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else None for p in sorted(root.rglob("*"))}


def assert_finished(out: Path) -> dict:
    """A complete run at ``out``: its manifest lists every file in it, and nothing of a run is left beside it."""
    manifest = json.loads((out / "_SUCCESS").read_text())
    files = {str(p.relative_to(out)): p.stat().st_size for p in out.rglob("*") if p.is_file()}
    assert manifest["files"] == {name: size for name, size in files.items() if name != "_SUCCESS"}
    assert [n for n in os.listdir(out.parent) if n.startswith(".")] == []
    return manifest


def finished_run(url: str, **kwargs) -> dict:
    """A finished run at ``url`` (without a cluster: RunDirectory as the pipeline uses it)."""
    out = RunDirectory(url, {}, **kwargs)
    out.directory("questions")
    out.write("questions/part.0.parquet", b"PAR1")
    out.write("report.json", json.dumps({"run": out.run_id}))
    return out.commit()


@contextmanager
def tmpfs(path: Path, options: str):
    """A real small or read-only file system at ``path``: a tmpfs, which needs root to mount."""
    path.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                             capture_output=True, text=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


# --overwrite replaces nothing but a run of ours

@pytest.mark.parametrize("args, message", [
    (["-i", "data.xml", "-o", "data.xml", "--overwrite"], "output data.xml is an input of this run"),
    (["-i", "dumps/Posts.xml", "-o", "dumps", "--overwrite"], "output dumps holds an input of this run"),
    (["-i", "data.xml", "-o", "notes", "--overwrite"], "output notes already exists and is not a run directory"),
    (["-i", "data.xml", "-o", "notes/todo.txt", "--overwrite"], "already exists and is a file, not a run directory"),
    (["-i", "data.xml", "-o", "data.xml/run"], "cannot create output data.xml/run: "),
])
def test_overwrite_never_replaces_what_is_not_a_run(tmp_path, monkeypatch, args, message):
    shutil.copy(REAL_DUMP, tmp_path / "data.xml")
    (tmp_path / "dumps").mkdir()
    shutil.copy(REAL_DUMP, tmp_path / "dumps" / "Posts.xml")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("buy coffee\n")
    before = everything(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert_refused(posts_pipeline(*RUN, *args), message)
    assert everything(tmp_path) == before  # byte for byte, and nothing added: no staging left behind
    assert before["data.xml"] == REAL_DUMP.read_bytes()


@pytest.mark.cluster
def test_overwrite_replaces_a_previous_run(dump, tmp_path):
    out = tmp_path / "runs" / "one"
    first = posts_pipeline(*RUN, "-i", str(dump), "-o", str(out))
    assert first.returncode == 0, first.stderr
    old = assert_finished(out)
    assert_refused(posts_pipeline(*RUN, "-i", str(dump), "-o", str(out)), "already exists: choose a new run directory")
    assert assert_finished(out) == old
    again = posts_pipeline(*RUN, "-i", str(dump), "-o", str(out), "--overwrite")
    assert again.returncode == 0, again.stderr
    new = assert_finished(out)
    assert new["run_id"] != old["run_id"] and set(new["files"]) == set(old["files"])
    assert json.loads((out / "report.json").read_text())["counts"]["questions"] > 100


def test_a_run_holding_files_it_did_not_write_is_not_replaced(tmp_path):
    out = tmp_path / "run"
    finished_run(str(out))
    (out / "my-notes.txt").write_text("keep me")
    before = everything(tmp_path)
    with pytest.raises(PipelineError, match=r"holds files its run did not write \(my-notes.txt\)"):
        RunDirectory(str(out), {}, overwrite=True)
    assert everything(tmp_path) == before


def test_another_tools_success_file_is_not_our_manifest(tmp_path):
    out = tmp_path / "spark-output"
    out.mkdir()
    (out / "_SUCCESS").write_bytes(b"")  # as Spark and Hadoop write it
    (out / "part-00000.parquet").write_bytes(b"PAR1")
    before = everything(tmp_path)
    with pytest.raises(PipelineError, match="is not a run directory of posts-pipeline"):
        RunDirectory(str(out), {}, overwrite=True)
    assert everything(tmp_path) == before


def test_an_empty_directory_is_used(tmp_path):
    (tmp_path / "run").mkdir()
    finished_run(str(tmp_path / "run"))
    assert_finished(tmp_path / "run")


# Two runs, one output: the second fails and the first stays whole

def test_the_second_of_two_runs_to_one_output_fails_and_keeps_the_first(tmp_path):
    url = str(tmp_path / "run")
    first, second = RunDirectory(url, {}), RunDirectory(url, {})
    for out in (first, second):
        out.write("report.json", json.dumps({"run": out.run_id}))
    first.commit()
    with pytest.raises(PipelineError, match="was created by another run while this one ran"):
        second.commit()
    second.abort()
    assert assert_finished(tmp_path / "run")["run_id"] == first.run_id
    assert json.loads((tmp_path / "run" / "report.json").read_text()) == {"run": first.run_id}
    assert os.listdir(tmp_path) == ["run"]


def test_the_second_of_two_overwriting_runs_fails_and_keeps_the_first(tmp_path):
    url = str(tmp_path / "run")
    finished_run(url)
    first, second = RunDirectory(url, {}, overwrite=True), RunDirectory(url, {}, overwrite=True)
    for out in (first, second):
        out.write("report.json", json.dumps({"run": out.run_id}))
    first.commit()
    with pytest.raises(PipelineError, match="was replaced by another run while this one ran"):
        second.commit()
    second.abort()
    assert assert_finished(tmp_path / "run")["run_id"] == first.run_id
    assert os.listdir(tmp_path) == ["run"]


@pytest.mark.cluster
def test_two_runs_started_at_once_with_one_output(dump, tmp_path):
    out = tmp_path / "runs" / "conc"
    done = at_once(*[[POSTS_PIPELINE, *RUN, "-i", str(dump), "-o", str(out)]] * 2)
    assert sorted(d.returncode for d in done) == [0, 2], [d.stderr for d in done]
    won, lost = sorted(done, key=lambda d: d.returncode)
    assert_refused(lost, "was created by another run while this one ran", "already exists")
    assert f"report: {out}/report.html" in won.stdout and not lost.stdout
    assert_finished(out)
    assert sorted(os.listdir(out.parent)) == ["conc", "conc.failed-driver.log"]  # the second run's log


# Runs killed by SIGKILL: what they leave is removed by the next run, never a live run's

@pytest.mark.cluster
def test_a_killed_runs_leftover_is_removed_by_the_next_run(dump, tmp_path):
    out = tmp_path / "runs" / "run"
    killed = subprocess.Popen([POSTS_PIPELINE, *LOGGED, "-i", str(dump), "-o", str(out)], stderr=subprocess.PIPE,
                              text=True)
    for line in killed.stderr:
        if "pass 1" in line:
            killed.kill()
            break
    killed.wait(timeout=60)
    killed.stderr.close()
    [leftover] = list(out.parent.iterdir())
    assert leftover.name.startswith(".run.partial-") and (leftover / "run" / "_RUN").exists()
    done = posts_pipeline(*LOGGED, "-i", str(dump), "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert f"removed {leftover}, left by a run that was killed" in done.stderr
    assert_finished(out)
    assert os.listdir(out.parent) == ["run"]


def test_a_live_runs_work_directory_is_left_alone(tmp_path):
    live = RunDirectory(str(tmp_path / "a"), {})
    RunDirectory(str(tmp_path / "b"), {}).abort()  # another run to the same parent, which cleans up
    assert os.path.isdir(live.work)
    live.write("report.json", "{}")
    live.commit()
    assert_finished(tmp_path / "a")


def test_a_run_killed_while_replacing_another_is_undone(tmp_path):
    url = str(tmp_path / "run")
    old = finished_run(url)
    killed = subprocess.run([sys.executable, "-c", f"""
import os, posixpath, signal
from pipeline.output import REPLACED, RunDirectory
out = RunDirectory({url!r}, {{}}, overwrite=True)
out.write("report.json", "{{}}")
out._move_aside(posixpath.join(out.work, REPLACED))  # the first step of commit: the old run moved aside
os.kill(os.getpid(), signal.SIGKILL)
"""])
    assert killed.returncode == -signal.SIGKILL and not os.path.exists(url)
    RunDirectory(str(tmp_path / "other"), {}).abort()
    assert assert_finished(tmp_path / "run")["run_id"] == old["run_id"]
    assert os.listdir(tmp_path) == ["run"]


def test_a_leftover_without_a_lock_is_reported_and_kept(tmp_path, caplog):
    leftover = tmp_path / ".run.partial-0123456789ab"  # as runs of earlier versions left them
    (leftover / "questions").mkdir(parents=True)
    RunDirectory(str(tmp_path / "run"), {}).abort()
    assert leftover.is_dir()
    assert f"left alone {leftover}: it has no _LOCK" in caplog.text


# Storage errors: one line naming the path

def test_a_read_only_file_system_is_one_line(tmp_path):
    with tmpfs(tmp_path / "ro", "ro") as ro:
        assert_refused(posts_pipeline(*RUN, "-i", str(REAL_DUMP), "-o", str(ro / "run")),
                       f"read-only file system: cannot write {ro}/run")


@pytest.mark.cluster
def test_a_full_disk_is_one_line_naming_the_file(dump, tmp_path):
    """The workers write the Parquet: the disk fills in a task, and its error reaches the driver as one line."""
    with tmpfs(tmp_path / "disk", "size=400k") as disk:
        done = posts_pipeline(*RUN, "--blocksize", "256KiB", "-i", str(dump), "-o", str(disk / "run"))
        assert done.returncode == 2, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        last = done.stderr.strip().splitlines()[-1]
        assert last.startswith(f"posts-pipeline: error: no space left on the device: cannot write {disk}/"), last
        # A block's Parquet file, or its record as done (resume): whichever the disk filled on.
        assert last.endswith(tuple(f".{kind}: free some space or choose another output"
                                   for kind in ("parquet", "npy", "json"))), last
        assert "Traceback (most recent call last)" not in done.stderr
        assert {p.name for p in disk.iterdir()} <= {"run.failed-driver.log"}  # if the log still fitted


def test_permission_denied_is_one_line(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    as_root = os.geteuid() == 0  # root may write anywhere, but not into an immutable directory
    if as_root:
        subprocess.run(["chattr", "+i", str(locked)], check=True)
    else:
        locked.chmod(0o555)
    try:
        with pytest.raises(PipelineError, match=f"^permission denied: {locked}/run "):
            RunDirectory(str(locked / "run"), {})
        assert list(locked.iterdir()) == []
    finally:
        if as_root:
            subprocess.run(["chattr", "-i", str(locked)], check=True)
        else:
            locked.chmod(0o755)
