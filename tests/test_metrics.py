"""The run's figures for Prometheus: metrics.prom in the run directory says what report.json says, and a run
given a Pushgateway pushes the same figures to it (here a real HTTP server that records what it receives)."""

from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dask.config
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pipeline import cli, config, run
from pipeline.errors import PipelineError
from pipeline.settings import load as load_settings

from support import free_port, site_folders

pytestmark = pytest.mark.cluster

# coffee trains a classifier on these two tags, 3dprinting.meta has too few of them and skips it.
SITES = ("3dprinting.meta.stackexchange", "coffee.stackexchange")
TAGS = {"posts-pipeline.classifier.tags": ["espresso", "flavor"]}


class Pushgateway:
    """An HTTP server that answers like a Pushgateway and records each request: (method, path, body)."""

    def __init__(self, status: int = 200):
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.append((self.command, self.path, body.decode()))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def samples(text: str) -> dict:
    """(metric name, labels) → value of every sample in a text exposition."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


@pytest.fixture(scope="module")
def dumps(tmp_path_factory) -> str:
    return site_folders(tmp_path_factory.mktemp("dumps"), SITES)


@pytest.fixture(scope="module")
def pushed(dumps, shared_scheduler, tmp_path_factory):
    """A run over two sites given a Pushgateway: its run directory and what the Pushgateway received."""
    out = tmp_path_factory.mktemp("metrics") / "run"
    started = time.time()
    with Pushgateway() as gateway, dask.config.set({**shared_scheduler, **TAGS,
                                                   "posts-pipeline.metrics.pushgateway": gateway.url,
                                                   "posts-pipeline.metrics.job": "posts-test"}):
        run.run([f"{dumps}/*/Posts.xml"], str(out))
    return out, gateway.received, started


def test_metrics_prom_holds_the_reports_figures(pushed):
    out, _, started = pushed
    report = json.loads((out / "report.json").read_text())
    got = samples((out / "metrics.prom").read_text())
    assert "metrics.prom" in json.loads((out / "_SUCCESS").read_text())["files"]
    assert set(report["sites"]) == set(SITES)
    for site, figures in report["sites"].items():
        label = (("site", site),)
        assert got[("posts_pipeline_rows", label)] == figures["counts"]["rows"]
        assert got[("posts_pipeline_questions", label)] == figures["counts"]["questions"]
        assert got[("posts_pipeline_malformed_lines", label)] == figures["counts"]["malformed"]
        assert got[("posts_pipeline_duplicate_questions", label)] == figures["counts"]["duplicates"]
        accuracy = figures["classifier"].get("accuracy")
        if accuracy is None:  # skipped: no score, rather than a made-up 0
            assert ("posts_pipeline_classifier_accuracy", label) not in got
        else:
            assert got[("posts_pipeline_classifier_accuracy", label)] == pytest.approx(accuracy)
            assert got[("posts_pipeline_classifier_baseline_accuracy", label)] == pytest.approx(
                figures["classifier"]["baseline"])
    assert [s for s in SITES if ("posts_pipeline_classifier_accuracy", (("site", s),)) in got] == [SITES[1]]
    for stage, seconds in report["timings"].items():
        assert got[("posts_pipeline_stage_seconds", (("stage", stage),))] == pytest.approx(seconds)
    for stage, seconds in report["compute_seconds_by_stage"].items():
        assert got[("posts_pipeline_stage_compute_seconds", (("stage", stage),))] == pytest.approx(seconds)
    for stage, count in report["tasks_by_stage"].items():
        assert got[("posts_pipeline_stage_tasks", (("stage", stage),))] == count
    info = [labels for name, labels in got if name == "posts_pipeline_run_info"]
    assert info and dict(info[0])["output"] == report["output"]
    assert started <= got[("posts_pipeline_last_success_timestamp_seconds", ())] <= time.time()


def test_a_run_pushes_its_figures_to_the_pushgateway_once(pushed):
    out, received, started = pushed
    assert [(method, path) for method, path, _ in received] == [("PUT", "/metrics/job/posts-test")]
    got, written = samples(received[0][2]), samples((out / "metrics.prom").read_text())
    stamp = ("posts_pipeline_last_success_timestamp_seconds", ())
    assert got.pop(stamp) >= written.pop(stamp)  # pushed after the commit
    assert got == written


def test_a_pushgateway_that_refuses_leaves_the_run_complete_with_a_warning(dumps, shared_scheduler, tmp_path,
                                                                             caplog):
    out = tmp_path / "run"
    with Pushgateway(status=500) as gateway, dask.config.set({**shared_scheduler, **TAGS,
                                                              "posts-pipeline.metrics.pushgateway": gateway.url}):
        with caplog.at_level(logging.WARNING, logger="pipeline.metrics"):
            run.run([f"{dumps}/{SITES[1]}/Posts.xml"], str(out))
    assert (out / "_SUCCESS").exists() and (out / "metrics.prom").exists()
    assert len(gateway.received) == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(f"could not push the run's metrics to the Pushgateway at {gateway.url}" in w and "500" in w
               for w in warnings), warnings


def test_an_unreachable_pushgateway_is_a_warning_too(dumps, shared_scheduler, tmp_path, caplog):
    out = tmp_path / "run"
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with dask.config.set({**shared_scheduler, **TAGS, "posts-pipeline.metrics.pushgateway": url}):
        with caplog.at_level(logging.WARNING, logger="pipeline.metrics"):
            run.run([f"{dumps}/{SITES[1]}/Posts.xml"], str(out))
    assert (out / "_SUCCESS").exists()
    assert any(f"Pushgateway at {url}" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("url", ["pushgateway:9091", "ftp://pushgateway:9091", "http://user:secret@pushgateway:9091"])
def test_a_pushgateway_that_is_not_an_http_url_is_refused_before_the_run(url):
    with dask.config.set({"posts-pipeline.metrics.pushgateway": url}):
        with pytest.raises(PipelineError, match="^metrics.pushgateway must be an http:// or https:// URL") as refused:
            load_settings()
    assert "secret" not in str(refused.value)


def test_the_pushgateway_flag_sets_the_setting():
    args = cli.parser().parse_args(["run", "--pushgateway", "http://pushgateway:9091"])
    config.load(flags={key: getattr(args, dest) for dest, key in cli.RUN_SETTINGS.items()}, environ={})
    assert load_settings().metrics.pushgateway == "http://pushgateway:9091"


def test_the_scheduler_serves_prometheus_metrics_on_its_dashboard_port():
    """What Kubernetes' scheduler Service exposes (port http-dashboard): real metrics, not Dask's placeholder
    for a missing prometheus_client."""
    import urllib.request

    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address="127.0.0.1:0") as local:
        with Client(local):
            port = local.scheduler.http_server.port
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
            got = samples(text)
            assert got[("dask_scheduler_clients", ())] >= 1
            assert sum(v for (name, _), v in got.items() if name == "dask_scheduler_workers") == 1
