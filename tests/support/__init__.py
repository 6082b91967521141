"""Helpers the tests of every tier share: commands, waiting, S3 (moto's server and a bucket's contents),
kubectl, the images on Kubernetes nodes, and how two runs' results are compared. support.chart holds the
offline checks of the chart (`make chart-lint`).

tests/ is on sys.path through pytest's rootdir conftest (tests/conftest.py), so tests import ``support``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import quoteattr

import pandas as pd
import pytest

from pipeline import analytics, clean, questions
from pipeline.generate import xml_attr

# The project's CLI beside the interpreter running the tests (.venv/bin).
POSTS_PIPELINE = Path(sys.executable).with_name("posts-pipeline")

# ---------------------------------------------------------------- commands and waiting


def run(cmd, *, check: bool = True, timeout: float = 600, input: str | None = None,
        env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a command (text output captured); with ``check``, a non-zero exit fails with the command's output."""
    cmd = [str(c) for c in cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=input, env=env)
    if check and proc.returncode:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def wait_for(predicate, timeout: float, what: str, interval: float = 0.5):
    """The first truthy result of ``predicate()``, polled until ``timeout``. An OSError (a server not up yet)
    is retried; any other exception, such as an AssertionError saying it can never happen, ends the wait."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            result = predicate()
            if result:
                return result
        except OSError as e:
            last = e
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last error: {last!r})")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def generate_dump(path: Path, size: str, seed: int) -> Path:
    """A generated Posts.xml, made by the CLI as a user would."""
    run([POSTS_PIPELINE, "generate", "--size", size, "--seed", seed, "--output", path], timeout=300)
    return path


def reference_report(dump: Path, out: Path, blocksize: str) -> dict:
    """report.json of the same input on the driver's embedded LocalCluster, to compare a distributed run with."""
    run([POSTS_PIPELINE, "run", "--input", dump, "--output", out, "--blocksize", blocksize, "--no-progress",
         "--cluster", "local", "--n-workers", "2", "--threads-per-worker", "1"], timeout=900)
    assert (out / "_SUCCESS").exists()
    return json.loads((out / "report.json").read_text())


def assert_same_results(got: dict, ref: dict) -> None:
    """Two reports of the same input agree: counts, analytics, and the classifier up to its randomness."""
    for key in ("rows", "questions", "malformed"):
        assert got["counts"][key] == ref["counts"][key], key
    assert got["cooccurrence"]["tag"] == ref["cooccurrence"]["tag"]
    assert got["cooccurrence"]["top"] == ref["cooccurrence"]["top"]
    assert got["top_tags"] == ref["top_tags"]
    assert got["classifier"]["accuracy"] == pytest.approx(ref["classifier"]["accuracy"], abs=0.01)


# ---------------------------------------------------------------- S3

# moto's server lets this many requests through unauthenticated: the three that create_pipeline_user makes.
MOTO_ENV = {"INITIAL_NO_AUTH_ACTION_COUNT": "3"}


def moto_answers(endpoint: str) -> bool:
    """moto's server answers HTTP (a published or forwarded port accepts connections before it listens).
    Asks moto's own API, which does not use up the unauthenticated requests."""
    with urllib.request.urlopen(f"{endpoint}/moto-api/data.json", timeout=2) as resp:
        return resp.status == 200


def create_pipeline_user(endpoint: str) -> tuple[str, str]:
    """An IAM user allowed everything, made with moto's unauthenticated requests; its key and secret."""
    import boto3

    iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1",
                       aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
    iam.create_user(UserName="pipeline")
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    iam.put_user_policy(UserName="pipeline", PolicyName="all", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName="pipeline")["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


@dataclass
class S3Store:
    """An S3 API server as the tests reach it (``endpoint``) and as the pipeline does (``pipeline_endpoint``,
    from containers or pods; the same when empty), the pipeline's key there, and the tests' bucket."""

    endpoint: str
    key: str
    secret: str
    pipeline_endpoint: str = ""
    bucket: str = "posts"

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=self.key, aws_secret_access_key=self.secret)

    def env(self) -> dict[str, str]:
        """Credentials and endpoint the way users give them to the driver."""
        return {
            "AWS_ACCESS_KEY_ID": self.key,
            "AWS_SECRET_ACCESS_KEY": self.secret,
            "POSTS_PIPELINE__STORAGE_OPTIONS__ENDPOINT_URL": self.pipeline_endpoint or self.endpoint,
        }

    def keys(self, prefix: str) -> list[str]:
        """Every key under ``prefix`` in the bucket."""
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return [o["Key"] for page in pages for o in page.get("Contents", [])]

    def report(self, prefix: str) -> dict:
        """report.json of a finished run; fails if the run's _SUCCESS marker is missing."""
        keys = self.keys(prefix)
        assert f"{prefix}/_SUCCESS" in keys, f"no _SUCCESS under s3://{self.bucket}/{prefix}: {keys}"
        body = self.client().get_object(Bucket=self.bucket, Key=f"{prefix}/report.json")["Body"]
        return json.loads(body.read())


class S3Server(S3Store):
    """moto's S3 API server in its own process, with authentication on (as a real store has)."""

    def __init__(self):
        port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            env={**os.environ, **MOTO_ENV}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        endpoint = f"http://127.0.0.1:{port}"

        def up() -> bool:
            assert self.process.poll() is None, "moto server exited"
            return moto_answers(endpoint)

        wait_for(up, 30, f"moto server at {endpoint}", interval=0.2)
        super().__init__(endpoint, *create_pipeline_user(endpoint))

    def filesystem(self):
        import s3fs

        return s3fs.S3FileSystem(key=self.key, secret=self.secret, endpoint_url=self.endpoint,
                                 skip_instance_cache=True)

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=10)


