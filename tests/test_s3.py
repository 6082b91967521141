"""S3 in and out, against a real S3 API server over HTTP (moto's, with authentication on)."""

from __future__ import annotations

import json
import logging
import uuid

import pytest

from pipeline import cli

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
