"""Run: the stages in order, on whichever cluster, into one run directory.

plan → first pass → combine → classifier → write. The first pass is one task per block
(``first_pass``): read, parse, type and clean the block, write its cleaned questions and its
labelled ones (the classifier's data) as Parquet, and return what the report needs — counts,
analytics partials, statistics. Nothing is recomputed, nothing the size of the input is held in
memory, and no task is smaller than a block: a tiny task costs the scheduler and the workers as
much as a large one. Each input file belongs to a site (``sites``); questions whose id came earlier
in their site are found on a worker and their blocks passed again without them (``duplicates``).
The partials are combined per site, and each site's classifier trains and scores from its own
labelled Parquet, block by block, or declines with the reason when its labelled questions cannot
give a meaningful score. Each block's task records the block as done in the staging (``resume``), so
that ``--resume`` passes only the blocks an interrupted run had not finished.
"""

from __future__ import annotations

import io
import logging
import sys
import time
from collections import Counter, defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import NamedTuple

import dask
import numpy as np
import pandas as pd
import pyarrow as pa
from distributed import Client, get_task_stream, progress

from pipeline import (
    analytics,
    clean,
    cluster,
    config,
    duplicates,
    metrics,
    model,
    parse,
    questions,
    read,
    report,
    resume,
    sites,
)
from pipeline.errors import PipelineError
from pipeline.output import PLAN, RunDirectory, driver_log, part_file, write_parquet
from pipeline.settings import MalformedSettings, Settings
from pipeline.settings import load as load_settings
from pipeline.storage import storage_errors

log = logging.getLogger(__name__)

# Parts of task names → the stage they belong to (first match wins), for the compute seconds per stage
# (``first_pass`` times its own stages).
STAGE_OF_TASK = {
    "features": "classifier: read+hash",
    "targets": "classifier: read labels",
    "fit": "classifier: fit",
    "score_block": "classifier: read+hash+predict",
}
# The cleaned questions as written: each row carries its site, so that ids of several sites never collide.
QUESTIONS_SCHEMA = clean.PARQUET_SCHEMA.insert(0, pa.field("site", pa.string()))


@dataclass(frozen=True)
class PassSettings:
    """What the first pass's tasks need to know, taken from the run's settings (checked before anything starts)."""

    storage_options: dict
    samples: int
    html_parser: str
    tag: str
    labels: tuple[str, str]
    classify: bool  # write the labelled questions (not with --no-classifier)
    test_size: float
    random_state: int

    @classmethod
    def of(cls, settings: Settings) -> PassSettings:
        c = settings.classifier
        return cls(settings.storage_options, settings.report.malformed_samples, settings.clean.html_parser,
                   settings.analytics.tag, c.tags, c.enabled, c.test_size, c.random_state)


@dataclass(frozen=True)
class Plan:
    """The blocks to read, the site of each, and where the first pass writes."""

    inputs: list[str]
    files: dict[str, int]
    blocks: list[read.Block]
    sites: dict[str, list[int]]  # site → the numbers of its blocks
    questions_dir: str
    labelled_dir: str
    settings: PassSettings
    progress: str  # where each block is recorded as done (``resume``)
    done: frozenset[int] = frozenset()  # blocks an interrupted run finished, reused
    again: dict[int, list[int]] = field(default_factory=dict)  # blocks it passed again → the positions left out

    def site_of(self, number: int) -> str:
        return sites.site_of(self.blocks[number].path)


class BlockResult(NamedTuple):
    """What the first pass keeps of a block once its questions are written: a few hundred bytes."""

    stats: questions.BlockStats
    partials: pd.DataFrame
    counts: dict[str, int]  # labelled questions that train and that are held back (``model.counts``)
    seconds: dict[str, float]  # compute seconds per stage


class Combined(NamedTuple):
    """A site's first-pass results added up."""

    counts: dict
    malformed_samples: list[dict]
    analytics: dict
    tag_counts: list[list]
    block_counts: pd.DataFrame  # model.counts of each of the site's blocks
    warnings: list[str]


@contextmanager
def _timed(seconds: dict[str, float], stage: str):
    start = time.perf_counter()
    yield
    seconds[stage] = seconds.get(stage, 0.0) + time.perf_counter() - start


