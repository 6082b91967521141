"""The posts-pipeline command as a user runs it: a real process, an embedded LocalCluster."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline import cli as pipeline_cli
from pipeline import cluster, read
from pipeline.cli import main
from pipeline.k8s import lifecycle

from support import POSTS_PIPELINE, posts_pipeline, session_processes, wait_for


def assert_one_line_error(done: subprocess.CompletedProcess, message: str) -> None:
    """Exit 2, and stderr is the one line that says what to fix (no traceback, no log line before it)."""
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("posts-pipeline: error: "), done.stderr
    assert "Traceback" not in done.stderr
    assert message in done.stderr, done.stderr


# A bad option, variable or config value: (run arguments, environment, config file text, message).
BAD_SETTINGS = {
    "n-workers 0": (["--n-workers", "0"], {}, None,
                    "cluster.local.n-workers must be an integer ≥ 1, not 0 (from --n-workers)"),
    "n-workers -1": (["--n-workers", "-1"], {}, None, "cluster.local.n-workers must be an integer ≥ 1, not -1"),
    "n-workers abc": (["--n-workers", "abc"], {}, None, "cluster.local.n-workers must be an integer ≥ 1, not 'abc'"),
    "n-workers 100": (["--n-workers", "100"], {}, None, "cluster.local.n-workers must be an integer from 1 to"),
    "blocksize abc": (["--blocksize", "abc"], {}, None, "blocksize must be a size such as 16MiB, at least 64KiB, "
                                                         "not 'abc' (from --blocksize)"),
    "blocksize 0": (["--blocksize", "0"], {}, None, "at least 64KiB, not '0'"),
    "blocksize 1B": (["--blocksize", "1B"], {}, None, "at least 64KiB, not '1B'"),
    "memory-limit abc": (["--memory-limit", "abc"], {}, None, "cluster.local.memory-limit must be 'auto', 0 (no limit) "
                                                             "or a size such as 4GiB"),
    "test-size 0": (["--test-size", "0"], {}, None, "classifier.test-size must be a number in (0, 1), not 0.0"),
    "test-size -1": (["--test-size", "-1"], {}, None, "classifier.test-size must be a number in (0, 1), not -1.0"),
    "test-size nan": (["--test-size", "nan"], {}, None, "classifier.test-size must be a number in (0, 1), not nan"),
    "test-size 1": (["--test-size", "1"], {}, None, "classifier.test-size must be a number in (0, 1), not 1.0"),
    "test-size 2": (["--test-size", "2"], {}, None, "classifier.test-size must be a number in (0, 1), not 2.0"),
    "random-state -1": (["--random-state", "-1"], {}, None, "classifier.random-state must be an integer from 0 to "
                                                           "4294967295, not -1 (from --random-state)"),
    "progress yes (file)": ([], {}, 'progress: "yes"', "progress must be one of auto, true, false, not 'yes' "
                                                       "(from config file"),
    "progress yes (env)": ([], {"POSTS_PIPELINE__PROGRESS": "yes"}, None, "not 'yes' (from POSTS_PIPELINE__PROGRESS)"),
    "html-parser": (["--html-parser", "nosuch"], {}, None, "clean.html-parser must be one of fast, bs4, not 'nosuch' "
                                                         "(from --html-parser)"),
    "html-parser (file)": ([], {}, "clean:\n    html-parser: lxml", "clean.html-parser must be one of fast, bs4, "
                                                                   "not 'lxml' (from config file"),
    "classifier tags alike": (["--classifier-tags", "python", "python"], {}, None,
                              "classifier.tags must be a list of 2 different strings, not ['python', 'python']"),
    "classifier tags one": ([], {}, "classifier:\n    tags: [python]", "classifier.tags must be a list of 2 different "
                                                                       "strings, not ['python'] (from config file"),
    "classifier tags env": ([], {"POSTS_PIPELINE__CLASSIFIER__TAGS": "python"}, None,
                            "not 'python' (from POSTS_PIPELINE__CLASSIFIER__TAGS)"),
    "env n-workers": ([], {"POSTS_PIPELINE__CLUSTER__LOCAL__N_WORKERS": "abc"}, None,
                      "cluster.local.n-workers must be an integer ≥ 1, not 'abc' "
                      "(from POSTS_PIPELINE__CLUSTER__LOCAL__N_WORKERS)"),
    "env blocksize": ([], {"POSTS_PIPELINE__BLOCKSIZE": "abc"}, None, "not 'abc' (from POSTS_PIPELINE__BLOCKSIZE)"),
    "env test-size": ([], {"POSTS_PIPELINE__CLASSIFIER__TEST_SIZE": "nan"}, None,
                      "not 'nan' (from POSTS_PIPELINE__CLASSIFIER__TEST_SIZE)"),
    "env connect-timeout": ([], {"POSTS_PIPELINE__CLUSTER__CONNECT_TIMEOUT": "abc"}, None,
                            "cluster.connect-timeout must be a duration such as 30s or 2m, not 'abc'"),
    "unknown key": ([], {}, "cluster:\n    local:\n      n-worker: 3", "cluster.local.n-worker is not a setting"),
    "cluster kind": (["--cluster", "cloud"], {}, None, "cluster.kind must be one of local, scheduler, kubernetes, "
                                                     "not 'cloud' (from --cluster)"),
    "scheduler without address": (["--cluster", "scheduler"], {}, None, "give --scheduler tcp://host:8786"),
    "kubernetes, bad parser": (["--cluster", "kubernetes", "--html-parser", "nosuch"], {}, None,
                               "clean.html-parser must be one of fast, bs4, not 'nosuch'"),
}


def _bad_run(tmp_path: Path, args: list, config_text: str | None) -> list[str]:
    """Arguments of a run whose input does not exist: a settings error must come before the listing says so."""
    extra = []
    if config_text:
        (tmp_path / "bad.yaml").write_text(f"posts-pipeline:\n  {config_text}\n")
        extra = ["--config", str(tmp_path / "bad.yaml")]
    return ["run", "-v", "-i", str(tmp_path / "missing.xml"), "-o", str(tmp_path / "runs" / "out"), *extra, *args]


@pytest.mark.parametrize("case", BAD_SETTINGS)
def test_a_bad_setting_is_one_line_before_anything_starts(case, tmp_path):
    args, env, config_text, message = BAD_SETTINGS[case]
    started = time.monotonic()
    done = posts_pipeline(*_bad_run(tmp_path, args, config_text), env=env, timeout=60)
    assert_one_line_error(done, message)  # with -v: no "input …" or "dashboard" line, so nothing ran
    assert not (tmp_path / "runs").exists()  # no output directory, not even its parent
    assert time.monotonic() - started < 30


@pytest.mark.parametrize("case", BAD_SETTINGS)
def test_a_bad_setting_starts_nothing(case, tmp_path, monkeypatch, capsys):
    """The same cases in process: no input listed, no fork server, no LocalCluster, no DaskCluster."""
    def started(*args, **kwargs):
        raise AssertionError("started before the settings were checked")

    for module, name in [(read, "expand"), (cluster, "prepare_local"), (cluster, "LocalCluster"),
                         (lifecycle, "running"), (lifecycle, "Api")]:
        monkeypatch.setattr(module, name, started)
    args, env, config_text, message = BAD_SETTINGS[case]
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(_bad_run(tmp_path, args, config_text)) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


@pytest.mark.parametrize("env, message", [
    ({"POSTS_PIPELINE__CLUSTER__LOCAL__N_WORKERS": "abc"},
     "cluster.local.n-workers must be an integer ≥ 1, not 'abc' (from POSTS_PIPELINE__CLUSTER__LOCAL__N_WORKERS)"),
    ({"POSTS_PIPELINE__PROGRESS": "yes"}, "progress must be one of auto, true, false, not 'yes'"),
])
def test_config_complains_about_a_bad_value(env, message):
    done = posts_pipeline("config", env=env)
    assert_one_line_error(done, message)
    assert done.stdout == ""


@pytest.mark.cluster
def test_a_local_cluster_that_cannot_start_its_workers_is_one_line(posts, tmp_path):
    """Workers that do not start within cluster.connect-timeout end the run with a line, not a hang."""
    slow = tmp_path / "slow.yaml"
    slow.write_text("posts-pipeline:\n  cluster:\n    connect-timeout: 0.2s\n    local:\n      start-method: spawn\n"
                    "      processes: true\n")
    started = time.monotonic()
    done = posts_pipeline("run", "--quiet", "-c", slow, "-i", posts, "-o", tmp_path / "runs" / "out",
                          "--n-workers", "2", timeout=120)
    assert_one_line_error(done, "the embedded LocalCluster could not start its 2 workers within 0.2 s")
    assert time.monotonic() - started < 60
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["out.failed-driver.log"]  # and no run


@pytest.mark.parametrize("args", [[], ["run"], ["generate"], ["config"]])
def test_help_explains_every_command(args):
    done = posts_pipeline(*args, "--help")
    assert done.returncode == 0
    assert "usage: posts-pipeline" in done.stdout
    if args == ["run"]:
        for flag in ("--input", "--output", "--scheduler", "--cluster", "--storage-option", "--tag",
                     "--classifier-tags", "--html-parser", "--visualize", "--config", "POSTS_PIPELINE__"):
            assert flag in done.stdout


@pytest.mark.cluster
def test_generate_then_run_end_to_end(tmp_path):
    data, out = tmp_path / "Posts.xml", tmp_path / "runs" / "first"
    made = posts_pipeline("generate", "--output", str(data), "--size", "2MB", "--seed", "3", "--tag-form", "pipe")
    assert made.returncode == 0, made.stderr
    assert "wrote" in made.stdout and data.stat().st_size >= 2_000_000
    done = posts_pipeline("run", "--input", data, "--output", out, "--n-workers", "2", "--blocksize", "512KiB",
                          "--top", "5", "--progress", "--processes", "true",
                          env={"POSTS_PIPELINE__ANALYTICS__TAG": "r"})
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


REAL_DUMP = Path(__file__).parent / "data" / "real-dumps" / "cardano.stackexchange" / "Posts.xml"


def _results(run: Path) -> tuple:
    """What a run found, without its timings: the report's findings, the tag counts and the held-back ids."""
    report = json.loads((run / "report.json").read_text())
    found = {key: report[key] for key in ("counts", "cooccurrence", "top_tags", "labelled_questions", "classifier")}
    return found, (run / "tag_counts.csv").read_text(), (run / "test_split.csv").read_text()


