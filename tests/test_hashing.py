"""Hashing: the vectorised features equal scikit-learn's HashingVectorizer's, entry for entry."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.utils import murmurhash3_32

from pipeline import clean, hashing
from pipeline.generate import Options, _Writer

# Characters where a shortcut would go wrong: Python lowercases İ to two characters and Σ by
# context, the Kelvin sign to an ASCII k; ß, ǅ and Greek have their own cases; dashes, quotes and
# emoji separate words, CJK and combining marks do not or do (U+0301 is not a word character).
TRICKY = [
    "İstanbul İİ ΑΣ ΣΑ όλα Σ",
    "ΟΔΟΣ ΣΑΣ Σ",
    "Kelvin K ß ǅ ǅa MASSE",
    "naïve café 日本語 emoji🙂 – μ “quoted” it’s",
    "e\u0301te\u0301 x\u0301y",
    "a b cd under_score foo-bar 3.14 x2 ½ ²³ Ⅻ",
    "x" * 200 + " " + "y" * 65 + " " + "z" * 64 + " " + "é" * 40,
    "",
    "The the THE and a an is it",
]


def same(texts: list[str]) -> None:
    expected = hashing.vectorizer().transform(texts)
    got = hashing.transform(pa.array(texts, pa.large_string()))
    assert got.shape == expected.shape
    assert np.array_equal(got.indptr, expected.indptr)
    assert np.array_equal(got.indices, expected.indices)
    assert np.array_equal(got.data, expected.data)  # exactly: the same counts, normalised the same way


def test_tricky_texts_give_scikit_learns_features():
    same(TRICKY)


@pytest.mark.parametrize("text", TRICKY)
def test_each_tricky_text_alone(text):
    same([text])


def test_generated_question_texts_give_scikit_learns_features():
    writer = _Writer(Options(size=0, seed=5))
    bodies = [writer.body(topic) for topic in ["python", "r", "sql", None] * 500]
    texts = clean.bodies_to_text(pa.array(bodies, pa.large_string())).to_pylist()
    same(texts)


def test_many_kinds_of_separator_in_one_block():
    symbols = [chr(c) for c in [*range(0x2190, 0x2200), *range(0x2500, 0x2540), *range(0x1F600, 0x1F620)]]
    same([f"word{i}{symbol}next{i} {symbol}x{symbol}yz" for i, symbol in enumerate(symbols)])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=60), min_size=1, max_size=8))
def test_any_unicode_text_gives_scikit_learns_features(texts):
    same(texts)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=90), max_size=20))
def test_murmurhash_equals_scikit_learns(tokens):
    strings = [t.decode("latin-1") for t in tokens]  # any bytes, as valid UTF-8 strings
    expected = [murmurhash3_32(s.encode(), seed=0) for s in strings]
    assert hashing.murmurhash(pa.array(strings, pa.large_string())).tolist() == expected


def test_murmurhash_of_a_sliced_array():
    strings = pa.array(["skipped", "ab", "abcde", "x" * 70], pa.large_string())
    assert hashing.murmurhash(strings.slice(1)).tolist() == [murmurhash3_32(s.encode(), seed=0)
                                                             for s in ["ab", "abcde", "x" * 70]]
