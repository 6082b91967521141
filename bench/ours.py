"""This project's pipeline, as a user runs it: ``pipeline.run`` on an embedded LocalCluster."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections import Counter

import dask.config
import pyarrow.parquet as pq

from bench.measure import Result, main
from pipeline import cluster
from pipeline import config as pipeline_config
from pipeline import run as pipeline_run
from pipeline.settings import LocalSettings, section


def run(path: str, tag: str = "python", labels: tuple[str, str] = ("python", "r"), workers: int = 2,
        scheduler: str | None = None) -> Result:
    """The job with the default configuration on a new LocalCluster, or on ``scheduler``."""
    settings = ({"posts-pipeline.cluster.kind": "scheduler", "posts-pipeline.cluster.scheduler-address": scheduler}
                if scheduler else {})
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "run")
        config = {"posts-pipeline.progress": False, "posts-pipeline.analytics.tag": tag,
                  "posts-pipeline.classifier.tags": list(labels),
                  "posts-pipeline.cluster.local.n-workers": workers, **settings}
        with dask.config.set(config):
            # The fork server local workers start from imports what their tasks need: like the other
            # methods' imports, before the clock starts (the CLI does it beside its own imports). Not for
            # an input small enough for worker threads (``cluster.in_process``).
            local = section(LocalSettings, pipeline_config.get("cluster.local"))
            if not scheduler and not cluster.in_process(local, cluster.local_files([path])):
                cluster.prepare_local(local, wait=True)
        start = time.perf_counter()
        with dask.config.set(config):
            report = pipeline_run.run([path], out)
        total = time.perf_counter() - start
        # Every co-occurrence count (the report keeps the top N), from the Parquet the run wrote:
        # for the agreement check, outside the timed part (``wall``).
        tags = pq.read_table(os.path.join(out, "questions"), columns=["tags"]).column("tags").to_pylist()
    cooccurrence = Counter(t for row in tags if tag in row for t in row if t != tag)
    (site,) = report.sites.values()
    stages = {"cluster start + other": 0.0, **report.timings}
    del stages["total"]
    stages["cluster start + other"] = total - sum(stages.values())
    return Result(stages=stages, wall=total, questions=report.counts["questions"], cooccurrence=dict(cooccurrence),
                  accuracy=site.classifier.accuracy, report_top=site.analytics["cooccurrence"]["top"],
                  rows=report.counts["rows"], labelled=site.analytics["labelled_questions"],
                  compute_seconds_by_stage=report.compute_seconds_by_stage)


if __name__ == "__main__":
    sys.exit(main(run))
