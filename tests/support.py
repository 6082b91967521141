"""Helpers the tests share: a free port, the images on Kubernetes nodes, and moto's S3 API server in its own process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

POSTS_PIPELINE = os.path.join(os.path.dirname(sys.executable), "posts-pipeline")  # the installed command


def posts_pipeline(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """The command as a user runs it, in its own process (the environment inherited)."""
    return subprocess.run([POSTS_PIPELINE, *args], capture_output=True, text=True, timeout=timeout)


def assert_refused(done: subprocess.CompletedProcess, *messages: str) -> None:
    """Exit 2 with one line on stderr, ``posts-pipeline: error: …``, saying one of ``messages``."""
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0].startswith("posts-pipeline: error: ") and any(m in lines[0] for m in messages), lines[0]


def at_once(*commands: list[str], timeout: int = 600) -> list[subprocess.CompletedProcess]:
    """Commands started together, each in its own process; what each did, once all have ended."""
    processes = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in commands]
    done = []
    for process in processes:
        out, err = process.communicate(timeout=timeout)
        done.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
    return done


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
