"""The straightforward computation the tests hold the pipeline to: ElementTree per row, as the blog does.

It reads a whole file in one process, with no Dask and none of the pipeline's code paths
(only the generator's file is shared), so that agreement means something.
"""

from __future__ import annotations

import calendar
import re
import xml.etree.ElementTree as ET
from collections import Counter
from typing import BinaryIO

from bs4 import BeautifulSoup

WHITESPACE = " \t\r\n"  # XML's
STRUCTURE = ("", "<posts>", "</posts>")  # (a root tag beside a row is taken off first)
# The fields of a question that must fit a 64-bit integer or a date and time (to the millisecond).
INTEGERS = {"Id", "AcceptedAnswerId", "Score", "ViewCount", "OwnerUserId", "LastEditorUserId", "AnswerCount",
            "CommentCount", "FavoriteCount"}
DATES = {"CreationDate", "LastEditDate", "LastActivityDate", "ClosedDate", "CommunityOwnedDate"}


def fits(name: str, value: str) -> bool:
    """Whether a question's attribute holds a value of its field's type."""
    if name in INTEGERS:
        return re.fullmatch("-?[0-9]+", value) is not None and -(2**63) <= int(value) < 2**63
    if name in DATES:
        match = re.fullmatch(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]{1,3})?", value)
        if match is None:
            return False
        year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
        days = [31, 29 if calendar.isleap(year) else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        return 1 <= month <= 12 and 1 <= day <= days[month - 1] and hour < 24 and minute < 60 and second < 60
    return True


def rows(source: str | BinaryIO):
    """(line number, attributes or None if the line is not a usable row) for every row-like line of a file
    (a path, or a binary file object)."""
    f = open(source, "rb") if isinstance(source, str) else source
    with f:
        for number, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8").strip(WHITESPACE)
            except UnicodeDecodeError:
                yield number, None
                continue
            line = line.removeprefix("<posts>").removesuffix("</posts>").strip(WHITESPACE)  # re-serialized files
            if line in STRUCTURE or line.startswith(("<?xml", "<!DOCTYPE")):
                continue
            try:
                element = ET.fromstring(line)
            except ET.ParseError:
                yield number, None
                continue
            a = element.attrib
            is_row = element.tag == "row" and not len(element) and not (element.text or "").strip(WHITESPACE)
            ids = all(re.fullmatch("[0-9]+", a.get(name, "")) for name in ("Id", "PostTypeId"))
            typed = ids and (a["PostTypeId"] != "1" or all(fits(name, value) for name, value in a.items()))
            yield number, a if is_row and ids and typed else None


def tags_of(text: str | None) -> list[str]:
    if not text:
        return []
    if text.startswith("<"):
        return re.findall(r"<([^>]+)>", text)
    return [t for t in text.split("|") if t]


def summary(source: str | BinaryIO, tag: str = "python", labels: tuple[str, str] = ("python", "r")) -> dict:
    post_types: Counter = Counter()
    malformed = []
    cooccur: Counter = Counter()
    all_tags: Counter = Counter()
    per_year: Counter = Counter()
    questions = {}
    for number, a in rows(source):
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
        if "CreationDate" in a:
            per_year[a["CreationDate"][:4]] += 1
        if (labels[0] in tags) != (labels[1] in tags):
            questions[int(a["Id"])] = (a.get("Body", ""), labels[0] if labels[0] in tags else labels[1])
    return {
        "rows": sum(post_types.values()),
        "post_types": dict(post_types),
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
