"""The straightforward computation the tests hold the pipeline to: ElementTree per row, as the blog does.

It reads a whole file in one process, with no Dask and none of the pipeline's code paths
(only the generator's file is shared), so that agreement means something.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections import Counter

from bs4 import BeautifulSoup


def rows(path: str):
    """(line number, attributes or None if the line is not a usable row) for every row-like line."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        for number, line in enumerate(f, start=1):
            line = line.strip()
            if not line or line in ("<posts>", "</posts>") or line.startswith("<?xml"):
                continue
            try:
                element = ET.fromstring(line)
            except ET.ParseError:
                yield number, None
                continue
            a = element.attrib
            if element.tag != "row" or not a.get("Id", "").isdigit() or not a.get("PostTypeId", "").isdigit():
                yield number, None
            else:
                yield number, a


def tags_of(text: str | None) -> list[str]:
    if not text:
        return []
    if text.startswith("<"):
        return re.findall(r"<([^>]+)>", text)
    return [t for t in text.split("|") if t]


def summary(path: str, tag: str = "python", labels: tuple[str, str] = ("python", "r")) -> dict:
    post_types: Counter = Counter()
    malformed = []
    cooccur: Counter = Counter()
    all_tags: Counter = Counter()
    per_year: Counter = Counter()
    questions = {}
    for number, a in rows(path):
        if a is None:
            malformed.append(number)
            continue
        post_types[a["PostTypeId"]] += 1
        if a["PostTypeId"] != "1":
            continue
        tags = tags_of(a.get("Tags"))
        all_tags.update(tags)
        if tag in tags:
            cooccur.update(t for t in tags if t != tag)
        per_year[a["CreationDate"][:4]] += 1
        if (labels[0] in tags) != (labels[1] in tags):
            questions[int(a["Id"])] = (a.get("Body", ""), labels[0] if labels[0] in tags else labels[1])
    return {
        "rows": sum(post_types.values()),
        "questions": post_types["1"],
        "malformed_lines": malformed,
        "cooccurrence": dict(cooccur),
        "tag_counts": dict(all_tags),
        "per_year": dict(per_year),
        "labelled": questions,
    }


def blog_accuracy(labelled: dict[int, tuple[str, str]], test_ids: set[int], orders: int = 5) -> float:
    """The blog's classifier on a given split: BeautifulSoup text, HashingVectorizer, SGD (l1).

    One pass of plain SGD depends on the order of the rows by about ±0.01, so this is the mean
    over several orders of the training rows: the method's accuracy, not one ordering's luck.
    """
    import random

    from sklearn.feature_extraction.text import HashingVectorizer
    from sklearn.linear_model import SGDClassifier

    ids = sorted(labelled)
    text = {i: BeautifulSoup(labelled[i][0], "html.parser").get_text() for i in ids}
    names = sorted({label for _, label in labelled.values()})
    vectorizer = HashingVectorizer(stop_words="english")
    test = [i for i in ids if i in test_ids]
    x_test = vectorizer.transform([text[i] for i in test])
    actual = [names.index(labelled[i][1]) for i in test]
    scores = []
    for order in range(orders):
        train = [i for i in ids if i not in test_ids]
        random.Random(order).shuffle(train)
        classifier = SGDClassifier(penalty="l1", random_state=0)
        classifier.partial_fit(vectorizer.transform([text[i] for i in train]),
                               [names.index(labelled[i][1]) for i in train], classes=[0, 1])
        scores.append(float((classifier.predict(x_test) == actual).mean()))
    return sum(scores) / len(scores)
