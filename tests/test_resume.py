"""--resume: a run SIGKILLed halfway, resumed, gives what an uninterrupted run gives and redoes only the blocks
that were not finished — locally and on S3 (moto's server); changed inputs or settings refuse to resume.
And driver.log: the driver's log in the run directory, without a credential.

Each run is the installed command in its own process (its LocalCluster's workers in its process group, so
that SIGKILL takes them all, as a lost node or pod would), on a generated dump cut into many small blocks.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import uuid
from pathlib import Path

import pytest

from pipeline.errors import PipelineError
from pipeline.generate import Options, generate
from pipeline.output import RunDirectory

from support import POSTS_PIPELINE, assert_refused, posts_pipeline, wait_for

pytestmark = pytest.mark.cluster

RUN = ("run", "--no-progress", "--blocksize", "64KiB", "--n-workers", "2", "--threads-per-worker", "1")
QUIET = (*RUN, "--quiet")  # stderr: only what is wrong
# What differs between two runs of the same input: when, how fast, and where they ran.
UNSTABLE = ("output", "timings", "compute_seconds_by_stage")


@pytest.fixture(scope="module")
def dump(tmp_path_factory) -> Path:
    """A generated dump with python and r questions: 32 blocks of 64KiB."""
    path = tmp_path_factory.mktemp("dump") / "Posts.xml"
    generate(str(path), Options(size=2_000_000, seed=3))
    return path


def kill_halfway(args: list[str], progress, signum: int = signal.SIGKILL) -> tuple[int, set[int]]:
    """Start a run, SIGKILL it (its workers too) once ``progress()`` — the staging's ``_progress`` as
    (plan or None, names of the files in blocks/) — says that half of its blocks are recorded as done
    (or send the driver alone ``signum``, as Kubernetes stops a pod); how many blocks it had and those it
    finished."""
    process = subprocess.Popen([POSTS_PIPELINE, *RUN, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    try:
        def half_done():
            assert process.poll() is None, process.communicate()
            plan, names = progress()
            return plan and 2 * sum(n.endswith(".json") for n in names) >= len(plan["blocks"])
        wait_for(half_done, 300, "half of the blocks recorded", interval=0.05)
        if signum != signal.SIGKILL:
            process.send_signal(signum)
            process.wait(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        stderr = process.communicate(timeout=120)[1]
    if signum != signal.SIGKILL:
        assert process.returncode == 128 + signum, stderr
        assert stderr.splitlines()[-1] == "posts-pipeline: interrupted; what it finished is kept for --resume"
    plan, names = progress()
    done = {int(n.removesuffix(".json")) for n in names if n.endswith(".json")}
    assert len(done) < len(plan["blocks"]), "the run finished before it was killed: use smaller blocks"
    return len(plan["blocks"]), done


def reused(log: str) -> int:
    [line] = [line for line in log.splitlines() if "resuming the interrupted run" in line]
    return int(line.split(": ")[-1].split()[0])


def assert_same_run(got: dict[str, bytes], ref: dict[str, bytes]) -> None:
    """Two run directories (file → bytes) hold the same results: every Parquet file, the model, the CSVs
    byte for byte, and the report but for when and how fast it ran (which metrics.prom holds too)."""
    mine = ("_RUN", "_SUCCESS", "driver.log", "metrics.prom", "report.html", "report.json")
    assert sorted(set(got) - set(mine)) == sorted(set(ref) - set(mine))
    for name in set(ref) - set(mine):
        assert got[name] == ref[name], name
    report, expected = (json.loads(files["report.json"]) for files in (got, ref))
    assert {k: v for k, v in report.items() if k not in UNSTABLE} == \
        {k: v for k, v in expected.items() if k not in UNSTABLE}


def local_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def local_progress(runs: Path, name: str):
    def progress():
        stagings = list(runs.glob(f".{name}.partial-*/_progress"))
        if not stagings or not (stagings[0] / "plan.json").exists():
            return None, []
        return json.loads((stagings[0] / "plan.json").read_text()), os.listdir(stagings[0] / "blocks")
    return progress


def test_a_run_killed_halfway_and_resumed_is_the_uninterrupted_run(dump, tmp_path):
    runs = tmp_path / "runs"
    whole = posts_pipeline(*RUN, "-i", str(dump), "-o", str(runs / "whole"))
    assert whole.returncode == 0, whole.stderr
    out = runs / "resumed"
    blocks, done = kill_halfway(["-i", str(dump), "-o", str(out)], local_progress(runs, "resumed"))
    [staging] = runs.glob(".resumed.partial-*")
    written = {n: (staging / "run" / "questions" / f"part.{n}.parquet").stat().st_mtime_ns for n in done}

    resumed = posts_pipeline(*RUN, "--resume", "-i", str(dump), "-o", str(out))
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming the interrupted run: {len(done)} of {blocks} blocks done, reused" in resumed.stderr
    # The finished blocks' files were kept, not written again.
    assert {n: (out / "questions" / f"part.{n}.parquet").stat().st_mtime_ns for n in done} == written
    assert_same_run(local_files(out), local_files(runs / "whole"))
    assert sorted(os.listdir(runs)) == ["resumed", "whole"]  # the staging went with the run
    assert not (out / "_progress").exists()


def test_a_run_stopped_by_sigterm_with_resume_keeps_what_it_finished(dump, tmp_path):
    """A Kubernetes Job's driver pod stopped (SIGTERM) mid-run: the Job's next pod, with --resume, carries on."""
    out = tmp_path / "runs" / "run"
    blocks, done = kill_halfway(["--resume", "-i", str(dump), "-o", str(out)], local_progress(out.parent, "run"),
                                signal.SIGTERM)
    resumed = posts_pipeline(*RUN, "--resume", "-i", str(dump), "-o", str(out))
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming the interrupted run: {len(done)} of {blocks} blocks done, reused" in resumed.stderr
    log = (out / "driver.log").read_text()  # both attempts' lines
    assert log.count("pass 1:") == 2 and "the run failed: Interrupted(" in log


def test_resume_with_nothing_to_resume_is_a_new_run(dump, tmp_path):
    done = posts_pipeline(*RUN, "--resume", "-i", str(dump), "-o", str(tmp_path / "run"))
    assert done.returncode == 0, done.stderr
    assert "nothing to resume at" in done.stderr and "resuming" not in done.stderr
    assert (tmp_path / "run" / "_SUCCESS").exists()


def test_resume_refuses_a_changed_input(tmp_path):
    dump = tmp_path / "Posts.xml"
    generate(str(dump), Options(size=2_000_000, seed=3))
    original = dump.read_bytes()
    out = tmp_path / "runs" / "run"
    kill_halfway(["-i", str(dump), "-o", str(out)], local_progress(out.parent, "run"))

    def staging():  # what the interrupted run finished
        return {p: p.read_bytes() for p in out.parent.glob(".run.partial-*/**/*")
                if p.is_file() and p.name not in ("_RUN", "driver.log")}

    finished = staging()
    dump.write_bytes(original + b"\n")
    refused = posts_pipeline(*QUIET, "--resume", "-i", str(dump), "-o", str(out))
    assert_refused(refused, f"cannot resume the run at {out}: input {dump} changed (size 2,")
    assert "run without --resume to start afresh" in refused.stderr
    # The interrupted run's staging is kept (to resume once the input is back), the refused run's log beside it.
    assert staging() == finished
    assert "the run failed: cannot resume" in (out.parent / "run.failed-driver.log").read_text()

    dump.write_bytes(original)  # the same size again, but written since
    assert_refused(posts_pipeline(*QUIET, "--resume", "-i", str(dump), "-o", str(out)),
                   f"input {dump} changed (modified since) since it started")


def test_resume_refuses_changed_settings(dump, tmp_path):
    out = tmp_path / "runs" / "run"
    kill_halfway(["-i", str(dump), "-o", str(out)], local_progress(out.parent, "run"))
    for flags, message in [
        (["--blocksize", "128KiB"], "setting blocksize changed (65536 → 131072 (from --blocksize))"),
        (["--random-state", "7"], "setting classifier.random-state changed (0 → 7 (from --random-state))"),
        (["--classifier-tags", "python", "javascript"], "setting classifier.tags changed (['python', 'r'] → "),
        (["--html-parser", "bs4"], "setting clean.html-parser changed ('fast' → 'bs4'"),
    ]:
        assert_refused(posts_pipeline(*QUIET, "--resume", "-i", str(dump), "-o", str(out), *flags), message)
    resumed = posts_pipeline(*RUN, "--resume", "-i", str(dump), "-o", str(out))  # unchanged: resumed
    assert resumed.returncode == 0 and "resuming the interrupted run" in resumed.stderr, resumed.stderr


def test_a_failed_run_resumed_reuses_its_blocks_passed_again_without_duplicates(tmp_path):
    """A run with --resume that fails after its first pass (most lines malformed) keeps its staging; resumed
    with --allow-malformed (which the blocks do not depend on) it passes no block again, not even those it
    had passed again without their duplicates, and gives what a run that allowed them from the start gives."""
    site = tmp_path / "site"
    site.mkdir()
    generate(str(site / "a.xml"), Options(size=300_000, seed=5))
    (site / "b.xml").write_bytes((site / "a.xml").read_bytes())  # every question again: duplicates
    (site / "c.xml").write_text("<posts>\n" + '  <row Id="broken\n' * 3000 + "</posts>\n")
    inputs, runs = ["-i", str(site / "*.xml")], tmp_path / "runs"
    whole = posts_pipeline(*RUN, *inputs, "-o", str(runs / "whole"), "--allow-malformed")
    assert whole.returncode == 0, whole.stderr

    failed = posts_pipeline(*QUIET, "--resume", *inputs, "-o", str(runs / "run"))
    assert_refused(failed, "are malformed")
    [staging] = runs.glob(".run.partial-*")
    again = sorted(int(p.stem) for p in (staging / "_progress" / "again").glob("*.json"))
    plan = json.loads((staging / "_progress" / "plan.json").read_text())
    assert again and len(again) < len(plan["blocks"])
    written = {p.name: p.stat().st_mtime_ns for p in (staging / "run" / "questions").iterdir()}

    resumed = posts_pipeline(*RUN, "--resume", *inputs, "-o", str(runs / "run"), "--allow-malformed")
    assert resumed.returncode == 0, resumed.stderr
    blocks = len(plan["blocks"])
    assert f"resuming the interrupted run: {blocks} of {blocks} blocks done, reused" in resumed.stderr
    assert f"passing {len(again)} block(s) again" in resumed.stderr
    assert {p.name: p.stat().st_mtime_ns for p in (runs / "run" / "questions").iterdir()} == written
    assert_same_run(local_files(runs / "run"), local_files(runs / "whole"))


# S3 (moto's server): the staging is the prefix itself, taken over with a conditional write of _RUN

@pytest.fixture
def bucket(s3):
    name = f"resume-{uuid.uuid4().hex[:8]}"
    s3.filesystem().mkdir(name)
    return name


def s3_files(fs, prefix: str) -> dict[str, bytes]:
    fs.invalidate_cache()
    return {path.removeprefix(prefix + "/"): fs.cat_file(path) for path in fs.find(prefix)}


@pytest.mark.s3
def test_on_s3_a_run_killed_halfway_and_resumed_is_the_uninterrupted_run(s3, bucket, dump):
    fs = s3.filesystem()
    fs.put(str(dump), f"{bucket}/Posts.xml")
    source = f"s3://{bucket}/Posts.xml"
    whole = posts_pipeline(*RUN, "-i", source, "-o", f"s3://{bucket}/whole")
    assert whole.returncode == 0, whole.stderr
    prefix = f"{bucket}/resumed"

    def progress():
        fs.invalidate_cache()
        if not fs.exists(f"{prefix}/_progress/plan.json"):
            return None, []
        plan = json.loads(fs.cat_file(f"{prefix}/_progress/plan.json"))
        return plan, [p.rsplit("/", 1)[1] for p in fs.find(f"{prefix}/_progress/blocks")]

    blocks, done = kill_halfway(["-i", source, "-o", f"s3://{prefix}"], progress)
    written = {n: fs.info(f"{prefix}/questions/part.{n}.parquet")["LastModified"] for n in done}
    refused = posts_pipeline(*QUIET, "-i", source, "-o", f"s3://{prefix}")  # without --resume: not a result
    assert_refused(refused, "holds a run that has not finished")

    resumed = posts_pipeline(*RUN, "--resume", "-i", source, "-o", f"s3://{prefix}")
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming the interrupted run: {len(done)} of {blocks} blocks done, reused" in resumed.stderr
    fs.invalidate_cache()
    assert {n: fs.info(f"{prefix}/questions/part.{n}.parquet")["LastModified"] for n in done} == written
    got = s3_files(fs, prefix)
    assert not [name for name in got if name.startswith("_progress")]
    assert set(json.loads(got["_SUCCESS"])["files"]) == set(got) - {"_SUCCESS"}
    assert_same_run(got, s3_files(fs, f"{bucket}/whole"))


@pytest.mark.s3
def test_on_s3_resume_refuses_a_changed_input(s3, bucket, dump):
    fs = s3.filesystem()
    fs.put(str(dump), f"{bucket}/Posts.xml")
    source, prefix = f"s3://{bucket}/Posts.xml", f"{bucket}/run"

    def progress():
        fs.invalidate_cache()
        if not fs.exists(f"{prefix}/_progress/plan.json"):
            return None, []
        return (json.loads(fs.cat_file(f"{prefix}/_progress/plan.json")),
                [p.rsplit("/", 1)[1] for p in fs.find(f"{prefix}/_progress/blocks")])

    kill_halfway(["-i", source, "-o", f"s3://{prefix}"], progress)
    fs.pipe_file(f"{bucket}/Posts.xml", dump.read_bytes().replace(b"python", b"pythom"))  # same size, new ETag
    assert_refused(posts_pipeline(*QUIET, "--resume", "-i", source, "-o", f"s3://{prefix}"),
                   f"cannot resume the run at s3://{prefix}: input {source} changed (modified since) since it "
                   "started; run with --overwrite instead of --resume to start afresh")


@pytest.mark.s3
def test_on_s3_a_run_killed_before_its_plan_is_started_again_by_resume(s3, bucket):
    """A Job's driver killed while its cluster started leaves _RUN and nothing done: its retry starts anew."""
    url, options = f"s3://{bucket}/run", {"endpoint_url": s3.endpoint}
    killed = RunDirectory(url, options)
    killed.write("questions/part.0.parquet", b"PAR1")  # as if a block's file were there without its record
    with pytest.raises(PipelineError, match="holds a run that has not finished"):
        RunDirectory(url, options)
    retry = RunDirectory(url, options, resume=True)
    assert retry.recorded_plan is None
    fs = s3.filesystem()
    assert fs.find(f"{bucket}/run") == [f"{bucket}/run/_RUN"]
    assert json.loads(fs.cat_file(f"{bucket}/run/_RUN"))["run_id"] == retry.run_id
    retry.write("report.json", "{}")
    assert set(retry.commit()["files"]) == {"_RUN", "report.json"}


