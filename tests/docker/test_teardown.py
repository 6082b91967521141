"""Teardown: nothing of a session is left behind, when its tests fail and when it is killed.

Each test runs an inner pytest session (the same fixtures, copied beside a small test file)
in a subprocess and then looks for anything carrying that session's pid label."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from containers import LABEL, PID_LABEL, REPO, docker, remove_stale_sessions

pytestmark = pytest.mark.docker
HERE = Path(__file__).resolve().parent

FAILING = '''
import pytest
from containers import run_driver, BUCKET

pytestmark = pytest.mark.docker

def test_fails_with_everything_running(session, s3, cluster):
    run_driver(session, s3, cluster.address_net, "s3://posts/missing.xml", f"s3://{BUCKET}/x", "driver")
    assert False, "deliberate failure"
'''

HANGING = '''
import time
import pytest

pytestmark = pytest.mark.docker

def test_hangs(session, s3, cluster):
    time.sleep(600)
'''


def inner_session(tmp_path: Path, body: str) -> subprocess.Popen:
    for path in (HERE / "conftest.py", HERE / "containers.py"):
        shutil.copy(path, tmp_path / path.name)
    shutil.copytree(HERE.parent / "support", tmp_path / "support", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "test_inner.py").write_text(body)
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "-m", "docker", "-p", "no:cacheprovider", "-c", str(REPO / "pyproject.toml"),
         "--rootdir", str(tmp_path), str(tmp_path / "test_inner.py")],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "POSTS_PIPELINE_REPO": str(REPO)},
    )


def left_by(pid: int) -> list[str]:
    label = f"{PID_LABEL}={pid}"
    return (docker("container", "ls", "-aq", "--filter", f"label={label}").stdout.split()
            + docker("network", "ls", "-q", "--filter", f"label={label}").stdout.split())


def test_failing_tests_leave_nothing(tmp_path):
    proc = inner_session(tmp_path, FAILING)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 1, out          # the test failed (and its teardown did not error)
    assert "deliberate failure" in out, out
    assert "1 failed" in out and "error" not in out.splitlines()[-1], out
    assert left_by(proc.pid) == []


def test_killed_session_is_cleaned_up_by_the_next(tmp_path):
    proc = inner_session(tmp_path, HANGING)
    try:
        deadline = time.monotonic() + 300
        # Wait until the inner session's scheduler and workers run, then kill pytest outright.
        while len(docker("container", "ls", "-q", "--filter", f"label={PID_LABEL}={proc.pid}").stdout.split()) < 4:
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "the inner session did not start its containers"
            time.sleep(0.5)
        time.sleep(3)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    assert left_by(proc.pid), "a SIGKILLed session should have left its containers (nothing ran its teardown)"
    remove_stale_sessions()  # what the next session does first
    assert left_by(proc.pid) == []
    assert LABEL  # the label the cleanup keys on