def plan(client: Client, run_settings: Settings, inputs: list[str], files: dict[str, int],
         out: RunDirectory) -> Plan:
    """Cut the files into blocks (a multiple of the cluster's threads) and group them by site — or take the
    blocks of the interrupted run being resumed, and what it finished, if nothing they depend on changed."""
    settings = PassSettings.of(run_settings)
    progress = out.progress
    done, again = frozenset(), {}
    if out.recorded_plan:  # checked by check_resumable
        blocks = resume.recorded_blocks(out.recorded_plan)
        first, again = resume.done(out.fs, out.fs._strip_protocol(progress))
        done = frozenset(first)
        log.info("resuming the interrupted run: %d of %d blocks done, reused", len(done), len(blocks))
    else:
        blocks = read.blocks(files, run_settings.blocksize, multiple=max(1, sum(client.nthreads().values())),
                             storage_options=settings.storage_options, unpack_dir=run_settings.unpack_dir)
        for name in (resume.FIRST, resume.AGAIN):
            out.progress_directory(name)
        resume.write_whole(f"{progress}/{PLAN}", resume.plan_record(blocks, _fingerprint(files, run_settings)),
                           settings.storage_options)
    by_site: dict[str, list[int]] = defaultdict(list)
    for number, block in enumerate(blocks):
        by_site[sites.site_of(block.path)].append(number)
    log.info("reading %d file(s) of %d site(s) in %d blocks", len(files), len(by_site), len(blocks))
    labelled_dir = out.directory("labelled") if settings.classify else ""
    return Plan(inputs, files, blocks, dict(sorted(by_site.items())), out.directory("questions"), labelled_dir,
                settings, progress, done, again)


def first_pass(block: read.Block, number: int, site: str, questions_dir: str, labelled_dir: str,
               settings: PassSettings, drop: np.ndarray | None = None) -> tuple[BlockResult, np.ndarray]:
    """Every first-pass stage on one block, leaving out the questions at positions ``drop`` (duplicates);
    its Parquet files are ``part.<number>.parquet``. Also the ids of its questions, for ``duplicates``."""
    seconds: dict[str, float] = {}
    options = settings.storage_options
    with _timed(seconds, "read"):
        data = block.read(options)
    with _timed(seconds, "parse+questions"):
        frame, stats = questions.load_block(data, block.path, block.index, settings.samples)
        if drop is not None:
            frame = frame.drop(frame.index[drop]).reset_index(drop=True)
    with _timed(seconds, "clean"):
        cleaned = clean.clean_partition(frame, settings.html_parser)
    with _timed(seconds, "write Parquet"):
        written = clean.for_parquet(cleaned).assign(site=site)
        write_parquet(written, f"{questions_dir}/{part_file(number)}", QUESTIONS_SCHEMA, options)
    counts = dict.fromkeys(model.COUNTS, 0)
    if settings.classify:
        model.import_in_background()
        with _timed(seconds, "select labelled"):
            training = model.labelled(cleaned, settings.labels, settings.test_size, settings.random_state, site)
        with _timed(seconds, "write Parquet"):
            write_parquet(training, f"{labelled_dir}/{part_file(number)}", model.LABELLED_SCHEMA, options,
                          model.ROW_GROUP)
        counts = model.counts(training)
    with _timed(seconds, "analytics"):
        partials = analytics.partials(cleaned, settings.tag, settings.labels)
    return BlockResult(stats, partials, counts, seconds), cleaned["id"].to_numpy("int64", na_value=-1)


def recorded_first_pass(progress: str, block: read.Block, number: int, site: str, questions_dir: str,
                        labelled_dir: str, settings: PassSettings,
                        drop: np.ndarray | None = None) -> tuple[BlockResult, np.ndarray]:
    """``first_pass``, then the block recorded as done, for a run that resumes this one."""
    result, ids = first_pass(block, number, site, questions_dir, labelled_dir, settings, drop)
    resume.record(progress, number, *result, ids if drop is None else None, drop, settings.storage_options)
    return result, ids


def reused_block(progress: str, number: int, again: bool, storage_options: dict) -> tuple[BlockResult, np.ndarray]:
    """What ``recorded_first_pass`` recorded of a block an interrupted run finished."""
    fields, ids = resume.load(progress, number, again, storage_options)
    return BlockResult(*fields), ids