@pytest.mark.cluster
def test_a_small_input_runs_in_threads_of_the_driver_with_the_same_results(tmp_path):
    """processes auto: a 3 MB site is passed by threads of the driver, without the dashboard, and finds what
    worker processes find (the model depends on the questions and the seed only). The smallest memory-limit
    does not pause them: it is the worker processes' (measured against the driver's whole process, it did)."""
    args = ["--tag", "plutus", "--classifier-tags", "plutus", "wallet", "--no-progress"]
    threads = posts_pipeline("run", "-i", REAL_DUMP, "-o", tmp_path / "threads", "--memory-limit", "256MiB", *args,
                             timeout=120)
    processes = posts_pipeline("run", "-i", REAL_DUMP, "-o", tmp_path / "processes", "--processes", "true", *args)
    assert threads.returncode == 0 and processes.returncode == 0, threads.stderr + processes.stderr
    assert "local cluster: 2 worker(s) of 1 thread(s) in this process (cluster.local.processes: auto)" in threads.stderr
    assert "dashboard:" not in threads.stderr and "dashboard: http://" in processes.stderr
    assert "in this process" not in processes.stderr
    found = _results(tmp_path / "threads")
    assert found == _results(tmp_path / "processes")
    assert found[0]["classifier"]["status"] == "trained" and found[0]["counts"]["questions"] == 1042


