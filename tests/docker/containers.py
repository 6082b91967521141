"""Helpers for tests/docker: the docker CLI, one session's containers, S3, the Dask cluster, the driver.

Every container and network made here carries the label ``io.posts-pipeline.test=<session id>``
(and the pid of the pytest process), so teardown can remove exactly this session's things.
"""

from __future__ import annotations

import os
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path

from support import MOTO_ENV, S3Store, create_pipeline_user, moto_answers, run, wait_for

REPO = Path(os.environ.get("POSTS_PIPELINE_REPO") or Path(__file__).resolve().parents[2])
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
IMAGE = os.environ.get("POSTS_PIPELINE_IMAGE", f"posts-pipeline:{VERSION}")
OPERATOR_IMAGE = os.environ.get("POSTS_PIPELINE_OPERATOR_IMAGE", f"posts-pipeline-operator:{VERSION}")
TEST_IMAGE = os.environ.get("POSTS_PIPELINE_TEST_IMAGE", f"posts-pipeline-test:{VERSION}")
LABEL = "io.posts-pipeline.test"
PID_LABEL = "io.posts-pipeline.test.pid"
BUCKET = "posts"
S3_PORT = 5000
BLOCKSIZE = "2MiB"  # ~20 partitions of the test input: both workers get work, a kill lands mid-run


# ---------------------------------------------------------------- docker CLI


