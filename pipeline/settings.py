"""Settings: the whole configuration, read from dask.config once and checked before anything starts.

``load()`` validates ``posts-pipeline.*`` against ``pipeline-schema.yaml`` (types, ranges, choices,
unknown keys), then makes the checks a schema cannot say (sizes, durations, the local worker cap,
names Kubernetes accepts), and returns frozen dataclasses: a stage, a cluster backend or the
Kubernetes spec takes its group (``settings.cluster.local``) and has no default of its own. Every
problem is one line that names the key and, where known, where its value came from — a flag, an
environment variable, a config file — so that a typo fails in a second, before an input is listed
or a cluster (on Kubernetes: a DaskCluster) is created.

A new key: its default in pipeline.yaml, its type and range in pipeline-schema.yaml, a field of its
group's dataclass here (``min_questions`` for ``min-questions``), and an entry in ``PARSERS`` only
when its value needs converting or a check the schema cannot say.
"""

from __future__ import annotations

import functools
import math
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, is_dataclass
from typing import Any, TypeVar, get_type_hints

import dask.config
import jsonschema
import yaml
from dask.utils import parse_bytes, parse_timedelta

from pipeline import config
from pipeline.errors import PipelineError

MIN_BLOCKSIZE = 64 * 2**10  # smaller blocks only add tasks: each costs the scheduler the same
MAX_BLOCKS = 20_000  # a run of more blocks spends its time scheduling them
WORKERS_PER_CORE = 4  # local worker processes beyond this only compete for the cores (and memory)
MIN_MEMORY_LIMIT = 256 * 2**20  # a worker below it is killed by its nanny while it starts
# Environment variables whose names say they hold a secret: never written into a spec as a literal.
SECRET_NAME = re.compile(r"(SECRET|PASSWORD|TOKEN|CREDENTIAL|ACCESS_KEY|PRIVATE)", re.IGNORECASE)
# A DaskCluster name becomes "<name>-scheduler" (a Service: DNS-1035, 63 characters) and
# "<name>-default" (a label value): keep room for the suffixes.
CLUSTER_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$")


@dataclass(frozen=True)
class LocalSettings:
    """``cluster.local``: the embedded LocalCluster."""

    n_workers: int
    threads_per_worker: int
    start_method: str  # auto | forkserver | spawn
    memory_limit: int | str  # bytes per worker, 0 for none, or "auto"
    dashboard_address: str
    processes: bool | str  # True, False or "auto" (``cluster.in_process``)


@dataclass(frozen=True)
class KubernetesSettings:
    """``cluster.kubernetes``: the DaskCluster the driver creates."""

    image: str
    image_pull_policy: str
    image_pull_secrets: tuple[str, ...]
    namespace: str | None
    name: str  # a template: {uuid} is replaced per run
    n_workers: int
    adapt: tuple[int, int] | None  # (MIN, MAX) workers, or None for a fixed n_workers
    threads_per_worker: int
    worker_memory_limit: str  # "auto" or a size, as `dask worker --memory-limit` takes it
    worker_resources: dict  # requests and limits; extended resources (nvidia.com/gpu) too
    worker_node_selector: dict[str, str]  # nodeSelector of the worker pods, e.g. GPU nodes
    worker_tolerations: tuple[dict, ...]  # taints of those nodes the worker pods tolerate
    scheduler_resources: dict
    env: dict[str, str]
    forward_env: tuple[str, ...]
    env_from_secrets: tuple[str, ...]
    secret_env: dict[str, tuple[str, str]]  # variable → (Secret, key)
    service_account: str | None
    run_as_user: int
    read_only_root_filesystem: bool
    tmp_size: str
    idle_timeout: int  # seconds; 0: never
    start_timeout: float  # seconds


@dataclass(frozen=True)
class ClusterSettings:
    kind: str  # local | scheduler | kubernetes
    scheduler_address: str | None
    connect_timeout: float  # seconds
    local: LocalSettings
    kubernetes: KubernetesSettings


@dataclass(frozen=True)
class CleanSettings:
    html_parser: str


@dataclass(frozen=True)
class AnalyticsSettings:
    tag: str
    top: int


