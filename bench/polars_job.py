"""The same job as a strong Polars user writes it: one page, every core, no XML parser.

A dump has one ``<row …/>`` per line, so the file is read as one string column of lines (Polars'
multithreaded CSV reader with a separator and quote that never occur), the attributes are taken
by ``str.extract`` and decoded by ``str.replace_all``, tags by ``str.extract_all``, and the
analytics are ``explode``/``group_by``, all in one lazy query. The classifier is scikit-learn's
(HashingVectorizer, one pass of SGD with an l1 penalty) on the labelled rows.
"""

from __future__ import annotations

import os
import sys
import tempfile

import polars as pl

from bench import classifier
from bench.measure import Result, Stages, main

ENTITIES = [("&lt;", "<"), ("&gt;", ">"), ("&quot;", '"'), ("&#xA;", "\n"), ("&#xD;", "\r"), ("&#39;", "'"),
            ("&amp;", "&")]


def attribute(name: str) -> pl.Expr:
    return pl.col("line").str.extract(rf'\b{name}="([^"]*)"', 1)


def unescape(expr: pl.Expr) -> pl.Expr:
    for entity, char in ENTITIES:  # &amp; last, so that "&amp;lt;" becomes "&lt;", not "<"
        expr = expr.str.replace_all(entity, char, literal=True)
    return expr


def run(path: str, tag: str = "python", labels: tuple[str, str] = ("python", "r"), random_state: int = 0) -> Result:
    stages = Stages()
    with stages("read+parse+clean"):
        lines = pl.scan_csv(path, has_header=False, separator="\x1f", quote_char=None, schema={"line": pl.String},
                            encoding="utf8-lossy")
        questions = (
            lines.filter(pl.col("line").str.contains('PostTypeId="1"', literal=True))
            .select(
                attribute("Id").cast(pl.Int64).alias("id"),
                attribute("CreationDate").str.to_datetime("%Y-%m-%dT%H:%M:%S%.f").alias("creation_date"),
                unescape(attribute("Tags")).str.extract_all(r"[^<>|]+").alias("tags"),
                unescape(unescape(attribute("Body")).str.replace_all(r"<[^>]*>", "")).alias("text"),
            )
            .collect()
        )
        with tempfile.TemporaryDirectory() as out:
            questions.write_parquet(os.path.join(out, "questions.parquet"))
    with stages("analytics"):
        tags = questions.select("id", "tags").explode("tags")
        with_tag = tags.filter(pl.col("tags") == tag).select("id")
        cooccurrence = (tags.join(with_tag, on="id", how="semi").filter(pl.col("tags") != tag)
                        .group_by("tags").len())
        tags.group_by("tags").len().top_k(20, by="len")
        questions.group_by(pl.col("creation_date").dt.year()).len()
    with stages("classifier"):
        first, second = labels
        labelled = (questions
                    .with_columns(a=pl.col("tags").list.contains(first), b=pl.col("tags").list.contains(second))
                    .filter(pl.col("a") != pl.col("b")))
        y = labelled["b"].cast(pl.Int8).to_numpy()  # 0 = first label, 1 = second
        accuracy = classifier.accuracy(labelled["text"].to_list(), y, random_state)
    return Result(stages=stages.seconds, questions=questions.height,
                  cooccurrence=dict(cooccurrence.iter_rows()), accuracy=accuracy)


if __name__ == "__main__":
    sys.exit(main(run))
