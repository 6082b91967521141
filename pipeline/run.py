"""Run: the stages in order, on whichever cluster, into one run directory.

Pass 1 reads, parses, types and cleans every block once, and in the same graph writes the
cleaned questions and the labelled ones (the classifier's data) as Parquet and sums the
analytics — nothing is recomputed and nothing the size of the input is held in memory. Pass 2
trains and scores the classifier from the labelled Parquet, block by block.
"""

from __future__ import annotations

import io
import logging
import sys
import time
from collections import Counter, defaultdict

import dask
import joblib
import pandas as pd
from distributed import Client, get_task_stream, progress

from pipeline import analytics, clean, cluster, config, model, parse, questions, read, report
from pipeline.errors import PipelineError
from pipeline.output import RunDirectory

log = logging.getLogger(__name__)

# Parts of task names → the stage they belong to (first match wins), for the compute seconds per stage.
STAGE_OF_TASK = {
    "read-block": "read",
    "load_block": "parse+questions",
    "clean_partition": "clean",
    "partials": "analytics",
    "labelled": "select labelled",
    "parquet": "write Parquet",
    "features": "classifier: read+hash",
    "targets": "classifier: read labels",
    "fit": "classifier: fit",
    "score_block": "classifier: read+hash+predict",
}


def _stage_totals(stream: list[dict]) -> tuple[dict[str, float], dict[str, int]]:
    """Compute seconds and task counts per stage, from the scheduler's task stream."""
    seconds: dict[str, float] = defaultdict(float)
    tasks: dict[str, int] = defaultdict(int)
    for task in stream:
        name = str(task["key"][0] if isinstance(task["key"], tuple) else task["key"])
        stage = next((s for part, s in STAGE_OF_TASK.items() if part in name), None)
        if stage:
            tasks[stage] += 1
            seconds[stage] += sum(p["stop"] - p["start"] for p in task["startstops"] if p["action"] == "compute")
    return {s: round(v, 3) for s, v in sorted(seconds.items())}, dict(sorted(tasks.items()))


def _malformed_samples(stats: list[questions.BlockStats], limit: int) -> list[dict]:
    """Samples with their true line numbers: lines of earlier blocks of the same file added."""
    offset: dict[tuple[str, int], int] = {}
    for path in {s.path for s in stats}:
        total = 0
        for s in sorted((s for s in stats if s.path == path), key=lambda s: s.index):
            offset[(path, s.index)] = total
            total += s.lines
    samples = [
        {"file": s.path, "line": offset[(s.path, s.index)] + m.line, "reason": m.reason, "text": m.text}
        for s in stats
        for m in s.samples
    ]
    return sorted(samples, key=lambda m: (m["file"], m["line"]))[:limit]


def _compute(client: Client, collections: list, show_progress: bool) -> list:
    futures = client.compute(collections)
    if show_progress:
        progress(futures)
        print(file=sys.stderr)
    return client.gather(futures)


def _model_bytes(fitted: dict) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(fitted, buffer)
    return buffer.getvalue()


