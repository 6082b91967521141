"""Run: the stages in order, on whichever cluster, into one run directory.

Pass 1 is one task per block (``first_pass``): read, parse, type and clean the block, write its
cleaned questions and its labelled ones (the classifier's data) as Parquet, and return what the
report needs — counts, analytics partials, statistics. Nothing is recomputed, nothing the size
of the input is held in memory, and no task is smaller than a block: a tiny task costs the
scheduler and the workers as much as a large one. Pass 2 trains and scores the classifier
from the labelled Parquet, block by block.
"""

from __future__ import annotations

import io
import logging
import sys
import time
from collections import Counter, defaultdict
from contextlib import contextmanager
from typing import NamedTuple

import dask
import joblib
import pandas as pd
from distributed import Client, get_task_stream, progress

from pipeline import analytics, clean, cluster, config, model, parse, questions, read, report
from pipeline.errors import PipelineError
from pipeline.output import RunDirectory, write_parquet

log = logging.getLogger(__name__)

# Parts of task names → the stage they belong to (first match wins), for the compute seconds per stage
# (``first_pass`` times its own stages).
STAGE_OF_TASK = {
    "features": "classifier: read+hash",
    "targets": "classifier: read labels",
    "fit": "classifier: fit",
    "score_block": "classifier: read+hash+predict",
}


class BlockResult(NamedTuple):
    """What the first pass keeps of a block once its questions are written: a few hundred bytes."""

    stats: questions.BlockStats
    partials: pd.DataFrame
    counts: dict[str, int]  # labelled questions that train and that are held back
    seconds: dict[str, float]  # compute seconds per stage


@contextmanager
def _timed(seconds: dict[str, float], stage: str):
    start = time.perf_counter()
    yield
    seconds[stage] = seconds.get(stage, 0.0) + time.perf_counter() - start


def first_pass(block: read.Block, number: int, questions_dir: str, labelled_dir: str, settings: dict) -> BlockResult:
    """Every first-pass stage on one block; its Parquet files are ``part.<number>.parquet``."""
    seconds: dict[str, float] = {}
    storage_options = settings["storage-options"]
    with _timed(seconds, "read"):
        data = block.read(storage_options)
    with _timed(seconds, "parse+questions"):
        frame, stats = questions.load_block(data, block.path, block.index, settings["samples"])
    with _timed(seconds, "clean"):
        cleaned = clean.clean_partition(frame, settings["html-parser"])
    with _timed(seconds, "write Parquet"):
        write_parquet(clean.for_parquet(cleaned), f"{questions_dir}/{model.part_file(number)}", clean.PARQUET_SCHEMA,
                      storage_options)
    with _timed(seconds, "select labelled"):
        training = model.labelled(cleaned, settings["labels"], settings["test-size"], settings["random-state"])
    with _timed(seconds, "write Parquet"):
        write_parquet(training, f"{labelled_dir}/{model.part_file(number)}", model.LABELLED_SCHEMA, storage_options)
    with _timed(seconds, "analytics"):
        partials = analytics.partials(cleaned, settings["tag"], settings["labels"])
    return BlockResult(stats, partials, model.counts(training), seconds)


def _stage_totals(firsts: list[BlockResult], stream: list[dict]) -> tuple[dict[str, float], dict[str, int]]:
    """Compute seconds and task counts per stage: the first pass's as its tasks timed them, the rest
    from the scheduler's task stream."""
    seconds: dict[str, float] = defaultdict(float)
    tasks: dict[str, int] = defaultdict(int, {"first pass": len(firsts)})
    for block in firsts:
        for stage, value in block.seconds.items():
            seconds[stage] += value
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