@dataclass(frozen=True)
class ClassifierSettings:
    enabled: bool
    tags: tuple[str, str]
    min_questions: int
    test_size: float
    random_state: int


@dataclass(frozen=True)
class MalformedSettings:
    warning_share: float
    failure_share: float
    allow: bool


@dataclass(frozen=True)
class ReportSettings:
    malformed_samples: int


@dataclass(frozen=True)
class MetricsSettings:
    pushgateway: str | None  # http(s) URL; None: metrics.prom in the run directory only
    job: str  # the Pushgateway's job label: each run replaces the previous run's figures


@dataclass(frozen=True)
class Settings:
    """Everything under ``posts-pipeline``, checked."""

    input: tuple[str, ...]
    output: str | None
    overwrite: bool
    resume: bool
    blocksize: int  # bytes
    unpack_dir: str | None
    storage_options: dict
    cluster: ClusterSettings
    clean: CleanSettings
    analytics: AnalyticsSettings
    classifier: ClassifierSettings
    malformed: MalformedSettings
    report: ReportSettings
    metrics: MetricsSettings
    progress: bool | str  # True, False or "auto"
    visualize: str | None

    @property
    def show_progress(self) -> bool:
        """Whether to draw a progress bar: ``auto`` draws one when stderr is a terminal."""
        return sys.stderr.isatty() if self.progress == "auto" else bool(self.progress)

    def check_blocks(self, count: int, total_bytes: int) -> None:
        """Refuse a plan of more than ``MAX_BLOCKS`` blocks, naming the blocksize that would do."""
        if count > MAX_BLOCKS:
            needed = -(-total_bytes // MAX_BLOCKS)
            raise PipelineError(
                f"blocksize {self.blocksize:,} bytes cuts the inputs ({total_bytes:,} bytes) into {count:,} blocks, "
                f"more than {MAX_BLOCKS:,}: give a blocksize of at least {_size_text(needed)}"
                f"{config.where('blocksize', config.get('blocksize'))}"
            )


# Where each group lives, for a group given as its own mapping (``section``).
PREFIXES = {Settings: "", ClusterSettings: "cluster.", LocalSettings: "cluster.local.",
            KubernetesSettings: "cluster.kubernetes.", CleanSettings: "clean.", AnalyticsSettings: "analytics.",
            ClassifierSettings: "classifier.", ReportSettings: "report.",
            MetricsSettings: "metrics."}


class Invalid(ValueError):
    """A value the schema let through and a parser refused: the message says what is expected."""


class Refused(Invalid):
    """A value refused for a reason of its own: the message says it all (and never shows the value)."""


# ---------------------------------------------------------------------------------------------
# Parsers: a value (already of a type the schema allows) → its typed form; Invalid if it is not one.

def cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _size_text(n: int) -> str:
    for unit, factor in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= factor:
            return f"{-(-n // factor)}{unit}"
    return f"{n}B"


def _bytes(value: str | int, what: str) -> int:
    try:
        n = parse_bytes(value) if isinstance(value, str) else int(value)
    except (ValueError, TypeError):
        raise Invalid(what) from None
    if n < 0:
        raise Invalid(what)
    return n


def blocksize(value: str | int) -> int:
    n = _bytes(value, f"a size such as 16MiB, at least {_size_text(MIN_BLOCKSIZE)}")
    if n < MIN_BLOCKSIZE:
        raise Invalid(f"a size such as 16MiB, at least {_size_text(MIN_BLOCKSIZE)}")
    return n


def memory_limit(value: str | int) -> int | str:
    if value == "auto":
        return value
    expected = f"'auto', 0 (no limit) or a size such as 4GiB, at least {_size_text(MIN_MEMORY_LIMIT)}"
    n = _bytes(value, expected)
    if 0 < n < MIN_MEMORY_LIMIT:
        raise Invalid(expected)
    return n


def kube_memory_limit(value: str | int) -> str:
    return str(memory_limit(value))


def duration(minimum: float, what: str) -> Callable[[Any], float]:
    def parse(value: str | float) -> float:
        try:
            seconds = parse_timedelta(value, default="seconds")
        except (ValueError, TypeError, KeyError):
            raise Invalid(what) from None
        if seconds is None or not math.isfinite(seconds) or seconds < minimum:
            raise Invalid(what)
        return seconds
    return parse


def local_workers(value: int) -> int:
    cap = WORKERS_PER_CORE * cores()
    if value > cap:
        raise Invalid(f"an integer from 1 to {cap} ({WORKERS_PER_CORE} per core, {cores()} cores here)")
    return value


def parse_adapt(text: str | None) -> tuple[int, int] | None:
    """``"1:4"`` → ``(1, 4)``; ``None`` or ``""`` → ``None`` (a fixed number of workers)."""
    if text in (None, ""):
        return None
    m = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", str(text))
    if not m or int(m[1]) > int(m[2]) or int(m[2]) == 0:
        raise Invalid("MIN:MAX with 0 <= MIN <= MAX and MAX > 0, e.g. 1:4")
    return int(m[1]), int(m[2])


def cluster_name(template: str, unique: str) -> str:
    """A DaskCluster name from a template such as ``posts-{uuid}`` (``unique`` added when it has no ``{uuid}``)."""
    try:
        name = template.format(uuid=unique)
    except (KeyError, IndexError, ValueError):
        name = ""
    name = re.sub(r"[^-a-z0-9]", "-", name.lower()).strip("-")
    if "{uuid}" not in template:
        name = f"{name[:29]}-{unique}"
    if not CLUSTER_NAME.match(name):
        raise Invalid("a name that starts with a letter, holds only a-z, 0-9, '-' and {uuid}, "
                      "and is at most 40 characters")
    return name


def cluster_name_template(template: str) -> str:
    cluster_name(template, "0" * 10)
    return template


def _plain_names(names) -> None:
    for name in names:
        if SECRET_NAME.search(str(name)):
            raise Refused(f"{name} looks like a credential: give it from a Kubernetes Secret "
                          "(cluster.kubernetes.env-from-secrets or secret-env), never as a literal value")


def plain_env(value: Mapping) -> dict[str, str]:
    _plain_names(value)
    return {str(k): str(v) for k, v in value.items()}


def forward_env(value: list) -> tuple[str, ...]:
    _plain_names(value)
    return tuple(value)


def secret_env(value: Mapping) -> dict[str, tuple[str, str]]:
    refs = {}
    for name, ref in value.items():
        secret, _, key = str(ref).partition("/")
        if not secret or not key:
            raise Invalid(f"a mapping VAR: SECRET/KEY ({name}: {ref!r} has no /KEY)")
        refs[str(name)] = (secret, key)
    return refs


def resources(value: Mapping) -> dict:
    """Requests and limits with every quantity a string: the DaskCluster CRD takes no numbers (nvidia.com/gpu: 1)."""
    return {part: {name: str(n) for name, n in (amounts or {}).items()} for part, amounts in value.items()}


def storage_options(value: Mapping) -> dict:
    endpoint = value.get("endpoint_url")
    if isinstance(endpoint, str) and config.redacted_url(endpoint) != endpoint:
        raise Refused(f"endpoint_url {config.redacted_url(endpoint)} carries a user and password, which S3 clients "
                      "refuse (and logs would show): give the credentials as AWS_ACCESS_KEY_ID and "
                      "AWS_SECRET_ACCESS_KEY, or an AWS profile")
    return dict(value)


# Schemes whose URLs may carry user:password@ (the others would send it on as part of a bucket name).
USERINFO_SCHEMES = ("http", "https", "ftp", "sftp", "ssh", "smb")


def _no_userinfo(url: str) -> str:
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if config.redacted_url(url) != url and scheme not in USERINFO_SCHEMES:
        raise Refused(f"{config.redacted_url(url)} carries a user and password, which {scheme}:// URLs cannot: "
                      "give the credentials as AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or an AWS profile")
    return url


def inputs(value: str | list | None) -> tuple[str, ...]:
    urls = () if value is None else (value,) if isinstance(value, str) else tuple(value)
    return tuple(_no_userinfo(url) for url in urls)


def output(value: str | None) -> str | None:
    return None if value is None else _no_userinfo(value)


# Keys whose values are converted or checked beyond what the schema says.
PARSERS: dict[str, Callable[[Any], Any]] = {
    "input": inputs,
    "output": output,
    "blocksize": blocksize,
    "storage-options": storage_options,
    "cluster.connect-timeout": duration(0.001, "a duration such as 30s or 2m"),
    "cluster.local.n-workers": local_workers,
    "cluster.local.memory-limit": memory_limit,
    "cluster.kubernetes.name": cluster_name_template,
    "cluster.kubernetes.adapt": parse_adapt,
    "cluster.kubernetes.worker-memory-limit": kube_memory_limit,
    "cluster.kubernetes.worker-resources": resources,
    "cluster.kubernetes.scheduler-resources": resources,
    "cluster.kubernetes.env": plain_env,
    "cluster.kubernetes.forward-env": forward_env,
    "cluster.kubernetes.secret-env": secret_env,
    "cluster.kubernetes.idle-timeout": lambda v: int(duration(0, "a duration such as 10m, or 0 for never")(v)),
    "cluster.kubernetes.start-timeout": duration(1, "a duration of at least 1s, such as 5m"),
}


def _across(tree: Mapping) -> list[str]:
    """Checks of one key against another."""
    cluster = tree.get("cluster") or {}
    if cluster.get("kind") == "scheduler" and not cluster.get("scheduler-address"):
        return ["cluster.kind is scheduler but no cluster.scheduler-address is set: give --scheduler tcp://host:8786"
                + config.where("cluster.kind", "scheduler")]
    return []


# ---------------------------------------------------------------------------------------------
# The schema, and its errors in words.

@functools.cache
def schema() -> dict:
    return yaml.safe_load(config.SCHEMA_FILE.read_text())


def _is_number(checker, value) -> bool:
    """JSON numbers: NaN is not one (every range check would let it through)."""
    return jsonschema.Draft202012Validator.TYPE_CHECKER.is_type(value, "number") and not (
        isinstance(value, float) and math.isnan(value))


Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine("number", _is_number),
)

