"""Helpers the tests share: a free port, the images on Kubernetes nodes, and moto's S3 API server in its own process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections import Counter


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


QUESTION = dict(Id=1, PostTypeId=1, CreationDate="2008-07-31T21:42:52.667", Score=5, Body="<p>hi</p>",
                Title="T", Tags="<python><pandas>")


def row(**attrs) -> str:
    """A ``<row …/>`` line of a dump, its values escaped as the dumps escape them."""
    from pipeline.generate import xml_attr

    return "  <row " + " ".join(f'{k}="{xml_attr(str(v))}"' for k, v in attrs.items()) + " />"


def block(*lines: str, newline: str = "\r\n", bom: bool = True) -> bytes:
    """A whole small dump holding ``lines``: declaration, root tags, BOM and CRLF as published."""
    text = newline.join(['<?xml version="1.0" encoding="utf-8"?>', "<posts>", *lines, "</posts>"])
    return (b"\xef\xbb\xbf" if bom else b"") + text.encode()


def load(data: bytes):
    """``questions.load_block`` on one block, with room for every malformed sample."""
    from pipeline import questions

    return questions.load_block(data, "mem://Posts.xml", 0, samples=100)


def first_pass_counts(blocks: list[bytes], tag: str = "python", labels: tuple[str, str] = ("python", "r")) -> dict:
    """The first pass's stages on the blocks of one file (``questions.load_block`` → ``clean.clean_partition`` →
    ``analytics.partials``), counted as ``reference.summary`` counts (line numbers within the file)."""
    import pandas as pd

    from pipeline import analytics, clean, questions

    post_types, malformed, parts, lines = Counter(), [], [], 0
    for index, data in enumerate(blocks):
        frame, stats = questions.load_block(data, "mem://Posts.xml", index, samples=len(data) + 1)
        assert stats.malformed == len(stats.samples)
        post_types += stats.post_types
        malformed += [lines + m.line for m in stats.samples]
        parts.append(analytics.partials(clean.clean_partition(frame), tag, labels))
        lines += stats.lines
    parts = pd.concat(parts, ignore_index=True)

    def counts(kind: str) -> dict:
        of = parts[parts["kind"] == kind].groupby("key")["count"].sum()
        return {key: int(n) for key, n in of.items() if n}

    return {"rows": sum(post_types.values()), "questions": post_types["1"], "post_types": dict(+post_types),
            "malformed_lines": malformed, "tag_counts": counts("tag"), "cooccurrence": counts("cooccur"),
            "per_year": {f"{int(year):04d}": n for year, n in counts("year").items()}}
