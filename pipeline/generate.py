"""Synthetic Posts.xml that looks like a real Stack Exchange dump, deterministic for a seed.

The demo, the tests and the benchmarks run on it, so it carries the quirks of real dumps:
UTF-8 BOM, CRLF, XML-escaped HTML bodies with code, links and entities, answers without
Tags/Title, PostTypeIds 1-7, rows out of Id order, rows ending in ``></row>``, missing
OwnerUserId, empty bodies, non-ASCII text, very long lines, and Zipf-distributed tags in either
written form.

Its text has the statistics of real dumps (tests/test_generate.py holds it to the real files):
the benchmarks time hashing and HTML stages whose cost depends on how many distinct words there
are, so the vocabulary must keep growing as real text's does (Heaps' law), not repeat a word list.
Words are common English words for the head and, for the unbounded tail, made-up words built
from syllables, one per rank of a heavy-tailed (discrete Pareto) rank distribution. Python and R
questions draw a small, varying share of topic words and topic code, so the classifier has a
signal about as strong as on real questions, not a trivial one.
"""

from __future__ import annotations

import bisect
import itertools
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from dask.utils import parse_bytes

from pipeline.storage import open_file

# The most frequent English words of Stack Exchange text, most frequent first (their Zipf head).
ENGLISH = (
    "the to i a is and of in it that you this for be on with have not but can if my as are or do an so "
    "use what at from there will would by when which one get like any way how just all should also some "
    "only need then no was me using want has here question they want know other more does could up "
    "about out same first because than time work make new think see file find answer try set code "
    "we your data each value help where problem thanks into change just already even way same used "
    "something been two these after example able possible without between those still right doesn others "
    "line number list run result output error following add case well really issue much back since look "
    "different name seems trying why through thing both text type method function server user page "
    "system however another version better over multiple while below above call create read write test "
    "object string information post instead second last order test found show every check current")
ENGLISH = tuple(dict.fromkeys(ENGLISH.split()))
SYLLABLES = tuple(
    c + v for c in ("", "b", "c", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z",
                    "br", "ch", "st", "tr", "pl", "gr", "sh", "th") for v in ("a", "e", "i", "o", "u", "ar", "en"))
NON_ASCII_WORDS = ("café", "naïve", "façade", "Zürich", "日本語", "données", "μ", "–", "emoji🙂",
                   "Größe", "ñandú")
