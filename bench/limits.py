"""Per-stage limits of this machine: how fast each stage's core work can go on one core.

Measured on a sample of the benchmark file, each as the bare operation with nothing around it:
reading the file (page cache warm), taking a row's attributes with one compiled regex and
decoding them, stripping a body's HTML by regex, hashing a text. ElementTree and BeautifulSoup
(the blog's tools) are measured beside them for scale.
"""

from __future__ import annotations

import html
import itertools
import time
import xml.etree.ElementTree as ET

from bs4 import BeautifulSoup
from sklearn.feature_extraction.text import HashingVectorizer

from pipeline import clean, parse

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
    texts = [clean.html_to_text(b) for b in bodies]
    vectorizer = HashingVectorizer(stop_words="english")
    rates = {
        "read_mb_per_s": read_mb_per_s(path),
        "parse_rows_per_s_core": _rate(lambda rs: [{k: parse.unescape(v) for k, v in parse.ATTRIBUTE.findall(r)} for r in rs], rows),
        "html_bodies_per_s_core": _rate(lambda bs: [html.unescape(clean.NOT_TEXT.sub("", b)) for b in bs], bodies),
        "hash_docs_per_s_core": _rate(vectorizer.transform, texts),
        "elementtree_rows_per_s_core": _rate(lambda rs: [ET.fromstring(r).attrib for r in rs], rows[:5000]),
        "bs4_bodies_per_s_core": _rate(lambda bs: [BeautifulSoup(b, "html.parser").get_text() for b in bs], bodies[:2000]),
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
    return {k: round(v, 3) for k, v in out.items()}
