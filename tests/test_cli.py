"""The posts-pipeline command as a user runs it: a real process, an embedded LocalCluster."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from pipeline.cli import main

COMMAND = [sys.executable, "-m", "pipeline"]


def cli(*args: str, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*COMMAND, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


@pytest.mark.parametrize("args", [[], ["run"], ["generate"], ["config"]])
def test_help_explains_every_command(args):
    done = cli(*args, "--help")
    assert done.returncode == 0
    assert "usage: posts-pipeline" in done.stdout
    if args == ["run"]:
        for flag in ("--input", "--output", "--scheduler", "--cluster", "--storage-option", "--tag",
                     "--classifier-tags", "--html-parser", "--visualize", "--config", "POSTS_PIPELINE__"):
            assert flag in done.stdout


@pytest.mark.cluster
def test_generate_then_run_end_to_end(tmp_path):
    data, out = tmp_path / "Posts.xml", tmp_path / "runs" / "first"
    made = cli("generate", "--output", str(data), "--size", "2MB", "--seed", "3", "--tag-form", "pipe")
    assert made.returncode == 0, made.stderr
    assert "wrote" in made.stdout and data.stat().st_size >= 2_000_000
    done = cli("run", "--input", str(data), "--output", str(out), "--n-workers", "2", "--blocksize", "512KiB",
               "--top", "5", "--progress", env={"POSTS_PIPELINE__ANALYTICS__TAG": "r"})
    assert done.returncode == 0, done.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["cooccurrence"]["tag"] == "r"  # from the environment
    assert len(report["top_tags"]) == 5  # from the flag
    assert report["settings"]["partitions"] >= 4
    assert f"report: {out}/report.html" in done.stdout
    assert "dashboard: http://" in done.stderr  # the dashboard link is printed
    assert "100% Completed" in done.stdout  # the progress bar
    assert "Traceback" not in done.stderr, done.stderr
    assert (out / "_SUCCESS").exists()


@pytest.mark.parametrize("args, message", [
    (["run", "--input", "/no/such/Posts.xml", "--output", "/tmp/x"], "no input file matches /no/such/Posts.xml"),
    (["run", "--input", "/tmp", "--output", "/tmp/x"], "/tmp is a directory or bucket"),
    (["run", "--output", "/tmp/x"], "an input (--input PATH_OR_URL)"),
    (["run", "--config", "/no/such.yaml", "-i", "a", "-o", "b"], "config file not found"),
])
def test_user_errors_are_one_line(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_unknown_option_says_what_to_fix(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["run", "--inptu", "x"])
    assert exit.value.code == 2
    assert "unrecognized arguments: --inptu" in capsys.readouterr().err


def test_config_shows_the_environment_and_hides_secrets():
    done = cli("config", env={"POSTS_PIPELINE__CLUSTER__LOCAL__N_WORKERS": "6",
                              "POSTS_PIPELINE__STORAGE_OPTIONS__SECRET": "hunter2"})
    assert done.returncode == 0
    assert "n-workers: 6" in done.stdout.replace("n_workers", "n-workers")
    assert "hunter2" not in done.stdout and "secret: '***'" in done.stdout


@pytest.mark.cluster
def test_visualize_writes_the_task_graph(posts, tmp_path):
    graph = tmp_path / "graph.svg"
    assert main(["run", "-i", posts, "-o", str(tmp_path / "run"), "--no-progress", "--blocksize", "4MiB",
                 "--visualize", str(graph)]) == 0
    svg = graph.read_text()
    assert svg.startswith("<?xml") and "<svg" in svg and "first_pass" in svg


@pytest.mark.cluster
def test_sigterm_stops_the_run_and_removes_partial_output(posts, tmp_path):
    """Kubernetes stops a job's pod with SIGTERM: the run must unwind, not leave half a result."""
    out = tmp_path / "runs" / "stopped"
    process = subprocess.Popen([*COMMAND, "run", "-i", posts, "-o", str(out), "--blocksize", "256KiB"],
                               stderr=subprocess.PIPE, text=True)
    for line in process.stderr:
        if "pass 1" in line:
            process.send_signal(signal.SIGTERM)
            break
    rest = process.stderr.read()
    assert process.wait(timeout=120) == 143  # 128 + SIGTERM
    assert "interrupted; partial output removed" in rest
    assert list((tmp_path / "runs").iterdir()) == []