# ---------------------------------------------------------------- Kubernetes


class Kubectl:
    """kubectl against one cluster (and, when given, one namespace); raises with its output on failure."""

    def __init__(self, binary: str, kubeconfig: str, namespace: str | None = None):
        self.binary, self.kubeconfig, self.namespace = binary, kubeconfig, namespace

    def run(self, *args, input: str | None = None, check: bool = True, timeout: float = 300,
            namespaced: bool = True) -> subprocess.CompletedProcess:
        ns = ["-n", self.namespace] if self.namespace and namespaced else []
        return run([self.binary, "--kubeconfig", self.kubeconfig, *ns, *args], input=input, check=check,
                   timeout=timeout)

    def __call__(self, *args, **kw) -> str:
        return self.run(*args, **kw).stdout

    def json(self, *args, **kw):
        return json.loads(self(*args, "-o", "json", **kw))

    def apply(self, manifest: str, namespace: str | None = None) -> str:
        ns = ["-n", namespace] if namespace else []
        return self(*ns, "apply", "-f", "-", input=manifest)

    @contextmanager
    def port_forward(self, target: str, port: int, answers: Callable[[str], bool],
                     namespace: str | None = None) -> Iterator[str]:
        """``kubectl port-forward`` of ``target``'s ``port`` to a free local port: its URL, once ``answers(url)``."""
        local = free_port()
        ns = namespace or self.namespace
        forward = subprocess.Popen([self.binary, "--kubeconfig", self.kubeconfig, *(["-n", ns] if ns else []),
                                    "port-forward", target, f"{local}:{port}"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{local}"
        try:
            wait_for(lambda: answers(url), 60, f"kubectl port-forward {target}", interval=0.5)
            yield url
        finally:
            forward.terminate()
            forward.wait(10)


def node_image_names(node: dict) -> set[str]:
    """The image names a Kubernetes node reports; an image left without a tag reports ``names: null``."""
    return {n for image in node["status"].get("images") or [] for n in image.get("names") or []}



# ---------------------------------------------------------------- small dumps and pages


REAL_DUMPS = Path(__file__).resolve().parents[1] / "data" / "real-dumps"  # one folder per site (SOURCES.md)


def site_folders(root: Path, sites: tuple[str, ...]) -> str:
    """A folder of site folders, as the dumps are unpacked: ``root/<site>/Posts.xml``, from the real dumps."""
    for site in sites:
        (root / site).mkdir()
        shutil.copy(REAL_DUMPS / site / "Posts.xml", root / site / "Posts.xml")
    return str(root)


def write_posts(path, questions: list[tuple[int, list[str], str]]) -> str:
    """A small Posts.xml of questions (id, tags, body text), for tests that need exact label counts."""
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
    program = shutil.which("chromium")
    if program is None:
        pytest.skip("chromium is not installed (make system-deps installs it)")
    sandbox = ["--no-sandbox"] if os.geteuid() == 0 else []
    done = subprocess.run([program, "--headless", "--disable-gpu", *sandbox, *options, url],
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr
    return done.stdout


# ---------------------------------------------------------------- rows, blocks and the first pass's stages

QUESTION = dict(Id=1, PostTypeId=1, CreationDate="2008-07-31T21:42:52.667", Score=5, Body="<p>hi</p>",
                Title="T", Tags="<python><pandas>")


def row(**attrs) -> str:
    """A ``<row …/>`` line of a dump, its values escaped as the dumps escape them."""
    return "  <row " + " ".join(f'{k}="{xml_attr(str(v))}"' for k, v in attrs.items()) + " />"


def block(*lines: str, newline: str = "\r\n", bom: bool = True) -> bytes:
    """A whole small dump holding ``lines``: declaration, root tags, BOM and CRLF as published."""
    text = newline.join(['<?xml version="1.0" encoding="utf-8"?>', "<posts>", *lines, "</posts>"])
    return (b"\xef\xbb\xbf" if bom else b"") + text.encode()


def load(data: bytes):
    """``questions.load_block`` on one block, with room for every malformed sample."""
    return questions.load_block(data, "mem://Posts.xml", 0, samples=100)


def first_pass_counts(blocks: list[bytes], tag: str = "python", labels: tuple[str, str] = ("python", "r")) -> dict:
    """The first pass's stages on the blocks of one file (``questions.load_block`` → ``clean.clean_partition`` →
    ``analytics.partials``), counted as ``reference.summary`` counts (line numbers within the file)."""
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


# ---------------------------------------------------------------- the command as a user runs it


def posts_pipeline(*args: str, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """The command as a user runs it, in its own process (the environment inherited, ``env`` added)."""
    return subprocess.run([POSTS_PIPELINE, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def session_processes(session: int) -> dict[int, tuple[int, str]]:
    """The live processes of a session: pid → (parent pid, command line); zombies, which run nothing, left out."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:  # ended meanwhile
            continue
        state, ppid, _group, sid = stat.rsplit(")", 1)[1].split()[:4]
        if int(sid) == session and state != "Z":
            found[int(pid)] = (int(ppid), cmdline.replace(b"\0", b" ").decode(errors="replace").strip())
    return found


def assert_refused(done: subprocess.CompletedProcess, *messages: str) -> None:
    """Exit 2 with one line on stderr, ``posts-pipeline: error: …``, saying one of ``messages``."""
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0].startswith("posts-pipeline: error: ") and any(m in lines[0] for m in messages), lines[0]


def at_once(*commands: list, timeout: int = 600) -> list[subprocess.CompletedProcess]:
    """Commands started together, each in its own process; what each did, once all have ended."""
    processes = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in commands]
    done = []
    for process in processes:
        out, err = process.communicate(timeout=timeout)
        done.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
    return done
