"""S3 in and out, against a real S3 API server over HTTP (moto's, with authentication on)."""

from __future__ import annotations

import json
import logging
import uuid

import pytest

from pipeline import cli
from pipeline.errors import PipelineError
from pipeline.output import RunDirectory

from support import POSTS_PIPELINE, assert_refused, at_once

pytestmark = [pytest.mark.s3, pytest.mark.cluster]


@pytest.fixture
def bucket(s3):
    name = f"posts-{uuid.uuid4().hex[:8]}"
    s3.filesystem().mkdir(name)
    return name


def run_cli(*args: str) -> int:
    return cli.main(["run", "--no-progress", "--blocksize", "2MiB", *args])


def test_read_from_and_write_to_s3(s3, bucket, posts, capsys, caplog):
    fs = s3.filesystem()
    fs.put(posts, f"{bucket}/dumps/Posts.xml")
    caplog.set_level(logging.INFO)
    assert run_cli("--input", f"s3://{bucket}/dumps/*.xml", "--output", f"s3://{bucket}/runs/one") == 0

    files = set(fs.find(f"{bucket}/runs/one"))
    for name in ("_SUCCESS", "report.json", "report.html", "tag_counts.csv", "model.joblib", "test_split.csv"):
        assert f"{bucket}/runs/one/{name}" in files
    assert any("/questions/" in f and f.endswith(".parquet") for f in files)
    report = json.loads(fs.cat(f"{bucket}/runs/one/report.json"))
    manifest = json.loads(fs.cat(f"{bucket}/runs/one/_SUCCESS"))
    assert set(manifest["files"]) == {f.split("/runs/one/", 1)[1] for f in files} - {"_SUCCESS"}
    assert report["inputs"] == [f"s3://{bucket}/dumps/Posts.xml"]
    assert report["counts"]["questions"] > 1000 and report["classifier"]["accuracy"] > 0.8
    # Served as what they are, so that a browser shows the report rather than downloading it.
    types = {name: fs.info(f"{bucket}/runs/one/{name}", refresh=True)["ContentType"]
             for name in ("report.html", "report.json", "tag_counts.csv")}
    assert types == {"report.html": "text/html", "report.json": "application/json", "tag_counts.csv": "text/csv"}

    # Credentials appear nowhere: not in what was logged or printed, not in any file written.
    out = capsys.readouterr()
    said = out.out + out.err + caplog.text
    written = b"".join(fs.cat(f) for f in files if not f.endswith((".parquet", ".joblib")))
    for secret in (s3.secret, s3.key):
        assert secret not in said
        assert secret.encode() not in written
    assert "s3://" in said  # the log did talk about the run


def test_wrong_credentials_are_one_clear_error(s3, bucket, posts, monkeypatch, capsys):
    s3.filesystem().put(posts, f"{bucket}/Posts.xml")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    code = run_cli("--input", f"s3://{bucket}/Posts.xml", "--output", f"s3://{bucket}/runs/bad")
    err = capsys.readouterr().err
    assert code == 2
    assert "S3 refused" in err and "AWS_SECRET_ACCESS_KEY" in err and f"s3://{bucket}/Posts.xml" in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err and "not-the-secret" not in err
    assert not s3.filesystem().exists(f"{bucket}/runs/bad")


def test_missing_bucket_and_key(s3, bucket, capsys):
    assert run_cli("--input", f"s3://{bucket}/nothing.xml", "--output", f"s3://{bucket}/runs/x") == 2
    assert "no input file matches s3://" in capsys.readouterr().err
    assert run_cli("--input", "s3://no-such-bucket-here/Posts.xml", "--output", f"s3://{bucket}/runs/x") == 2
    err = capsys.readouterr().err
    assert "no-such-bucket-here" in err and "Traceback" not in err


def test_failed_s3_run_leaves_no_results(s3, bucket, posts, monkeypatch):
    from pipeline import model

    fs = s3.filesystem()
    fs.put(posts, f"{bucket}/Posts.xml")

    def broken(*args, **kwargs):
        raise RuntimeError("model exploded")

    monkeypatch.setattr(model, "train", broken)
    with pytest.raises(RuntimeError):
        run_cli("--input", f"s3://{bucket}/Posts.xml", "--output", f"s3://{bucket}/runs/failed")
    assert fs.find(f"{bucket}/runs/failed") == []


