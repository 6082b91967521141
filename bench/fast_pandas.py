"""The same job as a good engineer would write it without Dask: one process, pandas and scikit-learn.

One streaming pass over the lines: a substring test skips non-questions, one compiled regex takes
the attributes of a question, ``html.unescape`` decodes them. Bodies become text with a regex
strip; analytics are pandas ``explode``/``value_counts``; the classifier is the same recipe
(HashingVectorizer, one pass of SGD with an l1 penalty) with scikit-learn's own split.
"""

from __future__ import annotations

import html
import os
import re
import sys
import tempfile

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from bench import classifier
from bench.measure import Result, Stages, main

ATTRIBUTE = re.compile(r'(\w+)="([^"]*)"')
MARKUP = re.compile(r"<(script|style)\b.*?</\1\s*>|<!--.*?-->|<[^>]*>", re.DOTALL | re.IGNORECASE)
TAGS = re.compile(r"[^<>|]+")
FIELDS = ("Id", "CreationDate", "Score", "Title", "Body", "Tags")


def read_questions(path: str) -> pd.DataFrame:
    columns: dict[str, list] = {name: [] for name in FIELDS}
    with open(path, encoding="utf-8-sig") as f:
        for line in f:
            if ' PostTypeId="1"' not in line:
                continue
            attributes = dict(ATTRIBUTE.findall(line))
            for name in FIELDS:
                value = attributes.get(name, "")
                columns[name].append(html.unescape(value) if "&" in value else value)
    frame = pd.DataFrame(columns)
    return frame.astype({"Id": "int64", "Score": "int64"}).assign(CreationDate=pd.to_datetime(frame["CreationDate"]))


def to_text(body: str) -> str:
    return html.unescape(MARKUP.sub("", body))


def run(path: str, tag: str = "python", labels: tuple[str, str] = ("python", "r"), random_state: int = 0) -> Result:
    stages = Stages()
    with stages("read+parse"):
        df = read_questions(path)
    with stages("clean"):
        df["Tags"] = [TAGS.findall(t) for t in df["Tags"]]
        df["Body"] = [to_text(b) for b in df["Body"]]
        with tempfile.TemporaryDirectory() as out:
            pq.write_table(pa.Table.from_pandas(df, preserve_index=False), os.path.join(out, "questions.parquet"))
    with stages("analytics"):
        tags = df["Tags"].explode()
        with_tag = tags.index[tags == tag].unique()
        beside = tags.loc[with_tag]
        cooccurrence = beside[beside != tag].value_counts()
        tags.value_counts().nlargest(20)
        df["CreationDate"].dt.year.value_counts()
    with stages("classifier"):
        first, second = labels
        has_first = df["Tags"].map(lambda t: first in t)
        one_of = df[has_first != df["Tags"].map(lambda t: second in t)]
        y = (~has_first[one_of.index]).astype(int).to_numpy()  # 0 = first label, 1 = second
        accuracy = classifier.accuracy(one_of["Body"].tolist(), y, random_state)
    return Result(stages=stages.seconds, questions=len(df),
                  cooccurrence={k: int(v) for k, v in cooccurrence.items()}, accuracy=accuracy)


if __name__ == "__main__":
    sys.exit(main(run))