TYPE_WORDS = {"integer": "an integer", "number": "a number", "string": "a string", "boolean": "true or false",
              "array": "a list", "object": "a mapping", "null": "null"}


def _resolved(node: dict) -> dict:
    ref = node.get("$ref")
    if not ref:
        return node
    target = schema()
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    return {**_resolved(target), **{k: v for k, v in node.items() if k != "$ref"}}


def shown(value) -> str:
    """A value as the user wrote it (YAML words for true, false and null)."""
    if isinstance(value, bool) or value is None:
        return yaml.safe_dump(value).split("\n")[0]
    text = repr(config.redacted(value))
    return text if len(text) <= 80 else text[:77] + "..."


def expected(node: dict) -> str:
    """What a schema node accepts, in words: "an integer ≥ 1", "one of fast, bs4", "a number in (0, 1)"."""
    node = _resolved(node)
    if "expected" in node:
        return node["expected"]
    if "enum" in node:
        return "one of " + ", ".join(shown(v) if not isinstance(v, str) else v for v in node["enum"])
    types = node.get("type", [])
    types = [types] if isinstance(types, str) else list(types)
    words = []
    for t in types:
        word = TYPE_WORDS[t]
        if t == "array" and node.get("minItems") is not None and node.get("minItems") == node.get("maxItems"):
            item = TYPE_WORDS[(node.get("items") or {}).get("type", "string")].split(" ", 1)[1]
            word = f"a list of {node['minItems']}{' different' if node.get('uniqueItems') else ''} {item}s"
        elif t == "array" and "items" in node:
            word = f"a list of {TYPE_WORDS[node['items'].get('type', 'string')].split(' ', 1)[1]}s"
        elif t in ("integer", "number"):
            word += _range(node)
        elif t == "string" and node.get("minLength"):
            word = "a non-empty string"
        words.append(word)
    return " or ".join(words) or "valid"