def _fingerprint(files: dict[str, int], run_settings: Settings) -> dict:
    settings = PassSettings.of(run_settings)
    return resume.fingerprint(files, settings.storage_options, resume.pass_settings(
        run_settings.blocksize, settings.html_parser, settings.tag, settings.labels, settings.classify,
        settings.test_size, settings.random_state, settings.samples))


def check_resumable(out: RunDirectory, files: dict[str, int], settings: Settings) -> None:
    """Refuse to resume an interrupted run whose inputs or settings have changed since (before a cluster
    starts); say when there is nothing to resume."""
    if not out.recorded_plan:
        if settings.resume:
            log.info("nothing to resume at %s: a new run", config.redacted_url(out.url))
        return
    changed = resume.difference(out.recorded_plan.get("fingerprint", {}), _fingerprint(files, settings))
    if changed:
        afresh = "without --resume" if out.local else "with --overwrite instead of --resume"
        raise PipelineError(f"cannot resume the run at {config.redacted_url(out.url)}: {changed} since it started; "
                            f"run {afresh} to start afresh")


class FirstPass(NamedTuple):
    """The first pass's results in block order, the duplicates it left out, and the scheduler's record of it."""

    blocks: list[BlockResult]
    dropped: dict[int, tuple[np.ndarray, np.ndarray]]  # block number → positions and ids of its duplicates
    stream: list[dict]


def run_first_pass(client: Client, plan: Plan, out: RunDirectory, visualize: str | None,
                   show_progress: bool) -> FirstPass:
    """One task per block and one per site that finds repeated ids among the blocks' (on a worker, so only
    the duplicates come back); then the blocks that had any once more without them."""
    def task(number: int, drop: np.ndarray | None = None):
        recorded = number in plan.done if drop is None else plan.again.get(number) == drop.tolist()
        if recorded:
            return dask.delayed(reused_block, pure=True, nout=2)(plan.progress, number, drop is not None,
                                                                 plan.settings.storage_options)
        return dask.delayed(recorded_first_pass, pure=True, nout=2)(
            plan.progress, plan.blocks[number], number, plan.site_of(number), plan.questions_dir,
            plan.labelled_dir, plan.settings, drop)

    tasks = [task(number) for number in range(len(plan.blocks))]
    finds = [dask.delayed(duplicates.find, pure=True)({n: tasks[n][1] for n in numbers})
             for numbers in plan.sites.values()]
    if visualize:
        _visualize(visualize, *(t[0] for t in tasks))
    log.info("pass 1: read, parse, clean, write questions, count tags")
    with get_task_stream(client) as stream, storage_errors(f"{', '.join(plan.inputs)} or {out.url}"):
        *firsts, dropped = _compute(client, [*(t[0] for t in tasks), dask.delayed(_merged)(finds)], show_progress)
        if dropped:
            log.info("passing %d block(s) again without the questions whose id came earlier", len(dropped))
            again = _compute(client, [task(n, positions)[0] for n, (positions, _) in dropped.items()], False)
            firsts = [dict(zip(dropped, again)).get(n, first) for n, first in enumerate(firsts)]
    return FirstPass(firsts, dropped, stream.data)


def _merged(dicts: list[dict]) -> dict:
    return {key: value for d in dicts for key, value in d.items()}


def combine(name: str, firsts: list[BlockResult], dropped: list[np.ndarray], settings: Settings) -> Combined:
    """One site's blocks added up: counts, malformed samples, analytics and the classifier's counts
    (``dropped``: the ids of its duplicates, left out)."""
    stats = [b.stats for b in firsts]
    results = analytics.combine(pd.concat([b.partials for b in firsts], ignore_index=True), settings.analytics.tag,
                                settings.analytics.top)
    post_types = sum((s.post_types for s in stats), Counter())
    counts = {
        "lines": sum(s.lines for s in stats),
        "rows": sum(post_types.values()),
        "questions": post_types.get(parse.QUESTION, 0) - sum(map(len, dropped)),
        "duplicates": sum(map(len, dropped)),
        "malformed": sum(s.malformed for s in stats),
        "by_post_type": {k: post_types[k] for k in sorted(post_types, key=int)},
    }
    log.info("%s: %d rows, %d questions, %d malformed lines", name, counts["rows"], counts["questions"],
             counts["malformed"])
    samples = _malformed_samples(stats, settings.report.malformed_samples)
    tag_counts = analytics.ranked(results.pop("tag_counts"))
    block_counts = pd.DataFrame([b.counts for b in firsts])
    warnings = check_malformed(name, counts, samples, settings.malformed) + _duplicates_said(name, dropped)
    return Combined(counts, samples, results, tag_counts, block_counts, warnings)