def test_auto_picks_threads_only_for_small_plain_inputs(tmp_path):
    local = cluster.LocalSettings(2, 1, "auto", "auto", "auto", "auto")
    small, large = tmp_path / "Posts.xml", tmp_path / "big" / "Posts.xml"
    small.write_bytes(b"x" * 1000)
    large.parent.mkdir()
    with open(large, "wb") as f:
        f.truncate(cluster.IN_PROCESS_UP_TO + 1)
    assert cluster.in_process(local, cluster.local_files([str(small)]))
    assert not cluster.in_process(local, cluster.local_files([str(small), str(large)]))
    # not known before listing (a URL, a glob): worker processes, started early; packed: its size is not the work's
    assert cluster.local_files(["s3://bucket/Posts.xml"]) is None and cluster.local_files([f"{tmp_path}/*.xml"]) is None
    assert not cluster.in_process(local, None)
    assert not cluster.in_process(local, {"/data/Posts.7z": 1000})
    assert not cluster.in_process(cluster.LocalSettings(2, 1, "auto", "auto", "auto", True), {"/a.xml": 1})
    assert cluster.in_process(cluster.LocalSettings(2, 1, "auto", "auto", "auto", False), None)


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
    done = posts_pipeline("config", env={"POSTS_PIPELINE__CLUSTER__LOCAL__N_WORKERS": "6",
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
@pytest.mark.parametrize("signum, to_group, code, processes", [
    (signal.SIGINT, True, 130, "true"),  # Ctrl-C: the terminal signals the whole process group, workers included
    (signal.SIGTERM, False, 143, "true"),  # Kubernetes stopping the pod: the driver alone
    (signal.SIGINT, True, 130, "false"),  # Ctrl-C with the workers threads of the driver
])
def test_a_signal_stops_the_run_with_one_line_and_no_partial_output(posts, tmp_path, signum, to_group, code,
                                                                    processes):
    out = tmp_path / "runs" / "stopped"
    process = subprocess.Popen([POSTS_PIPELINE, "run", "--quiet", "-i", posts, "-o", str(out), "--blocksize", "256KiB",
                                "--no-progress", "--processes", processes], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        # Pass 1 runs once the first block's questions are written to the staging directory.
        while not list((tmp_path / "runs").glob(".stopped.partial-*/**/questions/part.*.parquet")):
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()
            time.sleep(0.05)
        os.killpg(process.pid, signum) if to_group else process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == code
    assert stderr == "posts-pipeline: interrupted; partial output removed\n"
    assert stdout == ""
    # Neither the run nor its staging directory: the driver's log, ending with the signal.
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["stopped.failed-driver.log"]
    log = (tmp_path / "runs" / "stopped.failed-driver.log").read_text()
    assert "ERROR pipeline.output: the run failed: Interrupted(" in log
    wait_for(lambda: not session_processes(process.pid), 30, "the stopped run's workers and fork server to end")


def workers(driver: int) -> list[str]:
    """The processes of the driver's session whose parent is one of them but the driver: the workers (the fork
    server's children), not the driver, the fork server or the resource tracker."""
    processes = session_processes(driver)
    return [cmd for ppid, cmd in processes.values() if ppid in processes and ppid != driver]


@pytest.mark.cluster
def test_a_run_leaves_no_process_behind(posts, tmp_path):
    """The workers have ended when the driver exits; the fork server they come from and multiprocessing's
    resource tracker end once it has."""
    out, log = tmp_path / "run", tmp_path / "stderr"
    with open(log, "w") as stderr:  # a file, not a pipe: the workers hold it too, and a pipe would wait for them
        process = subprocess.Popen([POSTS_PIPELINE, "run", "--quiet", "-i", posts, "-o", str(out), "--no-progress",
                                    "--n-workers", "2", "--processes", "true"], stdout=subprocess.DEVNULL,
                                   stderr=stderr, start_new_session=True)
    try:
        wait_for(lambda: len(workers(process.pid)) >= 2 or process.poll() is not None, 120, "the workers")
        seen = workers(process.pid)
        process.wait(timeout=300)
        left = workers(process.pid)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 0 and (out / "_SUCCESS").exists(), log.read_text()
    assert len(seen) >= 2, seen
    assert left == [], left
    wait_for(lambda: not session_processes(process.pid), 10, "the fork server and the resource tracker to end")


@pytest.mark.s3
def test_passwords_in_urls_are_never_shown(s3, posts, tmp_path):
    """user:password@ in the S3 endpoint, an input or an output URL: in no line printed or logged, no file."""
    fs = s3.filesystem()
    fs.mkdir("secrets")
    fs.put(posts, "secrets/Posts.xml")
    password = "hunter2-pw"
    with_password = s3.endpoint.replace("http://", f"http://admin:{password}@")
    runs = [
        # S3 clients cannot use them: refused up front, in words without the password.
        (["run", "-i", "s3://secrets/Posts.xml", "-o", "s3://secrets/runs/a"],
         {"POSTS_PIPELINE__STORAGE_OPTIONS__ENDPOINT_URL": with_password}, "endpoint_url http://***@127.0.0.1"),
        (["config"], {"POSTS_PIPELINE__STORAGE_OPTIONS__ENDPOINT_URL": with_password}, "carries a user and password"),
        (["run", "-i", f"s3://admin:{password}@secrets/Posts.xml", "-o", "s3://secrets/runs/b"], {},
         "input: s3://***@secrets/Posts.xml carries a user and password"),
        (["run", "-i", "s3://secrets/Posts.xml", "-o", f"s3://admin:{password}@secrets/runs/c"], {},
         "output: s3://***@secrets/runs/c carries"),
        # HTTP takes them (basic auth): logged and reported without it (moto refuses the request).
        (["run", "-i", f"{with_password}/secrets/Posts.xml", "-o", str(tmp_path / "runs" / "d")], {},
         "no input file matches http://***@127.0.0.1"),
    ]
    for args, env, message in runs:
        done = posts_pipeline(*args, "-v", env=env, timeout=120)
        assert message in done.stderr, done.stderr
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert password not in done.stdout + done.stderr, done.stderr
    assert "input http://***@127.0.0.1" in done.stderr  # the run's own log line, redacted
    written = [p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()]
    written += [fs.cat(f) for f in fs.find("secrets")]
    assert not any(password.encode() in data for data in written)
    assert fs.find("secrets") == ["secrets/Posts.xml"]  # nothing was started


def test_the_log_filter_redacts_every_handler_line(capsys):
    import logging

    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(pipeline_cli.config.RedactingFilter())
    log = logging.getLogger("test-redaction")
    log.addHandler(handler)
    try:
        log.warning("cannot reach %s", "http://admin:s3cr3t@host:9000")
        try:
            raise OSError("connect to https://u:s3cr3t@host failed")
        except OSError:
            log.exception("failed")
    finally:
        log.removeHandler(handler)
    err = capsys.readouterr().err
    assert "s3cr3t" not in err and "cannot reach http://***@host:9000" in err and "https://***@host" in err


@pytest.mark.parametrize("message, shown", [
    ("Compute Failed\nKey: ('first-pass', 3)", False),
    ("Failed to communicate with scheduler during heartbeat.", False),
    ("Worker is at 85% memory usage. Pausing worker.", True),
])
def test_local_workers_leave_to_the_driver_what_it_says_in_its_one_line(message, shown):
    record = logging.LogRecord("distributed.worker", logging.ERROR, __file__, 1, message, None, None)
    assert cluster._said_by_the_driver(record) is shown
