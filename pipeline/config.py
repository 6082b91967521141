"""Configuration, the dask.config way.

Precedence, lowest first: ``pipeline.yaml`` shipped here, YAML files dask already reads
(``~/.config/dask/``), a ``--config`` file, ``POSTS_PIPELINE__*`` (or ``DASK_POSTS_PIPELINE__*``)
environment variables, then command-line flags. ``pipeline.settings.load()`` reads the result once
and checks it; ``where`` says which of these sources gave a value, for its error messages.
Whatever is printed or logged goes through ``redacted`` / ``redacted_url``: a URL's
``user:password@`` never reaches a terminal or a log.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import dask.config
import yaml

from pipeline.errors import PipelineError

NAMESPACE = "posts-pipeline"
ENV_PREFIX = "POSTS_PIPELINE__"
DEFAULTS_FILE = Path(__file__).with_name("pipeline.yaml")
SCHEMA_FILE = Path(__file__).with_name("pipeline-schema.yaml")

with DEFAULTS_FILE.open() as f:
    dask.config.update_defaults(yaml.safe_load(f))


def get(key: str):
    """One setting, e.g. ``get("cluster.kind")``."""
    return dask.config.get(f"{NAMESPACE}.{key}")


def from_environment(environ: Mapping[str, str]) -> dict:
    """``POSTS_PIPELINE__A__B_C=1`` → ``{"posts-pipeline": {"a": {"b-c": 1}}}``, values parsed as dask does."""
    renamed = {
        "DASK_POSTS_PIPELINE__" + key[len(ENV_PREFIX) :]: value
        for key, value in environ.items()
        if key.startswith(ENV_PREFIX)
    }
    return dask.config.collect_env(renamed)


def read_file(path: str | os.PathLike) -> dict:
    """A user YAML file laid out like ``pipeline.yaml``; a clear error if it is not."""
    try:
        with open(path) as f:
            data = yaml.safe_load(f) or {}
    except FileNotFoundError:
        raise PipelineError(f"config file not found: {path}") from None
    except yaml.YAMLError as e:
        raise PipelineError(f"config file {path} is not valid YAML: {e}") from None
    if not isinstance(data, dict) or set(data) - {NAMESPACE, NAMESPACE.replace("-", "_")}:
        raise PipelineError(f"config file {path} must hold one top-level key, '{NAMESPACE}:'")
    return data


def load(
    config_file: str | None = None,
    flags: Mapping[str, object] | None = None,
    environ: Mapping[str, str] = os.environ,
    flag_names: Mapping[str, str] | None = None,
) -> None:
    """Apply a config file, the environment and flags (each overriding the one before) to dask.config.

    ``flags`` maps dotted keys (``"cluster.local.n-workers"``) to values; ``None`` means "not given".
    ``flag_names`` (key → ``--flag``) lets an error name the flag a bad value came from.
    """
    if config_file:
        data = read_file(config_file)
        dask.config.update(dask.config.config, data)
        _remember(f"config file {config_file}", next(iter(data.values()), None) or {})
    for name, value in environ.items():
        if name.startswith(ENV_PREFIX):
            _remember(name, from_environment({name: value}).get(NAMESPACE.replace("-", "_"), {}))
    dask.config.update(dask.config.config, from_environment(environ))
    given = {key: value for key, value in (flags or {}).items() if value is not None}
    for key, value in given.items():
        SOURCES.append(((flag_names or {}).get(key, "a flag"), {_canonical(key): value}))
    if given:
        dask.config.set({f"{NAMESPACE}.{key}": value for key, value in given.items()})


# Where values came from, latest last: (source, {dotted key: value}).
SOURCES: list[tuple[str, dict]] = []


def _canonical(key: str) -> str:
    return key.replace("_", "-")


def _flat(tree, prefix: str = "") -> dict:
    if not isinstance(tree, Mapping) or not tree:
        return {prefix.rstrip("."): tree} if prefix else {}
    out = {}
    for k, v in tree.items():
        out.update(_flat(v, f"{prefix}{_canonical(str(k))}."))
    return out


def _remember(source: str, tree) -> None:
    SOURCES.append((source, _flat(tree)))


def _dask_sources() -> list[tuple[str, dict]]:
    """The YAML files and DASK_ variables dask itself read when it was imported (lowest first)."""
    found = []
    for directory in dask.config.paths:
        for path in sorted(Path(directory).glob("*.y*ml")) if Path(directory).is_dir() else []:
            try:
                data = yaml.safe_load(path.read_text()) or {}
            except (OSError, yaml.YAMLError):
                continue
            if isinstance(data, dict):
                tree = data.get(NAMESPACE, data.get(NAMESPACE.replace("-", "_")))
                if tree:
                    found.append((f"config file {path}", _flat(tree)))
    for name, value in os.environ.items():
        if name.startswith("DASK_" + ENV_PREFIX):
            tree = dask.config.collect_env({name: value}).get(NAMESPACE.replace("-", "_"), {})
            found.append((name, _flat(tree)))
    return found


def _same(a, b) -> bool:
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


def where(key: str, value) -> str:
    """`` (from SOURCE)`` for the source that gave ``key`` the value ``value``, or ``""`` if none is known."""
    key = _canonical(key)
    for source, values in [*reversed(SOURCES), *reversed(_dask_sources())]:
        if key in values and (value is None or _same(values[key], value)):
            return f" (from {source})"
        if value is None and any(k.startswith(key + ".") for k in values):
            return f" (from {source})"
    return ""


# The driver's log lines, on the terminal as in driver.log.
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOG_DATE_FORMAT = "%H:%M:%S"

SECRET_WORDS = ("key", "secret", "token", "password", "credential")
# user[:password]@ after a scheme: what a URL must not show.
USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/?#@\s]+)@")


def redacted_url(url):
    """``url`` without the user and password it carries (``http://admin:secret@host`` → ``http://***@host``);
    anything that is not such a URL unchanged."""
    if not isinstance(url, str) or "@" not in url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return USERINFO.sub(r"\g<scheme>***@", url)
    if not parts.scheme or "@" not in parts.netloc:
        return USERINFO.sub(r"\g<scheme>***@", url)
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]))


def redacted_text(text: str) -> str:
    """``text`` with the user and password of every URL in it replaced."""
    return USERINFO.sub(r"\g<scheme>***@", text) if "@" in text else text


def redacted(options):
    """A copy safe to log or report: values of secret-looking keys replaced, and URLs without their
    user and password, at any depth."""
    if isinstance(options, Mapping):
        return {k: "***" if not isinstance(v, Mapping) and any(w in str(k).lower() for w in SECRET_WORDS)
                else redacted(v) for k, v in options.items()}
    if isinstance(options, (list, tuple)):
        return type(options)(redacted(v) for v in options)
    return redacted_url(options)


class RedactingFilter(logging.Filter):
    """On a handler: every record it emits has the user and password of its URLs replaced."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redacted_text(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redacted_text(logging.Formatter().formatException(record.exc_info))
        return True
