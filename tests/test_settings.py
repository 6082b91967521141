"""The settings object: typed groups from dask.config, and one line per bad value naming its key and source."""

from __future__ import annotations

import dataclasses
import math

import dask.config
import pytest
import yaml

from pipeline import config, settings
from pipeline.errors import PipelineError
from pipeline.settings import KubernetesSettings, LocalSettings, Settings


def load(flags: dict | None = None, environ: dict | None = None, config_file=None) -> Settings:
    config.load(config_file, flags, environ=environ or {}, flag_names={k: "--flag" for k in flags or {}})
    return settings.load()


def refused(match: str, **kw) -> str:
    with pytest.raises(PipelineError, match=match) as e:
        load(**kw)
    message = str(e.value)
    assert "\n" not in message
    return message


def test_the_defaults_as_typed_frozen_groups():
    s = settings.load()
    assert s.cluster.local == LocalSettings(n_workers=2, threads_per_worker=1, start_method="auto",
                                            memory_limit="auto", dashboard_address="auto", processes="auto")
    assert s.blocksize == 16 * 2**20 and s.cluster.connect_timeout == 30
    assert s.classifier.tags == ("python", "r") and s.classifier.test_size == 0.2
    k = s.cluster.kubernetes
    assert (k.adapt, k.idle_timeout, k.start_timeout, k.forward_env[0]) == (
        None, 600, 300, "POSTS_PIPELINE__STORAGE_OPTIONS__ENDPOINT_URL")
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.cluster.local.n_workers = 3


def _fields(cls, prefix="") -> set[str]:
    out = set()
    for f in dataclasses.fields(cls):
        key = prefix + f.name.replace("_", "-")
        kind = settings._hints(cls)[f.name]
        out |= _fields(kind, key + ".") if dataclasses.is_dataclass(kind) else {key}
    return out


def _leaves(tree: dict, prefix="") -> set[str]:
    out = set()
    for k, v in tree.items():
        if isinstance(v, dict) and v and k not in ("worker-resources", "scheduler-resources"):
            out |= _leaves(v, prefix + k + ".")
        else:
            out.add(prefix + k)
    return out


def test_every_key_of_pipeline_yaml_is_a_typed_field():
    """A key added to pipeline.yaml needs its field (and the schema entry test_config checks)."""
    defaults = yaml.safe_load(config.DEFAULTS_FILE.read_text())[config.NAMESPACE]
    assert _fields(Settings) == _leaves(defaults)


@pytest.mark.parametrize("flags, message", [
    ({"cluster.local.n-workers": 0}, r"cluster.local.n-workers must be an integer ≥ 1, not 0 \(from --flag\)"),
    ({"cluster.local.n-workers": -1}, "cluster.local.n-workers must be an integer ≥ 1, not -1"),
    ({"cluster.local.n-workers": "abc"}, "cluster.local.n-workers must be an integer ≥ 1, not 'abc'"),
    ({"cluster.local.n-workers": 2.5}, "cluster.local.n-workers must be an integer ≥ 1, not 2.5"),
    ({"cluster.local.threads-per-worker": 0}, "cluster.local.threads-per-worker must be an integer ≥ 1"),
    ({"blocksize": "abc"}, "blocksize must be a size such as 16MiB, at least 64KiB, not 'abc'"),
    ({"blocksize": 0}, "blocksize must be a size .* at least 64KiB, not 0"),
    ({"blocksize": "1B"}, "blocksize must be a size .* at least 64KiB, not '1B'"),
    ({"blocksize": "63KiB"}, "not '63KiB'"),
    ({"cluster.local.memory-limit": "abc"}, "cluster.local.memory-limit must be 'auto', 0 .* or a size"),
    ({"cluster.local.memory-limit": "1MiB"}, "at least 256MiB, not '1MiB'"),
    ({"classifier.test-size": 0}, r"classifier.test-size must be a number in \(0, 1\), not 0"),
    ({"classifier.test-size": -1}, r"in \(0, 1\), not -1"),
    ({"classifier.test-size": float("nan")}, r"in \(0, 1\), not nan"),
    ({"classifier.test-size": 1}, r"in \(0, 1\), not 1"),
    ({"classifier.test-size": 2.0}, r"in \(0, 1\), not 2.0"),
    ({"classifier.test-size": "0.5"}, r"in \(0, 1\), not '0.5'"),
    ({"classifier.random-state": -1}, "classifier.random-state must be an integer from 0 to 4294967295, not -1"),
    ({"classifier.random-state": 2**32}, "from 0 to 4294967295, not 4294967296"),
    ({"classifier.tags": ["python", "python"]}, r"classifier.tags must be a list of 2 different strings"),
    ({"classifier.tags": ["python"]}, r"a list of 2 different strings, not \['python'\]"),
    ({"classifier.tags": ["a", "b", "c"]}, "a list of 2 different strings"),
    ({"progress": "yes"}, "progress must be one of auto, true, false, not 'yes'"),
    ({"clean.html-parser": "lxml"}, "clean.html-parser must be one of fast, bs4, not 'lxml'"),
    ({"cluster.kind": "cloud"}, "cluster.kind must be one of local, scheduler, kubernetes, not 'cloud'"),
    ({"cluster.kind": "scheduler"}, "cluster.kind is scheduler but no cluster.scheduler-address is set"),
    ({"cluster.connect-timeout": "soon"}, "cluster.connect-timeout must be a duration such as 30s"),
    ({"analytics.top": 0}, "analytics.top must be an integer ≥ 1, not 0"),
    ({"analytics.tag": ""}, "analytics.tag must be a non-empty string, not ''"),
    ({"report.malformed-samples": -1}, "report.malformed-samples must be an integer ≥ 0"),
    ({"overwrite": "no"}, "overwrite must be true or false, not 'no'"),
    ({"cluster.kubernetes.n-workers": -1}, "cluster.kubernetes.n-workers must be an integer ≥ 0"),
    ({"cluster.kubernetes.start-timeout": "0s"}, "cluster.kubernetes.start-timeout must be a duration of at least 1s"),
    ({"cluster.kubernetes.worker-resources.limits.memory": "lots"},
     "cluster.kubernetes.worker-resources.limits.memory must be a Kubernetes quantity such as 500m, 1 or 2Gi"),
    ({"cluster.kubernetes.secret-env": {"TOKEN": "no-key"}}, "cluster.kubernetes.secret-env must be a mapping"),
])
def test_a_bad_value_is_one_line_naming_its_key(flags, message):
    refused(message, flags=flags)


