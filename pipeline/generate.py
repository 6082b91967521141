"""Synthetic Posts.xml that looks like a real Stack Exchange dump, deterministic for a seed.

The demo, the tests and the benchmarks run on it, so it carries the quirks of real dumps:
UTF-8 BOM, CRLF, XML-escaped HTML bodies with code and entities, answers without Tags/Title,
PostTypeIds 1-7, rows out of Id order, rows ending in ``></row>``, missing OwnerUserId, empty
bodies, non-ASCII text, very long lines, and Zipf-distributed tags in either written form.
"""

from __future__ import annotations

import bisect
import itertools
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

import fsspec
from dask.utils import parse_bytes

COMMON_WORDS = (
    "the a to of and in is it that for on with this how can i my but not be are when what why "
    "use using get value list file function error data code way new work need want like get "
    "return set run find make change add remove each other first last number string line "
    "result problem question example output input object method class type variable table "
    "column row array index time date name key loop call write read problem issue help thanks"
).split()
NON_ASCII_WORDS = ["café", "naïve", "façade", "Zürich", "日本語", "données", "μ", "–", "emoji🙂"]
TOPIC_WORDS = {
    "python": "python def import pandas numpy dict tuple lambda pip virtualenv django flask self "
    "print range len iterator generator decorator pytest asyncio comprehension".split(),
    "r": "r dataframe ggplot2 dplyr tidyverse vector factor cran rstudio tibble apply sapply "
    "lapply mutate summarise na rmarkdown shiny levels plot".split(),
    "javascript": "javascript node npm promise async await dom react callback json browser".split(),
    "java": "java spring maven jvm class interface exception thread gradle jar".split(),
    "sql": "sql query join select where index postgres mysql table transaction".split(),
}
CODE_LINES = {
    "python": ["import pandas as pd", "df = pd.read_csv('data.csv')", "if a < b and b > 0:",
               "    print(f\"{x} & {y}\")", "for i in range(10):", "    total += i", "def f(x): return x * 2"],
    "r": ["library(ggplot2)", "df <- read.csv(\"data.csv\")", "x <- c(1, 2, 3)", "if (a < b & b > 0) {",
          "summary(lm(y ~ x, data = df))", "df %>% filter(x > 1)", "}"],
    "javascript": ["const x = await fetch(url);", "if (a < b && b > 0) {", "console.log(`${a}`);", "}"],
    "java": ["List<String> xs = new ArrayList<>();", "if (a < b && b > 0) {", "System.out.println(x);", "}"],
    "sql": ["SELECT a, b FROM t WHERE a < 10 AND b <> 'x';", "CREATE INDEX i ON t (a);"],
}
HEAD_TAGS = [
    "python", "javascript", "java", "c#", "php", "r", "android", "html", "jquery", "c++", "css", "ios",
    "sql", "mysql", "node.js", "pandas", "arrays", "c", "reactjs", "json", "django", "dataframe",
    "python-3.x", "ggplot2", "dplyr", "numpy", "list", "regex", "string", "linux", "spring", "excel",
    "bash", "dictionary", "git", "docker", "matplotlib", "tidyverse", "flask", "postgresql",
]
# Tags that go together, so that co-occurrence looks like a real site's (python with pandas, …).
RELATED = {
    "python": ["pandas", "numpy", "django", "python-3.x", "dataframe", "matplotlib", "flask", "list", "dictionary"],
    "r": ["ggplot2", "dplyr", "dataframe", "tidyverse", "regex", "excel"],
    "javascript": ["jquery", "html", "css", "reactjs", "node.js", "json", "arrays"],
    "java": ["spring", "android", "arrays", "string", "json"],
    "sql": ["mysql", "postgresql", "excel"],
}
POST_TYPES = (1, 2, 3, 4, 5, 6, 7)
POST_TYPE_WEIGHTS = (40, 54, 0.5, 2, 2, 0.5, 1)
FIRST_DATE = datetime(2008, 7, 31)
SPAN_SECONDS = int((datetime(2024, 12, 31) - FIRST_DATE).total_seconds())


