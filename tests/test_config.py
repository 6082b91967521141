"""Configuration: defaults < file < environment < flags, and a schema that documents every key."""

from __future__ import annotations

import jsonschema
import pytest
import yaml

from pipeline import config
from pipeline.errors import PipelineError


def keys(tree: dict, prefix: str = "") -> set[str]:
    out = set()
    for k, v in tree.items():
        out.add(prefix + k)
        if isinstance(v, dict) and v:
            out |= keys(v, prefix + k + ".")
    return out


def schema_keys(schema: dict, prefix: str = "") -> set[str]:
    out = set()
    for k, v in schema.get("properties", {}).items():
        out.add(prefix + k)
        out |= schema_keys(v, prefix + k + ".")
    return out


def test_every_default_is_documented_and_valid():
    defaults = yaml.safe_load(config.DEFAULTS_FILE.read_text())
    schema = yaml.safe_load(config.SCHEMA_FILE.read_text())
    assert keys(defaults) == schema_keys(schema)
    jsonschema.validate(defaults, schema)
    for key, entry in [(k, k) for k in schema_keys(schema)]:
        node = schema
        for part in key.split("."):
            node = node["properties"][part]
        assert "description" in node or "properties" in node, f"{key} has no description"


def test_precedence_defaults_file_environment_flags(tmp_path):
    assert config.get("cluster.local.n-workers") == 2
    user = tmp_path / "mine.yaml"
    user.write_text("posts-pipeline:\n  analytics:\n    tag: r\n    top: 5\n"
                    "  cluster:\n    local:\n      n-workers: 3\n")
    env = {"POSTS_PIPELINE__CLUSTER__LOCAL__N_WORKERS": "4", "POSTS_PIPELINE__ANALYTICS__TOP": "7", "UNRELATED": "x"}
    config.load(user, flags={"cluster.local.n-workers": 5, "analytics.tag": None}, environ=env)
    assert config.get("analytics.tag") == "r"  # file (flag not given)
    assert config.get("analytics.top") == 7  # environment over file, parsed as a number
    assert config.get("cluster.local.n-workers") == 5  # flag over everything
    shipped = yaml.safe_load(config.DEFAULTS_FILE.read_text())["posts-pipeline"]
    assert config.get("blocksize") == shipped["blocksize"]  # untouched default


def test_environment_reaches_nested_mappings():
    config.load(environ={"POSTS_PIPELINE__STORAGE_OPTIONS__ENDPOINT_URL": "http://localhost:9000"})
    assert config.get("storage-options") == {"endpoint_url": "http://localhost:9000"}


@pytest.mark.parametrize("text, message", [
    ("posts-pipeline: [unclosed", "not valid YAML"),
    ("other-tool:\n  x: 1\n", "one top-level key"),
])
def test_bad_config_file_is_a_clear_error(tmp_path, text, message):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(PipelineError, match=message):
        config.load(bad)


def test_missing_config_file():
    with pytest.raises(PipelineError, match="config file not found: /nowhere.yaml"):
        config.load("/nowhere.yaml")


def test_redacted_hides_secrets_and_passwords_in_urls():
    shown = config.redacted({"key": "AKIA", "secret": "s3cr3t", "token": "t", "endpoint_url": "http://x:9000",
                             "client_kwargs": {"aws_secret_access_key": "deep"},
                             "input": ["s3://b/k", "http://admin:pw123@host:9000/Posts.xml"]})
    assert shown["endpoint_url"] == "http://x:9000"  # the endpoint itself stays readable
    assert shown["input"] == ["s3://b/k", "http://***@host:9000/Posts.xml"]
    assert not any(s in str(shown) for s in ("AKIA", "s3cr3t", "deep", "pw123"))


@pytest.mark.parametrize("url, shown", [
    ("http://admin:secret@host:9000", "http://***@host:9000"),
    ("https://user@host/path?q=1", "https://***@host/path?q=1"),
    ("s3://KEY:SECRET@bucket/key", "s3://***@bucket/key"),
    ("s3://bucket/key", "s3://bucket/key"),
    ("http://host/a@b", "http://host/a@b"),  # an @ in the path is not userinfo
    ("me@example.com", "me@example.com"),
    (None, None),
])
def test_redacted_url(url, shown):
    assert config.redacted_url(url) == shown


def test_redacted_text_finds_every_url():
    assert config.redacted_text("from http://a:b@h:1/x to s3://k:s@bucket/p, mail me@x.org") == \
        "from http://***@h:1/x to s3://***@bucket/p, mail me@x.org"
