"""Metrics: a run's figures in Prometheus' text format, written as ``metrics.prom`` and pushed on request.

A run is a batch job: it is over before Prometheus would scrape it, so its figures are written into the
run directory (``metrics.prom``, for node_exporter's textfile collector or any reader of the format) and,
when ``metrics.pushgateway`` is set, pushed to a Pushgateway once the run's results are committed — the
way Prometheus takes the results of batch jobs. The Dask scheduler's own metrics (tasks, workers, memory)
are scraped from its dashboard port (``/metrics``) while it runs.
"""

from __future__ import annotations

import logging
from http.client import HTTPException
from importlib import metadata

from prometheus_client import CollectorRegistry, Gauge, Info, generate_latest, push_to_gateway

from pipeline.report import Report, shown_url
from pipeline.settings import MetricsSettings

log = logging.getLogger(__name__)

PREFIX = "posts_pipeline"
PUSH_TIMEOUT = 10  # seconds; a Pushgateway that does not answer must not hold up a finished run


def registry(result: Report) -> CollectorRegistry:
    """The run's figures: counts and classifier scores per site, seconds per stage, when it finished."""
    reg = CollectorRegistry()

    def gauge(name: str, documentation: str, *labels: str) -> Gauge:
        return Gauge(f"{PREFIX}_{name}", documentation, labelnames=labels, registry=reg)

    Info(f"{PREFIX}_run", "The run: its output and the posts-pipeline version", registry=reg).info(
        {"output": shown_url(result.output), "version": metadata.version("posts-pipeline")})
    per_site = {
        "rows": gauge("rows", "Row lines read (posts of every type)", "site"),
        "questions": gauge("questions", "Questions kept (duplicates left out)", "site"),
        "malformed": gauge("malformed_lines", "Lines that are not a well-formed row", "site"),
        "duplicates": gauge("duplicate_questions", "Questions left out because an earlier one had their Id", "site"),
    }
    accuracy = gauge("classifier_accuracy", "Share of held-back questions the classifier labels right", "site")
    baseline = gauge("classifier_baseline_accuracy", "Share of held-back questions in the larger class", "site")
    for site in result.sites.values():
        for name, metric in per_site.items():
            metric.labels(site.name).set(site.counts[name])
        if site.classifier.accuracy is not None:  # skipped, or nothing held back: no score to give
            accuracy.labels(site.name).set(site.classifier.accuracy)
            baseline.labels(site.name).set(site.classifier.scores["baseline"])
    wall = gauge("stage_seconds", "Wall-clock seconds of each part of the run (report.json's timings)", "stage")
    for stage, seconds in result.timings.items():
        wall.labels(stage).set(seconds)
    compute = gauge("stage_compute_seconds", "Seconds the workers computed in each stage, summed over its tasks",
                    "stage")
    for stage, seconds in result.compute_seconds_by_stage.items():
        compute.labels(stage).set(seconds)
    tasks = gauge("stage_tasks", "Tasks of each stage", "stage")
    for stage, count in result.tasks_by_stage.items():
        tasks.labels(stage).set(count)
    gauge("last_success_timestamp_seconds", "When the run's results were complete (Unix time)").set_to_current_time()
    return reg


def exposition(result: Report) -> bytes:
    """``metrics.prom``: the figures in the Prometheus text exposition format."""
    return generate_latest(registry(result))


def push(result: Report, settings: MetricsSettings) -> None:
    """Push the figures to ``settings.pushgateway`` (grouped by ``settings.job``, replacing the previous run's).

    The results are already committed: a Pushgateway that is down or refuses is a warning, not a failed run.
    """
    if not settings.pushgateway:
        return
    try:
        push_to_gateway(settings.pushgateway, job=settings.job, registry=registry(result), timeout=PUSH_TIMEOUT)
    except (OSError, HTTPException, ValueError) as e:  # URLError and HTTPError are OSErrors
        log.warning("could not push the run's metrics to the Pushgateway at %s: %s (they are in metrics.prom)",
                    settings.pushgateway, e)
        return
    log.info("metrics pushed to the Pushgateway at %s (job %s)", settings.pushgateway, settings.job)