def run_on(client: Client, inputs: list[str], files: dict[str, int], out: RunDirectory,
           visualize: str | None = None) -> dict:
    """Run every stage with ``client`` on ``files`` (``inputs`` expanded: path → size) and write the
    results to ``out`` (not yet committed)."""
    storage_options = config.get("storage-options")
    tag, top = config.get("analytics.tag"), config.get("analytics.top")
    labels = tuple(config.get("classifier.tags"))
    if len(labels) != 2 or labels[0] == labels[1]:
        raise PipelineError(f"classifier.tags must name two different tags, not {list(labels)}")
    show_progress = {"auto": sys.stderr.isatty(), True: True, False: False}[config.get("progress")]
    timings: dict[str, float] = {}
    started = time.perf_counter()

    workers = sum(client.nthreads().values())
    blocks = read.blocks(files, config.get("blocksize"), multiple=max(1, workers))
    log.info("reading %d file(s) in %d blocks", len(files), len(blocks))
    settings = {"storage-options": storage_options, "samples": config.get("report.malformed-samples"),
                "html-parser": config.get("clean.html-parser"), "tag": tag, "labels": labels,
                "test-size": config.get("classifier.test-size"), "random-state": config.get("classifier.random-state")}
    if settings["html-parser"] not in clean.PARSERS:
        raise PipelineError(f"clean.html-parser must be one of {', '.join(clean.PARSERS)}, not {settings['html-parser']!r}")
    questions_dir, labelled_dir = out.directory("questions"), out.directory("labelled")
    block_tasks = [dask.delayed(first_pass, pure=True)(b, number, questions_dir, labelled_dir, settings)
                   for number, b in enumerate(blocks)]
    if visualize:
        _visualize(visualize, *block_tasks)

    log.info("pass 1: read, parse, clean, write questions, count tags")
    with get_task_stream(client) as stream1, read.storage_errors(f"{', '.join(inputs)} or {out.url}"):
        firsts: list[BlockResult] = _compute(client, block_tasks, show_progress)
    timings["parse, clean, write, analytics"] = round(time.perf_counter() - started, 3)
    stats = [b.stats for b in firsts]
    parts = pd.concat([b.partials for b in firsts], ignore_index=True)
    block_counts = pd.DataFrame([b.counts for b in firsts], columns=["train", "test"])
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
        labelled_files = [f"{labelled_dir}/{model.part_file(i)}" for i in range(len(block_counts))]
        scores, fitted, test_ids = model.train(labelled_files, block_counts, labels, config.get("classifier.random-state"),
                                               storage_options)
    timings["classifier"] = round(time.perf_counter() - t, 3)
    log.info("accuracy %.4f on %d test questions", scores["accuracy"], scores["test_rows"])

    tag_counts = pd.DataFrame(analytics.ranked(results.pop("tag_counts")), columns=["tag", "count"])
    out.write("tag_counts.csv", tag_counts.to_csv(index=False))
    out.write("model.joblib", _model_bytes(fitted))
    out.write("test_split.csv", pd.DataFrame({"id": test_ids}).to_csv(index=False))
    timings["total"] = round(time.perf_counter() - started, 3)
    seconds, tasks = _stage_totals(firsts, stream1.data + stream2.data)
    result = {
        "status": "complete",
        "inputs": sorted(files),
        "output": out.url,
        "counts": counts,
        "malformed_samples": _malformed_samples(stats, config.get("report.malformed-samples")),
        **results,
        "classifier": scores,
        "settings": {"blocksize": config.get("blocksize"), "html_parser": config.get("clean.html-parser"),
                     "partitions": len(blocks)},
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
    files = read.expand(inputs, storage_options)  # listed once, and a missing input fails before a cluster starts
    out = RunDirectory(output, storage_options, overwrite=config.get("overwrite"), inputs=files)
    try:
        with cluster.connect(
            config.get("cluster.kind"), config.get("cluster.scheduler-address"),
            config.get("cluster.local"), config.get("cluster.connect-timeout"),
        ) as client:
            result = run_on(client, inputs, files, out, visualize=config.get("visualize"))
        out.commit()
    except BaseException:
        out.abort()
        raise
    log.info("results in %s (report.html, report.json)", out.url)
    return result
