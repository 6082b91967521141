"""The same job in DuckDB, as fairly as it can be written: DuckDB has no XML reader of its own (its
XML extensions come from an extension repository, not PyPI), so like the Polars script it reads the
dump as lines (``read_csv`` with one column and no quoting, every core), takes the attributes with
``regexp_extract`` and decodes them with ``replace``, all in SQL; the classifier is scikit-learn's.
"""

from __future__ import annotations

import os
import sys
import tempfile

import duckdb

from bench import classifier
from bench.measure import Result, Stages, main

ENTITIES = [("&lt;", "<"), ("&gt;", ">"), ("&quot;", '"'), ("&#xA;", "\n"), ("&#xD;", "\r"), ("&#39;", "'"),
            ("&amp;", "&")]


def unescape(sql: str) -> str:
    for entity, char in ENTITIES:  # &amp; last, so that "&amp;lt;" becomes "&lt;", not "<"
        quoted = char.replace("'", "''")
        sql = f"replace({sql}, '{entity}', '{quoted}')"
    return sql


def attribute(name: str) -> str:
    return f"""regexp_extract(line, '\\b{name}="([^"]*)"', 1)"""


def run(path: str, tag: str = "python", labels: tuple[str, str] = ("python", "r"), random_state: int = 0) -> Result:
    stages = Stages()
    db = duckdb.connect()
    with stages("read+parse+clean"), tempfile.TemporaryDirectory() as out:
        db.execute(f"""
            CREATE TABLE questions AS
            SELECT CAST({attribute("Id")} AS BIGINT) AS id,
                   CAST({attribute("CreationDate")} AS TIMESTAMP) AS creation_date,
                   regexp_extract_all({unescape(attribute("Tags"))}, '[^<>|]+') AS tags,
                   {unescape(f"regexp_replace({unescape(attribute('Body'))}, '<[^>]*>', '', 'g')")} AS text
            FROM read_csv(?, columns = {{'line': 'VARCHAR'}}, header = false, delim = '\x1f', quote = '',
                          escape = '', auto_detect = false, strict_mode = false)
            WHERE contains(line, 'PostTypeId="1"')""", [path])
        db.execute(f"COPY questions TO '{os.path.join(out, 'questions.parquet')}' (FORMAT parquet)")
    with stages("analytics"):
        n_questions = db.execute("SELECT count(*) FROM questions").fetchone()[0]
        cooccurrence = dict(db.execute("""
            SELECT t, count(*) FROM (SELECT unnest(tags) AS t FROM questions WHERE list_contains(tags, ?))
            WHERE t <> ? GROUP BY t""", [tag, tag]).fetchall())
        db.execute("SELECT t, count(*) AS n FROM (SELECT unnest(tags) AS t FROM questions) GROUP BY t ORDER BY n DESC "
                   "LIMIT 20").fetchall()
        db.execute("SELECT year(creation_date), count(*) FROM questions GROUP BY 1").fetchall()
    with stages("classifier"):
        first, second = labels
        rows = db.execute("SELECT text, list_contains(tags, ?) FROM questions "
                          "WHERE list_contains(tags, ?) <> list_contains(tags, ?)", [second, first, second]).fetchall()
        texts, y = [r[0] for r in rows], [int(r[1]) for r in rows]  # 0 = first label, 1 = second
        accuracy = classifier.accuracy(texts, y, random_state)
    return Result(stages=stages.seconds, questions=n_questions, cooccurrence=cooccurrence, accuracy=accuracy)


if __name__ == "__main__":
    sys.exit(main(run))