def run_on(client: Client, inputs: list[str], out: RunDirectory, visualize: str | None = None) -> dict:
    """Run every stage with ``client`` and write the results to ``out`` (not yet committed)."""
    storage_options = config.get("storage-options")
    tag, top = config.get("analytics.tag"), config.get("analytics.top")
    labels = tuple(config.get("classifier.tags"))
    if len(labels) != 2 or labels[0] == labels[1]:
        raise PipelineError(f"classifier.tags must name two different tags, not {list(labels)}")
    show_progress = {"auto": sys.stderr.isatty(), True: True, False: False}[config.get("progress")]
    timings: dict[str, float] = {}
    started = time.perf_counter()

    workers = sum(client.nthreads().values())
    blocks = read.blocks(inputs, config.get("blocksize"), storage_options, multiple=max(1, workers))
    log.info("reading %d file(s) in %d blocks", len({b.path for b in blocks}), len(blocks))
    frame, stats = questions.load(blocks, samples=config.get("report.malformed-samples"))
    cleaned = clean.clean(frame, config.get("clean.html-parser"))
    written = cleaned.map_partitions(clean.for_parquet, meta=clean.PARQUET_META).to_parquet(
        out.path("questions"), compute=False, write_index=False, storage_options=storage_options,
        schema=clean.PARQUET_SCHEMA,
    )
    parts = cleaned.map_partitions(analytics.partials, tag, labels, meta=analytics.PARTIALS_META)
    training = cleaned.map_partitions(
        model.labelled, labels, config.get("classifier.test-size"), config.get("classifier.random-state"),
        meta=model.LABELLED_META,
    )
    training_written = training.to_parquet(
        out.path("labelled"), compute=False, write_index=False, storage_options=storage_options,
        name_function=model.part_file, schema=model.LABELLED_SCHEMA,
    )
    block_counts = training.map_partitions(model.counts, meta=model.COUNTS_META)
    if visualize:  # dask cannot draw the Parquet write; everything before it is drawn
        _visualize(visualize, parts, stats)

    log.info("pass 1: read, parse, clean, write questions, count tags")
    with get_task_stream(client) as stream1, read.storage_errors(f"{', '.join(inputs)} or {out.url}"):
        _, _, parts, stats, block_counts = _compute(
            client, [written, training_written, parts, stats, block_counts], show_progress)
    stats = questions.BlockStats.from_frame(stats)
    timings["parse, clean, write, analytics"] = round(time.perf_counter() - started, 3)
    results = analytics.combine(parts, tag, top)
    post_types = sum((s.post_types for s in stats), Counter())
    counts = {
        "lines": sum(s.lines for s in stats),
        "rows": sum(post_types.values()),
        "questions": post_types.get(parse.QUESTION, 0),
        "malformed": sum(s.malformed for s in stats),
        "by_post_type": {k: post_types[k] for k in sorted(post_types, key=int)},
    }
    log.info("%d rows, %d questions, %d malformed lines", counts["rows"], counts["questions"], counts["malformed"])

    log.info("pass 2: classifier %s vs %s on %d questions", *labels, results["labelled_questions"])
    if not block_counts["train"].sum():
        raise PipelineError(f"no question is tagged with exactly one of {labels[0]} and {labels[1]}: nothing to train on")
    t = time.perf_counter()
    with get_task_stream(client) as stream2:
        files = [f"{out.path('labelled')}/{model.part_file(i)}" for i in range(len(block_counts))]
        scores, fitted, test_ids = model.train(files, block_counts, labels, config.get("classifier.random-state"),
                                               storage_options)
    timings["classifier"] = round(time.perf_counter() - t, 3)
    log.info("accuracy %.4f on %d test questions", scores["accuracy"], scores["test_rows"])

    tag_counts = pd.DataFrame(analytics.ranked(results.pop("tag_counts")), columns=["tag", "count"])
    out.write("tag_counts.csv", tag_counts.to_csv(index=False))
    out.write("model.joblib", _model_bytes(fitted))
    out.write("test_split.csv", pd.DataFrame({"id": test_ids}).to_csv(index=False))
    timings["total"] = round(time.perf_counter() - started, 3)
    seconds, tasks = _stage_totals(stream1.data + stream2.data)
    result = {
        "status": "complete",
        "inputs": sorted({b.path for b in blocks}),
        "output": out.url,
        "counts": counts,
        "malformed_samples": _malformed_samples(stats, config.get("report.malformed-samples")),
        **results,
        "classifier": scores,
        "settings": {"blocksize": config.get("blocksize"), "html_parser": config.get("clean.html-parser"),
                     "partitions": frame.npartitions},
        "timings": timings,
        "compute_seconds_by_stage": seconds,
        "tasks_by_stage": tasks,
        "versions": report.versions(),
    }
    out.write("report.html", report.to_html(result))
    out.write("report.json", report.to_json(result))
    return result


def _visualize(filename: str, *collections) -> None:
    try:
        dask.visualize(*collections, filename=filename, optimize_graph=True)
    except (ImportError, RuntimeError) as e:
        raise PipelineError(f"--visualize needs graphviz (pip install graphviz; apt-get install graphviz): {e}") from None
    log.info("task graph written to %s", filename)


def run(inputs: list[str] | str | None = None, output: str | None = None) -> dict:
    """The whole job with the current configuration; usable from a notebook as from the CLI."""
    inputs = inputs or config.get("input")
    output = output or config.get("output")
    if not inputs or not output:
        raise PipelineError("an input (--input PATH_OR_URL) and an output (--output DIR_OR_URL) are needed")
    inputs = [inputs] if isinstance(inputs, str) else list(inputs)
    storage_options = config.get("storage-options")
    log.info("input %s → output %s (storage options %s)", ", ".join(inputs), output, config.redacted(storage_options))
    read.expand(inputs, storage_options)  # fail on a missing input before starting a cluster
    out = RunDirectory(output, storage_options, overwrite=config.get("overwrite"))
    try:
        with cluster.connect(
            config.get("cluster.kind"), config.get("cluster.scheduler-address"),
            config.get("cluster.local"), config.get("cluster.connect-timeout"),
        ) as client:
            result = run_on(client, inputs, out, visualize=config.get("visualize"))
        out.commit()
    except BaseException:
        out.abort()
        raise
    log.info("results in %s (report.html, report.json)", out.url)
    return result
