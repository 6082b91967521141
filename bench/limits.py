"""Per-stage limits of this machine: how fast each stage's core work can go on one core.

Measured on a sample of the benchmark file, each as the bare operation, done the fastest way we
know, with nothing around it: reading the file (page cache warm); checking rows against the row
grammar and splitting them into attributes with Arrow's kernels; stripping bodies' HTML and
decoding their entities with Arrow's kernels; hashing texts with scikit-learn's HashingVectorizer
(the issue's definition of the hashing limit). Our vectorised hashing (``pipeline.hashing``) beats
that limit, so it is measured too, with the limit sum it gives. ElementTree, a Python regex per
row and BeautifulSoup are measured beside them for scale.
"""

from __future__ import annotations

import itertools
import time
import xml.etree.ElementTree as ET

import pyarrow as pa
import pyarrow.compute as pc
from bs4 import BeautifulSoup
from sklearn.feature_extraction.text import HashingVectorizer

from pipeline import clean, hashing, parse

SAMPLE_LINES = 20_000


def _rate(function, items, min_seconds: float = 0.5) -> float:
    """Items per second of ``function`` applied to each item, repeated to at least ``min_seconds``."""
    done, start = 0, time.perf_counter()
    while True:
        function(items)
        done += len(items)
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return done / elapsed


def read_mb_per_s(path: str, chunk: int = 16 * 2**20) -> float:
    buffer = bytearray(chunk)
    with open(path, "rb", buffering=0) as f:  # once to warm the page cache, once timed
        while f.readinto(buffer):
            pass
        f.seek(0)
        start, total = time.perf_counter(), 0
        while n := f.readinto(buffer):
            total += n
    return total / 2**20 / (time.perf_counter() - start)


def measure(path: str) -> dict:
    with open(path, encoding="utf-8-sig") as f:
        rows = [r for r in (line.strip() for line in itertools.islice(f, SAMPLE_LINES)) if r.startswith("<row")]
    bodies = [parse.unescape(a["Body"]) for a in (dict(parse.ATTRIBUTE.findall(r)) for r in rows) if "Body" in a]
    texts = clean.bodies_to_text(pa.array(bodies)).to_pylist()
    vectorizer = HashingVectorizer(stop_words="english")
    rates = {
        "read_mb_per_s": read_mb_per_s(path),
        "parse_rows_per_s_core": _rate(lambda rs: (pc.match_substring_regex(rs, parse.ROW), pc.split_pattern(rs, '"')),
                                       pa.array(rows)),
        "html_bodies_per_s_core": _rate(clean.bodies_to_text, pa.array(bodies)),
        "hash_docs_per_s_core": _rate(vectorizer.transform, texts),
        "vectorised_hash_docs_per_s_core": _rate(hashing.transform, pa.array(texts, pa.large_string())),
        "python_regex_rows_per_s_core": _rate(
            lambda rs: [{k: parse.unescape(v) for k, v in parse.ATTRIBUTE.findall(r)} for r in rs], rows),
        "elementtree_rows_per_s_core": _rate(lambda rs: [ET.fromstring(r).attrib for r in rs], rows[:5000]),
        "bs4_bodies_per_s_core": _rate(lambda bs: [BeautifulSoup(b, "html.parser").get_text() for b in bs],
                                       bodies[:2000]),
    }
    return {k: round(v, 1) for k, v in rates.items()}


def seconds(rates: dict, size_bytes: int, rows: int, questions: int, labelled: int, cores: int) -> dict:
    """The time each stage would take at its limit, on ``cores`` cores, and their sum."""
    out = {
        "read": size_bytes / 2**20 / rates["read_mb_per_s"],
        "parse": rows / rates["parse_rows_per_s_core"] / cores,
        "html": questions / rates["html_bodies_per_s_core"] / cores,
        "hash": labelled / rates["hash_docs_per_s_core"] / cores,
    }
    out["sum"] = sum(out.values())
    vectorised_hash = labelled / rates["vectorised_hash_docs_per_s_core"] / cores
    out["sum_with_vectorised_hash"] = out["sum"] - out["hash"] + vectorised_hash
    return {k: round(v, 3) for k, v in out.items()}