def _range(node: dict) -> str:
    low, high = node.get("minimum"), node.get("maximum")
    xlow, xhigh = node.get("exclusiveMinimum"), node.get("exclusiveMaximum")
    if xlow is not None and xhigh is not None:
        return f" in ({xlow}, {xhigh})"
    if low is not None and high is not None:
        return f" from {low} to {high}"
    if low is not None:
        return f" ≥ {low}"
    if xlow is not None:
        return f" > {xlow}"
    return f" ≤ {high}" if high is not None else ""


def _node(path: list[str]) -> dict | None:
    """The schema node of a key path under posts-pipeline, or None beyond the documented keys."""
    node = schema()["properties"][config.NAMESPACE]
    for part in path:
        node = (_resolved(node).get("properties") or {}).get(part)
        if node is None:
            return None
    return _resolved(node)


def _problem(key: str, value, words: str) -> str:
    return f"{key} must be {words}, not {shown(value)}{config.where(key, value)}"


def _schema_problems(tree: Mapping, prefix: list[str]) -> dict[str, str]:
    """Key → the one line that says what is wrong with it."""
    root = _node(prefix)
    validator = Validator(schema()).evolve(schema=root)
    problems: dict[str, str] = {}
    for error in validator.iter_errors(tree):
        path = [*prefix]
        for part in error.absolute_path:
            if not isinstance(part, str):
                break
            path.append(part)
        key = ".".join(path)
        if error.validator == "additionalProperties" and isinstance(error.instance, Mapping):
            known = list(error.schema.get("properties") or {})
            for extra in sorted(set(error.instance) - set(known)):
                where = ".".join([*path, extra])
                problems.setdefault(where, f"{where} is not a setting (the settings here are {', '.join(known)})"
                                           f"{config.where(where, None)}")
            continue
        node = _node(path)
        value = _value(tree, path[len(prefix):])
        problems.setdefault(key, _problem(key, value, expected(node if node is not None else error.schema)))
    return problems