def docker(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the docker CLI; on failure raise with its output."""
    return run(["docker", *args], check=check, timeout=timeout)


def labelled(kind: str, label: str) -> list[str]:
    """Ids of the containers or networks that carry ``label`` (key=value)."""
    args = ["container", "ls", "-aq"] if kind == "container" else ["network", "ls", "-q"]
    return docker(*args, "--filter", f"label={label}").stdout.split()


def remove_labelled(label: str) -> None:
    """Remove the containers (with their anonymous volumes) and the networks that carry ``label``."""
    ids = labelled("container", label)
    if ids:
        docker("rm", "--force", "--volumes", *ids, check=False)
    ids = labelled("network", label)
    if ids:
        docker("network", "rm", *ids, check=False)


def remove_stale_sessions() -> None:
    """Remove what sessions left whose pytest process is gone (killed before their teardown ran)."""
    fmt = f'{{{{.Label "{LABEL}"}}}} {{{{.Label "{PID_LABEL}"}}}}'
    out = docker("container", "ls", "-a", "--filter", f"label={LABEL}", "--format", fmt).stdout
    out += docker("network", "ls", "--filter", f"label={LABEL}", "--format", fmt).stdout
    for line in set(out.splitlines()):
        session, _, pid = line.partition(" ")
        try:
            os.kill(int(pid), 0)
            continue  # that session is still running
        except (ValueError, ProcessLookupError):
            pass
        except PermissionError:
            continue
        remove_labelled(f"{LABEL}={session}")


def state(name: str) -> str:
    return docker("inspect", "--format", "{{.State.Status}}", name).stdout.strip()


def logs(name: str) -> str:
    proc = docker("logs", name, check=False)
    return proc.stdout + proc.stderr


def wait_exit(name: str, timeout: float = 900) -> int:
    return int(docker("wait", name, timeout=timeout).stdout.strip())


# ---------------------------------------------------------------- one session


@dataclass
class Session:
    """One test session: its id, network and labels."""

    id: str
    network: str
    labels: list[str]

    def name(self, role: str) -> str:
        return f"pp-{self.id}-{role}"

    def run(self, role: str, image: str, *command: str, env: dict | None = None, alias: str | None = None,
            publish: int | None = None) -> str:
        """Start a detached container on the session's network (reachable as ``alias``); returns its name."""
        name = self.name(role)
        args = ["run", "--detach", "--name", name, "--network", self.network, "--hostname", alias or role]
        for label in self.labels:
            args += ["--label", label]
        if alias:
            args += ["--network-alias", alias]
        if publish:
            args += ["--publish", f"127.0.0.1::{publish}"]
        for key, value in (env or {}).items():
            args += ["--env", f"{key}={value}"]
        docker(*args, image, *command)
        return name

    @staticmethod
    def remove(*names: str) -> None:
        if names:
            docker("rm", "--force", "--volumes", *names, check=False)

    @staticmethod
    def port(name: str, port: int) -> int:
        out = docker("port", name, f"{port}/tcp").stdout.split()[0]
        return int(out.rsplit(":", 1)[1])


# ---------------------------------------------------------------- S3


def start_s3(session: Session) -> S3Store:
    """moto's S3 server in a container, authentication on; a bucket; an IAM user's key for the pipeline."""
    name = session.run("s3", TEST_IMAGE, "python", "-m", "moto.server", "-H", "0.0.0.0", "-p", str(S3_PORT),
                       alias="s3", publish=S3_PORT, env={"PYTHONPATH": "/opt/test-extras", **MOTO_ENV})
    endpoint = f"http://127.0.0.1:{session.port(name, S3_PORT)}"
    wait_for(lambda: moto_answers(endpoint), 60, f"moto server at {endpoint}")
    server = S3Store(endpoint, *create_pipeline_user(endpoint), pipeline_endpoint=f"http://s3:{S3_PORT}",
                     bucket=BUCKET)
    server.client().create_bucket(Bucket=BUCKET)  # no region: moto refuses a LocationConstraint here
    return server


def start_minio(session: Session, image: str) -> S3Store:
    """MinIO (built from the Go module proxy by docker/build-minio.sh), with a random root key."""
    import secrets
    import urllib.request

    key, secret = f"pp{secrets.token_hex(6)}", secrets.token_urlsafe(24)
    name = session.run("s3", image, alias="s3", publish=9000,
                       env={"MINIO_ROOT_USER": key, "MINIO_ROOT_PASSWORD": secret, "MINIO_BROWSER": "off"})
    endpoint = f"http://127.0.0.1:{session.port(name, 9000)}"

    def live() -> bool:
        with urllib.request.urlopen(f"{endpoint}/minio/health/ready", timeout=2) as resp:
            return resp.status == 200

    wait_for(live, 60, f"MinIO at {endpoint}")
    server = S3Store(endpoint, key, secret, pipeline_endpoint="http://s3:9000", bucket=BUCKET)
    server.client().create_bucket(Bucket=BUCKET)
    return server


# ---------------------------------------------------------------- Dask cluster and driver


@dataclass
class Cluster:
    scheduler: str                 # container name
    workers: dict[str, str]        # worker name (as dask knows it) -> container name
    address_host: str              # tcp://127.0.0.1:<published port>, for the test
    address_net: str               # tcp://<alias>:8786, for containers

    def client(self):
        """A client for the test's own look at the scheduler. The host's Python differs from the
        image's in the patch version only, which distributed warns about: not the subject here."""
        import warnings

        from distributed import Client
        from distributed.versions import VersionMismatchWarning

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", VersionMismatchWarning)
            return Client(self.address_host, timeout="30s")

    def containers(self) -> list[str]:
        return [self.scheduler, *self.workers.values()]


def start_cluster(session: Session, s3: S3Store, name: str, workers: dict[str, dict]) -> Cluster:
    """A ``dask scheduler`` container and a ``dask worker`` container per entry of ``workers``
    (worker name → {"image": ..., "env": {...}}); waits until every worker has joined.
    Workers get the S3 credentials in their environment, as on a real deployment."""
    sched = session.run(name, IMAGE, "dask", "scheduler", "--host", "0.0.0.0", "--port", "8786",
                        alias=name, publish=8786)
    cluster = Cluster(sched, {}, f"tcp://127.0.0.1:{session.port(sched, 8786)}", f"tcp://{name}:8786")
    try:
        # The published port accepts connections before the scheduler listens behind it.
        wait_for(lambda: "Scheduler at" in logs(sched), 120, f"scheduler {sched} to listen")
        for worker, spec in workers.items():
            env = {"AWS_ACCESS_KEY_ID": s3.key, "AWS_SECRET_ACCESS_KEY": s3.secret, **spec.get("env", {})}
            cluster.workers[worker] = session.run(
                worker, spec.get("image", IMAGE), "dask", "worker", cluster.address_net, "--name", worker,
                "--nthreads", "1", "--memory-limit", "3GiB", "--death-timeout", "60", env=env, alias=worker,
            )
        with cluster.client() as client:
            try:
                client.wait_for_workers(len(workers), timeout=120)
            except TimeoutError:
                tails = "\n".join(f"--- {n}\n{logs(n)[-3000:]}" for n in cluster.containers())
                raise AssertionError(f"workers did not join the scheduler within 120 s\n{tails}") from None
    except BaseException:
        Session.remove(*cluster.containers())
        raise
    return cluster


def run_driver(session: Session, s3: S3Store, scheduler: str, input_url: str, output_url: str, role: str,
               *extra_args: str) -> str:
    """Start ``posts-pipeline run`` in a container of the image (detached; the container is kept
    until the session ends, to read its logs and exit code). Returns the container's name."""
    return session.run(
        role, IMAGE, "posts-pipeline", "run", "--scheduler", scheduler, "--input", input_url,
        "--output", output_url, "--blocksize", BLOCKSIZE, "--no-progress", *extra_args,
        env=s3.env(),
    )
