"""The blog's method ("Data Processing with Dask", 2020): ElementTree per line in a dask.bag,
``to_dataframe``, BeautifulSoup ``get_text`` per body, then dask-ml's classifier.

Only the changes needed to run on the pinned releases: string conversion off so that the tag
lists survive ``to_dataframe``, ``meta=`` on every ``map``, explicit label categories for
``LabelEncoder``, the vectorizer given a dask array (dask/dask#11207), ``nlargest`` instead of a
sorted ``value_counts``, both tag forms (``<a><b>`` and ``|a|b|``); and the SGD seeded, so that a
tiny smoke run's accuracy is repeatable. With ``persist=True`` the
cleaned questions are persisted once; as written (``persist=False``) every ``compute``, ``fit``
and ``score`` re-reads and re-parses the file.
"""

from __future__ import annotations

import re
import sys
import xml.etree.ElementTree as ET
from contextlib import ExitStack

import dask
import dask.bag as db
import dask.dataframe as dd
import pandas as pd
from bs4 import BeautifulSoup
from dask_ml.feature_extraction.text import HashingVectorizer
from dask_ml.model_selection import train_test_split
from dask_ml.preprocessing import LabelEncoder
from dask_ml.wrappers import Incremental
from distributed import Client, LocalCluster, wait
from sklearn.linear_model import SGDClassifier

from bench.measure import Result, Stages, main

BLOCKSIZE = "32MiB"


def extract_question(row: ET.Element) -> dict:
    a = row.attrib
    return {
        "Id": int(a["Id"]),
        "CreationDate": a["CreationDate"],
        "Score": int(a.get("Score", 0)),
        "Title": a.get("Title", ""),
        "Body": a.get("Body", ""),
        "Tags": a.get("Tags", ""),
    }


def clean_tags(tags: str) -> list[str]:
    return re.findall(r"<([^>]+)>", tags) if tags.startswith("<") else [t for t in tags.split("|") if t]


def run(path: str, tag: str = "python", labels: tuple[str, str] = ("python", "r"), persist: bool = True,
        workers: int = 2, random_state: int = 0, scheduler: str | None = None) -> Result:
    """The job on a new LocalCluster of ``workers`` single-threaded workers, or on ``scheduler``."""
    stages = Stages()
    with ExitStack() as stack:
        stack.enter_context(dask.config.set({"dataframe.convert-string": False}))
        with stages("cluster start"):
            if scheduler is None:
                scheduler = stack.enter_context(LocalCluster(n_workers=workers, threads_per_worker=1,
                                                             dashboard_address=":0"))
            stack.enter_context(Client(scheduler))
        with stages("read+parse+clean"):
            rows = (db.read_text(path, blocksize=BLOCKSIZE)
                    .map(str.strip).filter(lambda line: line.startswith("<row")).map(ET.fromstring))
            questions = rows.filter(lambda row: row.attrib["PostTypeId"] == "1").map(extract_question)
            df = questions.to_dataframe(meta={"Id": int, "CreationDate": object, "Score": int, "Title": object,
                                              "Body": object, "Tags": object})
            df["Tags"] = df["Tags"].map(clean_tags, meta=("Tags", object))
            df["Body"] = df["Body"].map(lambda body: BeautifulSoup(body, "html.parser").get_text(),
                                        meta=("Body", object))
            df["CreationDate"] = dd.to_datetime(df["CreationDate"])
            if persist:
                df = df.persist()
                wait(df)
        with stages("analytics"):
            n_questions = int(df.shape[0].compute())
            with_tag = df[df["Tags"].map(lambda t: tag in t, meta=("Tags", bool))]
            beside = with_tag["Tags"].explode()
            cooccurrence = beside[beside != tag].value_counts().compute()
            all_tags = df["Tags"].explode().value_counts().nlargest(20).compute()
            per_year = df["CreationDate"].dt.year.value_counts().compute()
        with stages("classifier"):
            first, second = labels
            one_of = df[df["Tags"].map(lambda t: (first in t) != (second in t), meta=("Tags", bool))]
            label = one_of["Tags"].map(lambda t: first if first in t else second, meta=("Tags", object))
            label = label.astype(pd.CategoricalDtype(list(labels)))
            x_train, x_test, y_train, y_test = train_test_split(
                one_of["Body"], label, test_size=0.2, random_state=random_state, shuffle=True)
            encoder = LabelEncoder().fit(y_train)
            y_train, y_test = encoder.transform(y_train), encoder.transform(y_test)
            vectorizer = HashingVectorizer(stop_words="english")
            x_train, x_test = (vectorizer.transform(x_train.to_dask_array()),
                               vectorizer.transform(x_test.to_dask_array()))
            classifier = Incremental(SGDClassifier(penalty="l1", random_state=random_state), scoring="accuracy")
            classifier.fit(x_train, y_train, classes=[0, 1])
            with dask.config.set({"distributed.admin.large-graph-warning-threshold": "128MiB"}):
                accuracy = float(classifier.score(x_test, y_test))
    del all_tags, per_year  # computed as the job asks; agreement is checked on the co-occurrence
    return Result(stages=stages.seconds, questions=n_questions,
                  cooccurrence={k: int(v) for k, v in cooccurrence.items()}, accuracy=accuracy)


if __name__ == "__main__":
    sys.exit(main(run))