def _duplicates_said(name: str, dropped: list[np.ndarray]) -> list[str]:
    if not dropped:
        return []
    ids = np.concatenate(dropped)
    said = (f"{len(ids)} questions of {name} repeat the Id of an earlier one and are left out (the first is kept), "
            f"e.g. Id {', '.join(map(str, ids[:5]))}")
    log.warning("%s", said)
    return [said]


def check_malformed(name: str, counts: dict, samples: list[dict], malformed: MalformedSettings) -> list[str]:
    """The warnings a site's share of malformed lines calls for; above ``malformed.failure-share`` (unless
    ``malformed.allow``) the run fails: a file in another encoding, or not a Posts.xml, is not a result."""
    lines = counts["rows"] + counts["malformed"]
    share = counts["malformed"] / lines if lines else 0.0
    if share <= malformed.warning_share:
        return []
    first = "; ".join(f"{report.shown_url(m['file'])}:{m['line']} {m['reason']}" for m in samples[:3])
    said = f"{share:.0%} of the row lines of {name} are malformed ({counts['malformed']} of {lines}), first: {first}"
    if share > malformed.failure_share and not malformed.allow:
        raise PipelineError(f"{said} — is it a Posts.xml in UTF-8? (--allow-malformed finishes anyway)")
    log.warning("%s", said)
    return [said]


def classify(plan: Plan, name: str, combined: Combined, min_questions: int) -> model.Classifier:
    """Train and score the site's classifier on its labelled Parquet, or say why it is not worth it."""
    labels = plan.settings.labels
    if not plan.settings.classify:
        return model.Classifier(list(labels), {}, reason="turned off (--no-classifier, classifier.enabled false)")
    found = model.label_counts(combined.block_counts, labels)
    reason = model.reason_to_skip(found, min_questions)
    if reason:
        log.info("%s: classifier %s vs %s skipped: %s", name, *labels, reason)
        suggested = [t for t, _ in combined.tag_counts[:2]]
        return model.Classifier(list(labels), found, reason=reason, suggested_tags=suggested)
    log.info("%s: classifier %s vs %s on %d questions", name, *labels, combined.analytics["labelled_questions"])
    files = [f"{plan.labelled_dir}/{part_file(i)}" for i in plan.sites[name]]
    scores, fitted, test_ids = model.train(files, combined.block_counts, labels, plan.settings.random_state,
                                           plan.settings.storage_options)
    log.info("%s: accuracy %s on %d test questions (baseline %s)", name, scores["accuracy"], scores["test_rows"],
             scores["baseline"])
    return model.Classifier(list(labels), found, scores=scores, model=fitted, test_ids=test_ids)


def write(out: RunDirectory, result: report.Report) -> None:
    """Every site's files, then the reports (``_SUCCESS`` is the run directory's, at commit)."""
    test_split = []
    for site in result.sites.values():
        if result.many:
            out.directory(result.site_file(site, ""))  # a local folder must exist before files go in it
        frame = pd.DataFrame(site.tag_counts, columns=["tag", "count"])
        out.write(result.site_file(site, "tag_counts.csv"), frame.to_csv(index=False))
        clf = site.classifier
        if clf.model is not None:
            out.write(result.site_file(site, "model.joblib"), _model_bytes(clf.model))
            test_split.append(pd.DataFrame({"site": site.name, "id": clf.test_ids}))
        if result.many:
            out.write(result.site_file(site, "report.html"), report.to_html(result, site))
    if test_split:
        out.write("test_split.csv", pd.concat(test_split).to_csv(index=False))
    out.write("metrics.prom", metrics.exposition(result))
    out.write("report.json", report.to_json(result))
    out.write(result.page, report.index_html(result) if result.many else report.to_html(result, *result.sites.values()))