@dataclass(frozen=True)
class Options:
    """What to generate. ``size`` is the target file size in bytes (the last row may overshoot)."""

    size: int
    seed: int = 0
    tag_form: str = "angle"  # "angle": <a><b> (dumps before 2024) | "pipe": |a|b| (2024 on)
    line_ending: str = "\r\n"  # official dumps use CRLF
    bom: bool = True
    n_tags: int = 400
    malformed_rate: float = 0.0  # fraction of lines replaced by broken XML, to exercise error handling


def xml_attr(value: str) -> str:
    """Escape a value for a double-quoted XML attribute, as the dumps do (newlines as &#xA;)."""
    return (
        value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
        .replace("\r", "&#xD;").replace("\n", "&#xA;")
    )


def html_text(value: str) -> str:
    """Escape text for HTML, as Stack Exchange bodies do inside <code>."""
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class _Writer:
    """Makes one row after another from a seeded random source."""

    def __init__(self, options: Options):
        self.o = options
        self.rng = random.Random(options.seed)
        tail = [f"tag-{i}" for i in range(options.n_tags - len(HEAD_TAGS))]
        self.tags = HEAD_TAGS + tail
        # Zipf weights over tag rank, as tag popularity is in real dumps.
        self.tag_cdf = list(itertools.accumulate(1.0 / (rank + 1) ** 1.05 for rank in range(len(self.tags))))
        self.type_cdf = list(itertools.accumulate(POST_TYPE_WEIGHTS))
        self.next_id = 1
        self.question_ids: list[int] = []

    def pick_tags(self) -> list[str]:
        count = self.rng.choice((1, 2, 2, 3, 3, 3, 4, 5))
        total = self.tag_cdf[-1]
        chosen: list[str] = []
        while len(chosen) < count:
            related = next((RELATED[t] for t in chosen if t in RELATED), None)
            if related and self.rng.random() < 0.75:
                tag = self.rng.choice(related)
            else:
                tag = self.tags[bisect.bisect(self.tag_cdf, self.rng.random() * total)]
            # python and r rarely share a question, as on Stack Overflow.
            if tag not in chosen and not ({tag} | set(chosen)) >= {"python", "r"}:
                chosen.append(tag)
        return chosen

    def sentence(self, topic: str | None) -> str:
        words = TOPIC_WORDS.get(topic, ()) if topic else ()
        out = []
        for _ in range(self.rng.randint(6, 24)):
            roll = self.rng.random()
            if words and roll < 0.3:
                out.append(self.rng.choice(words))
            elif roll < 0.32:
                out.append(self.rng.choice(NON_ASCII_WORDS))
            else:
                out.append(self.rng.choice(COMMON_WORDS))
        return " ".join(out).capitalize() + self.rng.choice((".", "?", "!", "..."))

    def body(self, topic: str | None) -> str:
        rng = self.rng
        if rng.random() < 0.005:
            return ""
        parts = []
        for _ in range(rng.randint(1, 4)):
            text = " ".join(self.sentence(topic) for _ in range(rng.randint(1, 3)))
            roll = rng.random()
            if roll < 0.2:
                word = rng.choice(TOPIC_WORDS.get(topic) or COMMON_WORDS)
                text = f"{text} Try <code>{html_text(word)}()</code> &amp; <em>see</em>."
            elif roll < 0.3:
                text = f'{text} See <a href="https://example.com/q?a=1&amp;b=2" rel="nofollow">this</a>.'
            elif roll < 0.35:
                text = f"{text}<br>Then <strong>{html_text(self.sentence(topic))}</strong>"
            parts.append(f"<p>{text}</p>")
        if topic in CODE_LINES and rng.random() < 0.7:
            lines = rng.sample(CODE_LINES[topic], k=min(len(CODE_LINES[topic]), rng.randint(2, 5)))
            parts.insert(rng.randint(0, len(parts)), "<pre><code>" + html_text("\n".join(lines)) + "\n</code></pre>")
        if rng.random() < 0.05:
            parts.append("<ul>" + "".join(f"<li>{self.sentence(topic)}</li>" for _ in range(3)) + "</ul>")
        if rng.random() < 0.0005:  # real dumps have bodies of tens of kilobytes
            parts.append("<p>" + " ".join(self.sentence(topic) for _ in range(300)) + "</p>")
        newline = "\r\n" if rng.random() < 0.1 else "\n"
        return newline.join(parts) + newline

    def date(self) -> datetime:
        # More posts in later years, as on the real sites.
        return FIRST_DATE + timedelta(seconds=int(SPAN_SECONDS * self.rng.random() ** 0.7),
                                      milliseconds=self.rng.randrange(1000))

    def row(self) -> str:
        rng = self.rng
        post_id = self.next_id
        self.next_id += 1
        post_type = POST_TYPES[bisect.bisect(self.type_cdf, rng.random() * self.type_cdf[-1])]
        created = self.date()
        attrs: list[tuple[str, object]] = [("Id", post_id), ("PostTypeId", post_type)]
        if post_type == 1:
            tags = self.pick_tags()
            topic = next((t for t in tags if t in TOPIC_WORDS), None)
            self.question_ids.append(post_id)
            if rng.random() < 0.5:
                attrs.append(("AcceptedAnswerId", post_id + rng.randint(1, 50)))
            attrs += [("CreationDate", created), ("Score", rng.randint(-5, 50)),
                      ("ViewCount", rng.randint(1, 100000)), ("Body", self.body(topic))]
        else:
            topic = None
            if post_type == 2 and self.question_ids:
                attrs.append(("ParentId", rng.choice(self.question_ids[-1000:])))
            attrs += [("CreationDate", created), ("Score", rng.randint(-5, 50)), ("Body", self.body(None))]
        if rng.random() < 0.97:
            attrs.append(("OwnerUserId", rng.randint(1, 2_000_000)))
        else:
            attrs.append(("OwnerDisplayName", rng.choice(("user123", "Zoë", "anon"))))
        attrs.append(("LastActivityDate", created + timedelta(days=rng.randint(0, 900))))
        if post_type == 1:
            title = self.sentence(topic)[:150]
            tag_text = "".join(f"<{t}>" for t in tags) if self.o.tag_form == "angle" else "|" + "|".join(tags) + "|"
            attrs += [("Title", title), ("Tags", tag_text), ("AnswerCount", rng.randint(0, 12))]
        attrs += [("CommentCount", rng.randint(0, 9)), ("ContentLicense", "CC BY-SA 4.0")]
        text = " ".join(
            f'{k}="{v.isoformat(timespec="milliseconds") if isinstance(v, datetime) else xml_attr(str(v))}"'
            for k, v in attrs
        )
        close = "></row>" if rng.random() < 0.001 else " />"
        if self.o.malformed_rate and rng.random() < self.o.malformed_rate:
            return rng.choice((f"  <row {text}", f'  <row Id="x{post_id}" {text[text.index(" ") + 1:]}{close}',
                               f"  <row {text} & />", "  garbage that is not xml"))
        return f"  <row {text}{close}"


def generate(output: str, options: Options, storage_options: dict | None = None) -> dict:
    """Write a synthetic Posts.xml to ``output`` (a path or fsspec URL); return what was written."""
    writer = _Writer(options)
    nl = options.line_ending
    header = ("\ufeff" if options.bom else "") + '<?xml version="1.0" encoding="utf-8"?>' + nl + "<posts>" + nl
    written = rows = 0
    # Rows are written in small batches; a few swap places so that Ids are not always in order.
    with fsspec.open(output, "wb", **(storage_options or {})) as f:
        f.write(data := header.encode())
        written += len(data)
        while written < options.size:
            batch = [writer.row() for _ in range(200)]
            for i in range(0, len(batch) - 1, 37):
                batch[i], batch[i + 1] = batch[i + 1], batch[i]
            data = (nl.join(batch) + nl).encode()
            f.write(data)
            written += len(data)
            rows += len(batch)
        f.write(data := b"</posts>")  # no final newline, as in the real dumps
        written += len(data)
    return {"path": output, "bytes": written, "rows": rows, "seed": options.seed}


def parse_size(text: str | int) -> int:
    """'200MB', '1GiB' or a number of bytes."""
    return parse_bytes(text) if isinstance(text, str) else int(text)
