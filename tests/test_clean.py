"""Cleaning: the fast HTML-to-text path gives BeautifulSoup's tokens; tags in both forms."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.feature_extraction.text import HashingVectorizer

from pipeline import clean, questions
from pipeline.generate import Options, _Writer

tokens = HashingVectorizer(stop_words="english").build_analyzer()


def to_text(body: str) -> str:
    return clean.bodies_to_text(pa.array([body], pa.string()))[0].as_py()

TRICKY = [
    "<p>a<!-- hidden words --> b</p>",
    "<script>var hidden = 1;</script><p>shown</p>",
    "<style>.hidden { color: red }</style>text",
    '<a title="x > y" href="u">link text</a>',
    "<p>1 < 2 and 3 > 2 &amp; &lt;tag&gt; &copy; &nbsp;x</p>",
    "<![CDATA[kept words]]> after",
    "<!DOCTYPE html><?php echo 1 ?>visible",
    "<pre><code>if a&lt;b: print(&quot;x&quot;)\n</code></pre>",
    "<p>unclosed <b>bold",
    "word<br>next<br/>line<hr />end",
    "<ul><li>one</li><li>two</li></ul>",
    "<blockquote><p>quoted &#x27;text&#39; &#8212; dash</p></blockquote>",
    "<p>naïve café 日本語 emoji🙂</p>",
    "",
]


@pytest.mark.parametrize("body", TRICKY)
def test_fast_path_gives_beautifulsoup_tokens_on_tricky_bodies(body):
    assert tokens(to_text(body)) == tokens(clean.html_to_text_bs4(body))


def test_fast_path_gives_beautifulsoup_tokens_on_generated_bodies():
    writer = _Writer(Options(size=0, seed=3))
    bodies = [writer.body(topic) for topic in ["python", "r", "sql", None] * 500]
    different = [b for b in bodies if tokens(to_text(b)) != tokens(clean.html_to_text_bs4(b))]
    assert not different, different[:3]


# Stack Exchange bodies are sanitised HTML: text never holds a raw '<', '>' or '&' (they come as
# &lt; &gt; &amp;), so random text here has none; markup comes from the tags and entities the sites use.
@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(
    st.text(alphabet="abc xyz;#/=\"'!-", max_size=12),
    st.sampled_from(["<p>", "</p>", "<code>", "</code>", "<br/>", "&amp;", "&lt;", "&gt;", "&quot;", "&#39;",
                     "&#x27;", "&nbsp;", "<!-- c -->", '<a href="x?a=1&amp;b=2">', "</a>"]),
), max_size=12))
def test_fast_path_tokens_on_random_markup(parts):
    body = "".join(parts)
    assert tokens(to_text(body)) == tokens(clean.html_to_text_bs4(body))


@pytest.mark.parametrize("raw, expected", [
    ("<python><pandas>", ["python", "pandas"]),
    ("|python|pandas|", ["python", "pandas"]),
    ("<c++><c#><.net>", ["c++", "c#", ".net"]),
    ("|c++|", ["c++"]),
    ("", []),
    (None, []),
])
def test_split_tags(raw, expected):
    assert clean.tag_lists(pa.array([raw], pa.string()))[0].as_py() == expected


def test_clean_partition_keeps_lists_as_lists():
    frame = questions.META.copy()
    cleaned = clean.clean_partition(frame)
    assert list(cleaned.columns) == list(clean.CLEAN_META.columns)
    assert dict(cleaned.dtypes) == dict(clean.CLEAN_META.dtypes)
    assert str(cleaned["tags"].dtype).startswith("list<")