def run_on(client: Client, settings: Settings, inputs: list[str], files: dict[str, int],
           out: RunDirectory) -> report.Report:
    """Run every stage with ``client`` on ``files`` (``inputs`` expanded: path → size) and write the
    results to ``out`` (not yet committed)."""
    started = time.perf_counter()
    the_plan = plan(client, settings, inputs, files, out)
    if the_plan.settings.classify:  # the classifier's imports (seconds) while the workers run pass 1
        model.import_in_background()
    first = run_first_pass(client, the_plan, out, settings.visualize, settings.show_progress)
    timings = {"parse, clean, write, analytics": round(time.perf_counter() - started, 3)}
    combined = {name: combine(name, [first.blocks[i] for i in numbers],
                              [first.dropped[i][1] for i in numbers if i in first.dropped], settings)
                for name, numbers in the_plan.sites.items()}
    t = time.perf_counter()
    with get_task_stream(client) as classifier_stream:
        classifiers = {name: classify(the_plan, name, c, settings.classifier.min_questions)
                       for name, c in combined.items()}
    timings["classifier"] = round(time.perf_counter() - t, 3)
    result = _report(the_plan, settings, out.url, combined, classifiers)
    result.compute_seconds_by_stage, result.tasks_by_stage = _stage_totals(first.blocks,
                                                                           first.stream + classifier_stream.data)
    timings["total"] = round(time.perf_counter() - started, 3)
    result.timings = timings
    write(out, result)
    return result


def _report(plan: Plan, run_settings: Settings, output: str, combined: dict[str, Combined],
            classifiers: dict[str, model.Classifier]) -> report.Report:
    found = {name: report.Site(name, sorted({plan.blocks[i].path for i in plan.sites[name]}), c.counts,
                               c.malformed_samples, c.analytics, c.tag_counts, classifiers[name], c.warnings)
             for name, c in combined.items()}
    settings = {"blocksize": run_settings.blocksize, "html_parser": plan.settings.html_parser,
                "partitions": len(plan.blocks)}
    return report.Report(inputs=sorted(plan.files), output=output, sites=found,
                         settings=settings)


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
    import joblib  # (only a trained classifier needs it: off the start path)

    buffer = io.BytesIO()
    joblib.dump(fitted, buffer)
    return buffer.getvalue()


def _visualize(filename: str, *collections) -> None:
    try:
        dask.visualize(*collections, filename=filename, optimize_graph=True)
    except (ImportError, RuntimeError) as e:
        raise PipelineError("--visualize needs graphviz (pip install graphviz; apt-get install graphviz): "
                            f"{e}") from None
    log.info("task graph written to %s", filename)


def run(inputs: list[str] | str | None = None, output: str | None = None) -> report.Report:
    """The whole job with the current configuration; usable from a notebook as from the CLI."""
    settings = load_settings()  # every option checked before an input is listed or a cluster starts
    inputs = inputs or settings.input
    output = output or settings.output
    if not inputs or not output:
        raise PipelineError("an input (--input PATH_OR_URL) and an output (--output DIR_OR_URL) are needed")
    inputs = [inputs] if isinstance(inputs, str) else list(inputs)
    storage_options = settings.storage_options
    with driver_log() as lines:  # for driver.log in the run directory
        log.info("input %s → output %s (storage options %s)", ", ".join(map(config.redacted_url, inputs)),
                 config.redacted_url(output), config.redacted(storage_options))
        # listed once, and a missing input fails before a cluster starts
        files = read.expand(inputs, storage_options, cluster_kind=settings.cluster.kind,
                            unpack_dir=settings.unpack_dir)
        planned = sum(read.block_count(size, settings.blocksize, 1) for size in files.values())
        settings.check_blocks(planned, sum(files.values()))
        out = RunDirectory(output, storage_options, overwrite=settings.overwrite, inputs=files,
                           resume=settings.resume)
        try:
            check_resumable(out, files, settings)
            with cluster.connect(settings.cluster, files) as client:
                result = run_on(client, settings, inputs, files, out)
            out.commit(lines.read())
        except BaseException as exc:
            out.abort(lines.read(exc))
            raise
    metrics.push(result, settings.metrics)
    log.info("results in %s (%s, report.json)", out.url, result.page)
    return result
