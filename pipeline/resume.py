"""Resume: what an interrupted run had finished, kept in its staging so that ``--resume`` does only the rest.

A run records in ``_progress/`` of its staging (``RunDirectory.progress``) its plan first — the blocks,
and a fingerprint of what their results depend on: each input's size and modification time (its ETag
on S3), the settings the first pass uses and the version — then, as each block's task finishes, the
block's small result (``blocks/N.json``, after its Parquet files and ``blocks/N.ids.npy``, the ids the
duplicate check needs): a block is done once its JSON is there. A block passed again without its
duplicates records that in ``again/N.json``, with the positions it left out.

A resumed run takes the recorded plan (the same blocks, whatever its cluster's threads) if the
fingerprint is unchanged, and refuses with the first difference otherwise. The records are plain
JSON and NumPy files, never pickles: a resumed run loads nothing that could run code.
"""

from __future__ import annotations

import json
import logging
import posixpath
import uuid
from collections import Counter
from importlib import metadata

import fsspec
import numpy as np
import pandas as pd

from pipeline import analytics, config, questions, storage
from pipeline.parse import Malformed
from pipeline.read import Block

log = logging.getLogger(__name__)

FIRST = "blocks"  # a block's first pass: N.json, N.ids.npy
AGAIN = "again"  # a block passed again without its duplicates: N.json


def fingerprint(files: dict[str, int], storage_options: dict, settings: dict) -> dict:
    """What the blocks' results depend on: every input's size and version, the settings, the version of
    posts-pipeline."""
    inputs = {}
    for url in sorted(files):
        fs, path = storage.filesystem(url, storage_options)
        with storage.storage_errors(url):
            info = fs.info(path)
        version = info.get("ETag") or info.get("mtime") or info.get("LastModified")
        inputs[url] = {"size": info["size"], "version": str(version)}
    return {"inputs": inputs, "settings": settings, "posts-pipeline": metadata.version("posts-pipeline")}


def pass_settings(blocksize: int, html_parser: str, tag: str, labels: tuple[str, str], classify: bool,
                  test_size: float, random_state: int, samples: int) -> dict:
    """The settings a block's results depend on, named by their config keys."""
    return {"blocksize": blocksize, "clean.html-parser": html_parser, "analytics.tag": tag,
            "classifier.tags": list(labels), "classifier.enabled": classify, "classifier.test-size": test_size,
            "classifier.random-state": random_state, "report.malformed-samples": samples}


def difference(recorded: dict, now: dict) -> str | None:
    """The first way ``now`` differs from the ``recorded`` fingerprint, in words; None if it does not."""
    old_inputs, new_inputs = recorded.get("inputs", {}), now["inputs"]
    for url in sorted(set(old_inputs) | set(new_inputs)):
        shown = config.redacted_url(url.removeprefix("file://"))
        if url not in new_inputs:
            return f"input {shown} is no longer among the inputs"
        if url not in old_inputs:
            return f"input {shown} was not among the inputs"
        old, new = old_inputs[url], new_inputs[url]
        if old["size"] != new["size"]:
            return f"input {shown} changed (size {old['size']:,} → {new['size']:,} bytes)"
        if old["version"] != new["version"]:
            return f"input {shown} changed (modified since)"
    for key in sorted(set(recorded.get("settings", {})) | set(now["settings"])):
        old, new = recorded.get("settings", {}).get(key), now["settings"].get(key)
        if old != new:
            return f"setting {key} changed ({old!r} → {new!r}{config.where(key, config.get(key))})"
    if recorded.get("posts-pipeline") != now["posts-pipeline"]:
        return f"posts-pipeline changed ({recorded.get('posts-pipeline')} → {now['posts-pipeline']})"
    return None


def plan_record(blocks: list[Block], fingerprint: dict) -> str:
    return json.dumps({"fingerprint": fingerprint, "blocks": [
        [b.path, b.index, b.offset, b.length, b.source] for b in blocks]}, indent=1)


def recorded_blocks(plan: dict) -> list[Block]:
    return [Block(*fields) for fields in plan["blocks"]]


def done(fs, progress: str) -> tuple[set[int], dict[int, list[int]]]:
    """The blocks whose first pass is recorded, and those passed again (number → the positions left out)."""
    fs.invalidate_cache()
    first = {int(posixpath.basename(path).removesuffix(".json"))
             for path in fs.glob(posixpath.join(progress, FIRST, "*.json"))}
    again = {}
    for path in fs.glob(posixpath.join(progress, AGAIN, "*.json")):
        try:
            again[int(posixpath.basename(path).removesuffix(".json"))] = json.loads(fs.cat_file(path))["drop"]
        except (ValueError, KeyError):
            continue  # cut short by a kill: that block is passed again
    return first, again


# On the workers: a block's record written after its Parquet files, and read back by a resumed run.

def record(progress: str, number: int, stats: questions.BlockStats, partials: pd.DataFrame, counts: dict,
           seconds: dict, ids: np.ndarray | None, drop: np.ndarray | None, storage_options: dict) -> None:
    """Record block ``number`` as done: its ids (first pass only), then its result, each written whole."""
    if ids is not None:
        with storage.open_file(f"{progress}/{FIRST}/{number}.ids.npy", "wb", storage_options) as f:
            np.save(f, ids, allow_pickle=False)
    result = {
        "stats": {"path": stats.path, "index": stats.index, "lines": stats.lines, "post_types": dict(stats.post_types),
                  "malformed": stats.malformed, "samples": [list(m) for m in stats.samples]},
        "partials": {column: partials[column].tolist() for column in analytics.PARTIALS_META.columns},
        "counts": counts,
        "seconds": seconds,
        "drop": None if drop is None else [int(p) for p in drop],
    }
    write_whole(f"{progress}/{AGAIN if drop is not None else FIRST}/{number}.json", json.dumps(result),
                 storage_options)


def load(progress: str, number: int, again: bool, storage_options: dict) -> tuple[tuple, np.ndarray | None]:
    """A recorded block's (stats, partials, counts, seconds) and, for its first pass, its ids."""
    with storage.open_file(f"{progress}/{AGAIN if again else FIRST}/{number}.json", "rb", storage_options) as f:
        result = json.load(f)
    ids = None
    if not again:
        with storage.open_file(f"{progress}/{FIRST}/{number}.ids.npy", "rb", storage_options) as f:
            ids = np.load(f, allow_pickle=False)
    s = result["stats"]
    stats = questions.BlockStats(s["path"], s["index"], s["lines"], Counter(s["post_types"]), s["malformed"],
                                 [Malformed(*m) for m in s["samples"]])
    partials = pd.DataFrame(result["partials"]).astype(analytics.PARTIALS_META.dtypes.to_dict())
    return (stats, partials, result["counts"], result["seconds"]), ids


def write_whole(url: str, text: str, storage_options: dict) -> None:
    """Write ``url`` so that it is there whole or not at all: an object store's put, a rename locally."""
    fs, path = storage.filesystem(url, storage_options)
    with storage.storage_errors(url):
        if not storage.is_local(fs):
            fs.pipe_file(path, text.encode())
            return
        partial = f"{path}.{uuid.uuid4().hex[:8]}.partial"
        with fsspec.open(partial, "w") as f:
            f.write(text)
        fs.mv(partial, path)
