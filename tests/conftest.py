"""Shared fixtures: generated dumps, a real S3 API server (moto's, over HTTP), config isolation."""

from __future__ import annotations

import copy
import json
import os
import socket
import subprocess
import sys
import time

import dask.config
import distributed  # noqa: F401  (its config defaults must be in place before tests snapshot the config)
import pytest

from pipeline.generate import Options, generate


@pytest.fixture(autouse=True)
def isolated_config():
    """Each test starts from the package defaults: config.load changes dask.config globally."""
    saved = copy.deepcopy(dask.config.config)
    yield
    dask.config.config.clear()
    dask.config.config.update(saved)


@pytest.fixture(scope="session")
def posts(tmp_path_factory) -> str:
    """A small generated dump with every quirk, a few malformed lines among them."""
    path = str(tmp_path_factory.mktemp("dump") / "Posts.xml")
    generate(path, Options(size=10_000_000, seed=7, malformed_rate=0.0005))
    return path


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


@pytest.fixture(scope="session")
def s3_server():
    server = S3Server()
    yield server
    server.stop()


@pytest.fixture
def s3(s3_server, monkeypatch):
    """The server, with its credentials in the environment the way users give them (and workers inherit)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret)
    monkeypatch.setenv("POSTS_PIPELINE__STORAGE_OPTIONS__ENDPOINT_URL", s3_server.endpoint)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()  # a new process would not have another test's credentials
    yield s3_server
    s3fs.S3FileSystem.clear_instance_cache()