# The output on S3: a prefix claimed by a conditional write of _RUN, replaced only if it is a run of ours

def test_the_second_of_two_runs_to_one_prefix_fails_and_keeps_the_first(s3, bucket, monkeypatch):
    url, options = f"s3://{bucket}/runs/conc", {"endpoint_url": s3.endpoint}
    first = RunDirectory(url, options)
    first.write("report.json", "{}")
    with pytest.raises(PipelineError, match="holds a run that has not finished"):
        RunDirectory(url, options)
    # A run that looked before the first had claimed the prefix loses the conditional write of _RUN.
    monkeypatch.setattr(RunDirectory, "_replaceable", lambda self, overwrite: False)
    with pytest.raises(PipelineError, match="was claimed by another run just now"):
        RunDirectory(url, options)
    monkeypatch.undo()
    manifest = first.commit()
    assert set(s3.filesystem().find(f"{bucket}/runs/conc")) == {f"{bucket}/runs/conc/{n}" for n in
                                                                ("_RUN", "_SUCCESS", "report.json")}
    assert set(manifest["files"]) == {"_RUN", "report.json"}


def test_two_runs_started_at_once_with_one_prefix(s3, bucket, posts):
    done = at_once(*[[POSTS_PIPELINE, "run", "--quiet", "--no-progress", "--blocksize", "2MiB",
                      "-i", posts, "-o", f"s3://{bucket}/runs/conc"]] * 2)
    assert sorted(d.returncode for d in done) == [0, 2], [d.stderr for d in done]
    assert_refused(max(done, key=lambda d: d.returncode), "was claimed by another run", "has not finished",
                   "already exists")
    fs = s3.filesystem()
    files = {f.split("/runs/conc/", 1)[1] for f in fs.find(f"{bucket}/runs/conc")}
    assert set(json.loads(fs.cat(f"{bucket}/runs/conc/_SUCCESS"))["files"]) == files - {"_SUCCESS"}


def test_a_failed_run_that_could_not_clean_up_is_recognisably_ours(s3, bucket):
    url, options = f"s3://{bucket}/runs/failed", {"endpoint_url": s3.endpoint}
    killed = RunDirectory(url, options)
    killed.directory("questions")
    killed.write("questions/part.0.parquet", b"PAR1")  # and then killed: no abort, no _SUCCESS
    with pytest.raises(PipelineError, match="holds a run that has not finished"):
        RunDirectory(url, options)
    again = RunDirectory(url, options, overwrite=True)
    assert s3.filesystem().find(f"{bucket}/runs/failed") == [f"{bucket}/runs/failed/_RUN"]
    again.write("report.json", "{}")
    assert again.commit()["run_id"] == again.run_id != killed.run_id


def test_overwrite_on_s3_never_replaces_an_input_or_what_is_not_a_run(s3, bucket, posts):
    fs, options = s3.filesystem(), {"endpoint_url": s3.endpoint}
    fs.put(posts, f"{bucket}/dumps/Posts.xml")
    fs.pipe(f"{bucket}/notes/todo.txt", b"buy coffee")
    inputs = [f"s3://{bucket}/dumps/Posts.xml"]
    before = {f: fs.cat(f) for f in fs.find(bucket)}
    for output, message in [("dumps/Posts.xml", "is an input of this run"), ("dumps", "holds an input of this run"),
                            ("notes", "is not a run directory"), ("notes/todo.txt", "is a file, not a run directory")]:
        with pytest.raises(PipelineError, match=message):
            RunDirectory(f"s3://{bucket}/{output}", options, overwrite=True, inputs=inputs)
    fs.invalidate_cache()
    assert {f: fs.cat(f) for f in fs.find(bucket)} == before


def test_a_run_taken_over_on_s3_keeps_nothing_and_deletes_nothing(s3, bucket):
    url, options = f"s3://{bucket}/runs/taken", {"endpoint_url": s3.endpoint}
    first = RunDirectory(url, options)
    second = RunDirectory(url, options, overwrite=True)  # the first looks failed: S3 cannot tell it is alive
    with pytest.raises(PipelineError, match="was taken over by another run"):
        first.commit()
    first.abort()
    second.write("report.json", "{}")
    assert set(second.commit()["files"]) == {"_RUN", "report.json"}