TOPIC_WORDS = {
    "python": "python def import pandas numpy dict tuple lambda pip virtualenv django flask self print range len "
    "iterator generator decorator pytest asyncio comprehension none elif kwargs args init str int class module "
    "traceback keyerror typeerror venv conda jupyter matplotlib scipy".split(),
    "r": "dataframe ggplot2 dplyr tidyverse vector factor cran rstudio tibble apply sapply lapply mutate "
    "summarise na rmarkdown shiny levels plot nrow ncol rbind cbind tapply aes geom_point lm glm rownames "
    "colnames paste0 gsub subset".split(),
    "javascript": "javascript node npm promise async await dom react callback json browser const let var "
    "undefined webpack onclick addeventlistener jquery".split(),
    "java": "java spring maven jvm interface exception thread gradle jar public static void arraylist hashmap "
    "nullpointerexception hibernate".split(),
    "sql": "sql query join select where index postgres mysql transaction inner outer group primary foreign "
    "constraint procedure".split(),
}
# Code lines per topic; {w} is an identifier drawn from the vocabulary, so code adds new words too.
CODE_LINES = {
    "python": ["import {w}", "from {w} import {w}", "{w} = {w}({w}, {n})", "def {w}(self, {w}):", "    return {w}[{n}]",
               "for {w} in range({n}):", "    print(f\"{{{w}}}: {{{w}}}\")", "if {w} < {n} and {w} > 0:",
               "df = pd.read_csv('{w}.csv')", "{w}.append({w})"],
    "r": ["library({w})", "{w} <- c({n}, {n}, {n})", "{w} <- read.csv(\"{w}.csv\")", "if ({w} < {n} & {w} > 0) {{",
          "df %>% filter({w} > {n}) %>% mutate({w} = {w} * 2)", "ggplot({w}, aes(x = {w}, y = {w})) + geom_point()",
          "summary(lm({w} ~ {w}, data = {w}))", "}}"],
    "javascript": ["const {w} = await fetch({w});", "if ({w} < {n} && {w} > 0) {{", "console.log(`${{{w}}}`);", "}}"],
    "java": ["List<String> {w} = new ArrayList<>();", "if ({w} < {n} && {w} > 0) {{", "System.out.println({w});", "}}"],
    "sql": ["SELECT {w}, {w} FROM {w} WHERE {w} < {n} AND {w} <> 'x';", "CREATE INDEX {w} ON {w} ({w});"],
    None: ["$ {w} --{w} {n}", "{w}: {w} ({n})", "<{w} {w}=\"{w}\">", "Error: {w} {w} ({w})"],
}
HEAD_TAGS = [
    "javascript", "python", "java", "c#", "php", "r", "android", "html", "jquery", "c++", "css", "ios",
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
TAGS_PER_QUESTION = (1, 2, 3, 4, 5)
TAGS_PER_QUESTION_WEIGHTS = (15, 27, 29, 18, 11)
POST_TYPES = (1, 2, 3, 4, 5, 6, 7)
POST_TYPE_WEIGHTS = (38, 56, 0.5, 2, 2, 0.5, 1)
FIRST_DATE = datetime(2008, 7, 31)
SPAN_SECONDS = int((datetime(2024, 12, 31) - FIRST_DATE).total_seconds())
# Calibrated on tests/data/real-dumps (tests/test_generate.py): the share of tokens that are head
# English words, the tail's Pareto exponent and scale (the Heaps curve), words per body (log-normal).
ENGLISH_SHARE = 0.45
TAIL_EXPONENT = 0.85  # P(rank > r) ~ (1 + r/scale)^-exponent: distinct words grow about as n^0.55
TAIL_SCALE = 150.0
WORDS_MEDIAN, WORDS_SIGMA = 95, 0.85
CACHED_WORDS = 1 << 16


@dataclass(frozen=True)
class Options:
    """What to generate. ``size`` is the target file size in bytes (the last row may overshoot)."""

    size: int
    seed: int = 0
    tag_form: str = "angle"  # "angle": <a><b> (dumps before 2024) | "pipe": |a|b| (2024 on)
    line_ending: str = "\r\n"  # official dumps use CRLF
    bom: bool = True
    n_tags: int = 5000
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


def made_up_word(rank: int) -> str:
    """The word of a tail rank: its digits in base len(SYLLABLES), one syllable each (bijective, so unbounded)."""
    syllables = []
    rank += 1
    while rank:
        rank, digit = divmod(rank - 1, len(SYLLABLES))
        syllables.append(SYLLABLES[digit])
    return "".join(syllables)


class _Vocabulary:
    """Draws words: English head words by Zipf rank, else tail words by a discrete Pareto rank.

    ``offset`` shifts a topic's tail into ranks of its own, so python and r questions have words
    the others rarely use.
    """

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        head = 1.0 / np.arange(1, len(ENGLISH) + 1)
        self.head_cdf = np.cumsum(head) / head.sum()
        self.head = np.array(ENGLISH, dtype=object)
        self.tail = np.array([made_up_word(r) for r in range(CACHED_WORDS)], dtype=object)

    def tail_ranks(self, n: int) -> np.ndarray:
        u = self.rng.random(n)
        return np.minimum(TAIL_SCALE * (u ** (-1.0 / TAIL_EXPONENT) - 1.0), 1e12).astype(np.int64)

    def tail_words(self, ranks: np.ndarray) -> np.ndarray:
        rare = ranks >= CACHED_WORDS
        words = self.tail[np.minimum(ranks, CACHED_WORDS - 1)]
        if rare.any():
            words[rare] = [made_up_word(int(r)) for r in ranks[rare]]
        return words

    def words(self, n: int, topic_share: float = 0.0, topic: str | None = None, offset: int = 0) -> list[str]:
        roll = self.rng.random(n)
        out = self.tail_words(self.tail_ranks(n))
        head = roll < ENGLISH_SHARE
        out[head] = self.head[np.searchsorted(self.head_cdf, self.rng.random(int(head.sum())))]
        if topic_share:
            chosen = roll >= 1.0 - topic_share
            k = int(chosen.sum())
            words = TOPIC_WORDS[topic]
            keyword = self.rng.random(k) < 0.5  # half the topic's tokens are its keywords, half its own tail
            mine = self.tail_words(self.tail_ranks(k) // 8 + offset)
            mine[keyword] = np.array(words, dtype=object)[
                self.tail_ranks(int(keyword.sum())) % len(words)]
            out[chosen] = mine
        return out.tolist()


class _Writer:
    """Makes one row after another from a seeded random source."""

    def __init__(self, options: Options):
        self.o = options
        self.rng = random.Random(options.seed)
        self.vocabulary = _Vocabulary(np.random.default_rng(options.seed))
        tail = [f"tag-{i}" for i in range(max(0, options.n_tags - len(HEAD_TAGS)))]
        self.tags = HEAD_TAGS + tail
        # Zipf weights over tag rank, as tag popularity is in real dumps.
        self.tag_cdf = list(itertools.accumulate(1.0 / (rank + 1) ** 0.95 for rank in range(len(self.tags))))
        self.type_cdf = list(itertools.accumulate(POST_TYPE_WEIGHTS))
        self.count_cdf = list(itertools.accumulate(TAGS_PER_QUESTION_WEIGHTS))
        self.next_id = 1
        self.question_ids: list[int] = []
        self.question_topics: list[str | None] = []
        # Each topic's own tail words start far out in the shared tail.
        self.offsets = {t: 10_000_000 * (i + 1) for i, t in enumerate(TOPIC_WORDS)}

    def pick_tags(self) -> list[str]:
        count = TAGS_PER_QUESTION[bisect.bisect(self.count_cdf, self.rng.random() * self.count_cdf[-1])]
        total = self.tag_cdf[-1]
        chosen: list[str] = []
        while len(chosen) < count:
            related = next((RELATED[t] for t in chosen if t in RELATED), None)
            if related and self.rng.random() < 0.6:
                tag = self.rng.choice(related)
            else:
                tag = self.tags[bisect.bisect(self.tag_cdf, self.rng.random() * total)]
            # python and r rarely share a question, as on Stack Overflow.
            if tag not in chosen and not ({tag} | set(chosen)) >= {"python", "r"}:
                chosen.append(tag)
        return chosen

    def topic_share(self, topic: str | None) -> float:
        """How much of a text is about its topic: often a little, sometimes nothing, now and then a lot."""
        if topic is None or self.rng.random() < 0.1:
            return 0.0
        return min(0.5, self.rng.expovariate(1 / 0.16))

    def text(self, n: int, topic: str | None, share: float) -> str:
        """``n`` words in sentences."""
        return self.sentences(self.vocabulary.words(n, share, topic, self.offsets.get(topic, 0)))

    def sentences(self, words: list[str]) -> str:
        """The words in sentences of 5-25 words."""
        rng = self.rng
        n = len(words)
        if rng.random() < 0.03:
            words[rng.randrange(n)] = rng.choice(NON_ASCII_WORDS)
        sentences, start = [], 0
        while start < n:
            end = min(n, start + rng.randint(5, 25))
            sentence = " ".join(words[start:end])
            sentences.append(sentence[:1].upper() + sentence[1:] + rng.choice(".....?!:"))
            start = end
        return " ".join(sentences)

    def code_block(self, topic: str | None, share: float) -> str:
        rng = self.rng
        flavour = topic if topic in CODE_LINES and rng.random() < 0.6 else None
        lines = [rng.choice(CODE_LINES[flavour]) for _ in range(min(40, int(rng.lognormvariate(1.5, 0.7)) + 1))]
        names = iter(self.vocabulary.words(sum(line.count("{w}") for line in lines), share, topic,
                                           self.offsets.get(topic, 0)))
        code = "\n".join(line.replace("{n}", str(rng.randint(0, 99))).replace("{w}", "{}").format(
            *(next(names) for _ in range(line.count("{w}")))) for line in lines)
        return "<pre><code>" + html_text(code) + "\n</code></pre>"

    def body(self, topic: str | None) -> str:
        rng = self.rng
        if rng.random() < 0.005:
            return ""
        share = self.topic_share(topic)
        n_words = max(3, int(rng.lognormvariate(0, WORDS_SIGMA) * WORDS_MEDIAN))
        words = self.vocabulary.words(n_words, share, topic, self.offsets.get(topic, 0))
        parts = []
        while words:
            n = rng.randint(15, 70)
            text = self.sentences(words[:n])
            del words[:n]
            roll = rng.random()
            if roll < 0.12:
                word = self.vocabulary.words(1, share, topic, self.offsets.get(topic, 0))[0]
                text = f"{text} Try <code>{html_text(word)}()</code> and <em>see</em>."
            elif roll < 0.13:
                text = f"{text} Tom &amp; Jerry&#39;s &quot;way&quot;."
            elif roll < 0.19:
                text = f"{text}<br>Then <strong>{self.text(rng.randint(4, 12), topic, share)}</strong>"
            parts.append(f"<p>{text}</p>")
        if rng.random() < 0.45:
            word = self.vocabulary.words(1)[0]
            query = "?a=1&amp;b=2" if rng.random() < 0.2 else ""
            link = f'See <a href="https://example.com/{word}{query}" rel="nofollow">{word}</a>.'
            parts.insert(rng.randint(0, len(parts)), f"<p>{link}</p>")
        if rng.random() < (0.4 if topic is not None else 0.12):
            parts.insert(rng.randint(0, len(parts)), self.code_block(topic, share))
        if rng.random() < 0.05:
            parts.append("<ul>" + "".join(f"<li>{self.text(rng.randint(3, 15), topic, share)}</li>"
                                          for _ in range(3)) + "</ul>")
        if rng.random() < 0.0005:  # real dumps have bodies of tens of kilobytes
            parts.append("<p>" + self.text(5000, topic, share) + "</p>")
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
            self.question_topics.append(topic)
            if rng.random() < 0.5:
                attrs.append(("AcceptedAnswerId", post_id + rng.randint(1, 50)))
            attrs += [("CreationDate", created), ("Score", rng.randint(-5, 50)),
                      ("ViewCount", rng.randint(1, 100000)), ("Body", self.body(topic))]
        else:
            topic = None
            if post_type == 2 and self.question_ids:
                parent = rng.randrange(max(0, len(self.question_ids) - 1000), len(self.question_ids))
                attrs.append(("ParentId", self.question_ids[parent]))
                topic = self.question_topics[parent]  # an answer is about its question
            attrs += [("CreationDate", created), ("Score", rng.randint(-5, 50)), ("Body", self.body(topic))]
        if rng.random() < 0.97:
            attrs.append(("OwnerUserId", rng.randint(1, 2_000_000)))
        else:
            attrs.append(("OwnerDisplayName", rng.choice(("user123", "Zoë", "anon"))))
        attrs.append(("LastActivityDate", created + timedelta(days=rng.randint(0, 900))))
        if post_type == 1:
            share = self.topic_share(topic)
            title = self.text(rng.randint(6, 16), topic, share)[:150]
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
    with open_file(output, "wb", storage_options or {}) as f:
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