def test_the_worker_cap_follows_the_cores():
    cap = settings.WORKERS_PER_CORE * settings.cores()
    assert load({"cluster.local.n-workers": cap}).cluster.local.n_workers == cap
    refused(rf"cluster.local.n-workers must be an integer from 1 to {cap} "
            rf"\(4 per core, {settings.cores()} cores here\), not {cap + 1}",
            flags={"cluster.local.n-workers": cap + 1})


def test_sources_are_named(tmp_path, monkeypatch):
    mine = tmp_path / "mine.yaml"
    mine.write_text("posts-pipeline:\n  analytics:\n    top: -3\n  cluster:\n    local:\n      n_worker: 3\n")
    message = refused("analytics.top", config_file=mine, environ={"POSTS_PIPELINE__CLASSIFIER__TEST_SIZE": "nan"})
    assert message == (
        f"analytics.top must be an integer ≥ 1, not -3 (from config file {mine}); "
        "classifier.test-size must be a number in (0, 1), not 'nan' (from POSTS_PIPELINE__CLASSIFIER__TEST_SIZE); "
        "cluster.local.n_worker is not a setting "
        "(the settings here are n-workers, threads-per-worker, start-method, memory-limit, dashboard-address, "
        "processes) "
        f"(from config file {mine})"
    )


def test_a_flag_overriding_a_bad_environment_value_wins():
    env = {"POSTS_PIPELINE__CLUSTER__LOCAL__N_WORKERS": "abc"}
    assert load({"cluster.local.n-workers": 3}, environ=env).cluster.local.n_workers == 3
    dask.config.refresh()


def test_dask_s_own_variables_are_named(monkeypatch):
    monkeypatch.setenv("DASK_POSTS_PIPELINE__ANALYTICS__TOP", "many")
    dask.config.refresh()
    with pytest.raises(PipelineError, match=r"analytics.top .* 'many' \(from DASK_POSTS_PIPELINE__ANALYTICS__TOP\)"):
        settings.load()


def test_a_secret_in_a_bad_value_is_not_shown():
    message = refused("input must be", flags={"input": {"url": "http://admin:hunter2@host/Posts.xml"}})
    assert "hunter2" not in message


def test_a_group_given_as_a_mapping_is_checked_the_same_way():
    local = {"n-workers": 0, "threads-per-worker": 1, "start-method": "auto", "memory-limit": "auto",
             "dashboard-address": ":0", "processes": "auto"}
    with pytest.raises(PipelineError, match="cluster.local.n-workers must be an integer ≥ 1, not 0"):
        settings.section(LocalSettings, local)
    with pytest.raises(PipelineError, match="cluster.local.dashboard-address is missing"):
        settings.section(LocalSettings, {k: v for k, v in local.items() if k != "dashboard-address"})
    typed = settings.load().cluster.kubernetes
    assert settings.section(KubernetesSettings, typed) is typed


def test_the_block_count_is_capped():
    s = load({"blocksize": "64KiB"})
    s.check_blocks(settings.MAX_BLOCKS, settings.MAX_BLOCKS * 65536)
    with pytest.raises(PipelineError, match=r"into 20,001 blocks, more than 20,000: give a blocksize of at least 65KiB"
                                            r" \(from --flag\)"):
        s.check_blocks(settings.MAX_BLOCKS + 1, (settings.MAX_BLOCKS + 1) * 65536)


def test_nan_is_not_a_number_anywhere():
    assert not settings.Validator({"type": "number"}).is_valid(math.nan)
    assert settings.Validator({"type": "number"}).is_valid(0.5)
