"""Helpers the tests share: a free port, the images on Kubernetes nodes, and moto's S3 API server in its own process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time


def bucket_keys(client, bucket: str, prefix: str) -> list[str]:
    """Every key under ``prefix`` (boto3 client)."""
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def finished_report(client, bucket: str, prefix: str) -> dict:
    """report.json of a finished run in a bucket; fails if the run's _SUCCESS marker is missing."""
    keys = bucket_keys(client, bucket, prefix)
    assert f"{prefix}/_SUCCESS" in keys, f"no _SUCCESS under s3://{bucket}/{prefix}: {keys}"
    return json.loads(client.get_object(Bucket=bucket, Key=f"{prefix}/report.json")["Body"].read())


def node_image_names(node: dict) -> set[str]:
    """The image names a Kubernetes node reports; an image left without a tag reports ``names: null``."""
    return {n for image in node["status"].get("images") or [] for n in image.get("names") or []}


def on_every_node(nodes: list[dict], image: str) -> bool:
    """Whether every node reports ``image`` (kind prefixes local names with ``docker.io/library/``)."""
    return bool(nodes) and all(any(n == image or n.endswith("/" + image) for n in node_image_names(node))
                               for node in nodes)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class S3Server:
    """moto's S3 API server in its own process, with authentication on (as a real store has)."""

    def __init__(self):
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        # The first requests are let through unauthenticated: they create the user whose key we use.
        env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "3"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline or self.process.poll() is not None:
                    raise RuntimeError("moto server did not start")
                time.sleep(0.2)
        self.key, self.secret = self._create_user()

    def _create_user(self) -> tuple[str, str]:
        import boto3

        iam = boto3.client("iam", endpoint_url=self.endpoint, region_name="us-east-1",
                           aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
        iam.create_user(UserName="pipeline")
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
        iam.put_user_policy(UserName="pipeline", PolicyName="all", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName="pipeline")["AccessKey"]
        return key["AccessKeyId"], key["SecretAccessKey"]

    def filesystem(self):
        import s3fs

        return s3fs.S3FileSystem(key=self.key, secret=self.secret, endpoint_url=self.endpoint, skip_instance_cache=True)

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=10)


def write_posts(path, questions: list[tuple[int, list[str], str]]) -> str:
    """A small Posts.xml of questions (id, tags, body text), for tests that need exact label counts."""
    from xml.sax.saxutils import quoteattr

    rows = "".join(
        f'  <row Id="{i}" PostTypeId="1" CreationDate="2020-01-01T00:00:00.000" Score="1" '
        f'Body={quoteattr(f"<p>{body}</p>")} Title="t" Tags="{"".join(f"&lt;{t}&gt;" for t in tags)}" />\n'
        for i, tags, body in questions)
    with open(path, "w", encoding="utf-8") as f:
        f.write(f'<?xml version="1.0" encoding="utf-8"?>\n<posts>\n{rows}</posts>\n')
    return str(path)


def chromium(url: str, *options: str, timeout: int = 60) -> str:
    """Debian's chromium, headless, on ``url``: its stdout (the rendered DOM with ``--dump-dom``).
    ``make system-deps`` installs it; as root it must run without its sandbox."""
    import shutil

    import pytest

    program = shutil.which("chromium")
    if program is None:
        pytest.skip("chromium is not installed (make system-deps installs it)")
    sandbox = ["--no-sandbox"] if os.geteuid() == 0 else []
    done = subprocess.run([program, "--headless", "--disable-gpu", *sandbox, *options, url],
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr
    return done.stdout