def _value(tree: Mapping, path: list[str]):
    for part in path:
        tree = tree[part]
    return tree


# ---------------------------------------------------------------------------------------------
# Building the dataclasses.

T = TypeVar("T")


@functools.cache
def _hints(cls) -> dict:
    return get_type_hints(cls)


def _build(cls: type[T], tree: Mapping, prefix: str, bad: dict[str, str]) -> T | None:
    """The dataclass ``cls`` from its mapping; problems go to ``bad`` (key → line), and then None."""
    values = {}
    for f in fields(cls):
        name, kind = f.name.replace("_", "-"), _hints(cls)[f.name]
        key = prefix + name
        if any(key == k or key.startswith(k + ".") or k.startswith(key + ".") for k in bad):
            continue  # the schema has said what is wrong here
        if name not in tree:
            bad[key] = f"{key} is missing"
            continue
        value = tree[name]
        if is_dataclass(kind):
            values[f.name] = _build(kind, value, key + ".", bad)
        elif key in PARSERS:
            try:
                values[f.name] = PARSERS[key](value)
            except Refused as e:
                bad[key] = f"{key}: {e}{config.where(key, value)}"
            except Invalid as e:
                bad[key] = _problem(key, value, str(e))
        else:
            values[f.name] = tuple(value) if isinstance(value, list) else dict(value) if isinstance(value, Mapping) \
                else value
    return None if bad else cls(**values)


def _checked(cls: type[T], tree: Mapping, prefix: str) -> T:
    path = [p for p in prefix.rstrip(".").split(".") if p]
    bad = _schema_problems(tree, path)
    built = _build(cls, tree, prefix, bad) if isinstance(tree, Mapping) else None
    lines = [bad[k] for k in sorted(bad)] + (_across(tree) if cls is Settings and not bad else [])
    if lines:
        raise PipelineError("; ".join(lines))
    return built


def load() -> Settings:
    """The current configuration (``dask.config``'s ``posts-pipeline``), checked: a PipelineError naming
    every key that is wrong."""
    return _checked(Settings, dask.config.get(config.NAMESPACE), "")


def section(cls: type[T], value: T | Mapping) -> T:
    """A group of settings as its dataclass: ``value`` itself, or built from its mapping (checked the same way)."""
    if isinstance(value, cls):
        return value
    return _checked(cls, value, PREFIXES[cls])
