"""Configuration, the dask.config way.

Precedence, lowest first: ``pipeline.yaml`` shipped here, YAML files dask already reads
(``~/.config/dask/``), a ``--config`` file, ``POSTS_PIPELINE__*`` (or ``DASK_POSTS_PIPELINE__*``)
environment variables, then command-line flags. Every stage reads its settings with
``config.get("<key>")`` and nothing else, so a setting is changed in one place.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

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
) -> None:
    """Apply a config file, the environment and flags (each overriding the one before) to dask.config.

    ``flags`` maps dotted keys (``"cluster.local.n-workers"``) to values; ``None`` means "not given".
    """
    if config_file:
        dask.config.update(dask.config.config, read_file(config_file))
    dask.config.update(dask.config.config, from_environment(environ))
    given = {f"{NAMESPACE}.{key}": value for key, value in (flags or {}).items() if value is not None}
    if given:
        dask.config.set(given)


SECRET_WORDS = ("key", "secret", "token", "password", "credential")


def redacted(options: Mapping) -> dict:
    """A copy safe to log or report: values of secret-looking keys replaced, at any depth."""
    return {
        k: redacted(v) if isinstance(v, Mapping)
        else "***" if k != "endpoint_url" and any(w in str(k).lower() for w in SECRET_WORDS)
        else v
        for k, v in options.items()
    }