# driver.log

@pytest.mark.s3
def test_driver_log_is_in_the_run_directory_without_credentials(s3, bucket, dump):
    fs = s3.filesystem()
    fs.put(str(dump), f"{bucket}/Posts.xml")
    options = ["--storage-option", f"key={s3.key}", "--storage-option", f"secret={s3.secret}"]
    done = posts_pipeline(*RUN, "-i", f"s3://{bucket}/Posts.xml", "-o", f"s3://{bucket}/run", *options)
    assert done.returncode == 0, done.stderr
    text = fs.cat_file(f"{bucket}/run/driver.log").decode()
    for line in ("input s3://", "reading 1 file(s) of 1 site(s) in 32 blocks", "pass 1:", "accuracy"):
        assert line in text, text
    assert [line for line in done.stderr.splitlines() if "results in" not in line] == text.splitlines()
    assert "'key': '***'" in text
    assert s3.key not in text and s3.secret not in text
    assert "driver.log" in json.loads(fs.cat_file(f"{bucket}/run/_SUCCESS"))["files"]


def test_a_failed_runs_driver_log_is_beside_its_output(tmp_path):
    dump = tmp_path / "Posts.xml"
    dump.write_text("<posts>\n" + "not a row\n" * 100 + "</posts>\n")
    failed = posts_pipeline(*RUN, "-i", str(dump), "-o", str(tmp_path / "run"))
    assert failed.returncode == 2, failed.stderr
    assert sorted(os.listdir(tmp_path)) == ["Posts.xml", "run.failed-driver.log"]
    text = (tmp_path / "run.failed-driver.log").read_text()
    assert "pass 1:" in text and "ERROR pipeline.output: the run failed: " in text and "malformed" in text
