"""Hashing: the classifier's features for a block of texts — HashingVectorizer's, computed at once.

scikit-learn's ``HashingVectorizer`` lowercases and tokenises each text with a Python regex and
hashes each token in a loop: 1.5 of the ~6 CPU seconds of a run. Here a block is lowercased and
split into tokens by Arrow kernels and every distinct token is hashed at once, MurmurHash3 written in numpy:
the same matrix, entry for entry (tests compare the two). What a word character is comes from
Python, for exactly the characters the block holds; texts whose characters Arrow would lowercase
differently from Python (or that hold a capital sigma, which Python lowercases by context) take
scikit-learn's own path.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp
from dask_ml.feature_extraction.text import HashingVectorizer
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS
from sklearn.preprocessing import normalize
from sklearn.utils import murmurhash3_32

N_FEATURES = 2**20
STOP_WORDS = pa.array(sorted(ENGLISH_STOP_WORDS), pa.large_string())
# Every byte of an ASCII character that is not a word character → a space; other bytes kept.
SPACES = np.array([c if c >= 0x80 or chr(c).isalnum() or chr(c) == "_" else 0x20 for c in range(256)], np.uint8)
LONG = 64  # bytes: longer tokens (rare) are hashed one by one
C1, C2 = np.uint32(0xCC9E2D51), np.uint32(0x1B873593)


def vectorizer() -> HashingVectorizer:
    """The vectorizer whose features ``transform`` computes (and the saved model applies)."""
    return HashingVectorizer(n_features=N_FEATURES, stop_words="english")


def transform(texts: pa.Array) -> sp.csr_matrix:
    """``vectorizer().transform(texts)``, for Arrow strings."""
    texts = pc.fill_null(texts.cast(pa.large_string()), "")
    data = np.frombuffer(texts.buffers()[2], np.uint8) if len(texts) else np.empty(0, np.uint8)
    characters = sorted(set(data[data >= 0x80].tobytes().decode()))  # a valid text's non-ASCII bytes stay valid
    arrow_lower = pc.utf8_lower(pa.array(characters, pa.large_string())).to_pylist()
    differ = [c for c, lower in zip(characters, arrow_lower) if c == "\u03a3" or c.lower() != lower]
    fallback = (pc.match_substring_regex(texts, _any_of(differ)).to_numpy(zero_copy_only=False) if differ
                else np.zeros(len(texts), bool))
    lowered = pc.utf8_lower(texts.filter(pa.array(~fallback)))
    separators = sorted({d for c in characters for d in c.lower() if not d.isalnum()})
    if separators:  # one RE2 pass whatever their number (a plain replace each costs 0.7 ms per separator)
        lowered = pc.replace_substring_regex(lowered, _any_of(separators), " ")
    fast = _hashed(lowered)
    if not fallback.any():
        return fast
    slow = vectorizer().transform(texts.filter(pa.array(fallback)).to_pylist())
    order = np.argsort(np.concatenate([np.flatnonzero(~fallback), np.flatnonzero(fallback)]), kind="stable")
    return sp.vstack([fast, slow], format="csr")[order]


def _any_of(characters) -> str:
    """An RE2 class of exactly these characters."""
    return "[" + "".join(f"\\x{{{ord(c):x}}}" for c in characters) + "]"


def _hashed(lowered: pa.Array) -> sp.csr_matrix:
    """Token counts of lowercased texts, hashed, signed and l2-normalised as HashingVectorizer does.

    Texts whose non-ASCII characters are all word characters: the ASCII ones that are not become
    spaces, and the words are what whitespace separates.
    """
    validity, offsets, data = lowered.buffers()
    spaced = pa.Array.from_buffers(pa.large_string(), len(lowered), [validity, offsets, pa.py_buffer(
        SPACES[np.frombuffer(data, np.uint8)])], offset=lowered.offset)
    parts = pc.ascii_split_whitespace(spaced)
    # Words repeat (3,000 texts of Zipf-distributed words hold ~15 times fewer distinct words than words;
    # generated dumps far fewer still): each distinct word is measured, looked up and hashed once.
    encoded = pc.dictionary_encode(parts.flatten())
    words, which = encoded.dictionary, encoded.indices.to_numpy()
    usable = pc.and_(pc.greater_equal(pc.utf8_length(words), 2), pc.invert(pc.is_in(words, STOP_WORDS)))
    keep = usable.to_numpy(zero_copy_only=False)[which]
    which, row = which[keep], pc.list_parent_indices(parts).to_numpy()[keep]
    h = murmurhash(words)
    index = np.where(h == np.iinfo(np.int32).min, (2**31 - 1 - (N_FEATURES - 1)) % N_FEATURES,
                     np.abs(h.astype(np.int64)) % N_FEATURES).astype(np.int32)
    sign = np.where(h >= 0, 1.0, -1.0)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(row, minlength=len(lowered)))]).astype(np.int32)
    matrix = sp.csr_matrix((sign[which], index[which], indptr), shape=(len(lowered), N_FEATURES))
    matrix.sum_duplicates()
    return normalize(matrix, norm="l2", copy=False) if len(lowered) else matrix


def _rotl(x: np.ndarray, r: int) -> np.ndarray:
    return (x << np.uint32(r)) | (x >> np.uint32(32 - r))


def _mix(k: np.ndarray) -> np.ndarray:
    return _rotl(k * C1, 15) * C2


def murmurhash(tokens: pa.Array) -> np.ndarray:
    """MurmurHash3 (x86, 32 bits, seed 0) of each string's UTF-8 bytes, as signed ints like scikit-learn's."""
    if not len(tokens):
        return np.empty(0, np.int32)
    offsets = np.frombuffer(tokens.buffers()[1], np.int64)[tokens.offset : tokens.offset + len(tokens) + 1]
    data = np.frombuffer(tokens.buffers()[2], np.uint8)[: offsets[-1]]
    windows = np.lib.stride_tricks.sliding_window_view(np.concatenate([data, np.zeros(4, np.uint8)]), 4)
    starts, lengths = offsets[:-1], np.diff(offsets)

    def word(at: np.ndarray) -> np.ndarray:  # the little-endian 32-bit word at each byte offset
        return np.ascontiguousarray(windows[at]).view("<u4").ravel()

    h = np.zeros(len(tokens), np.uint32)
    blocks = lengths >> 2
    alive = np.flatnonzero((blocks > 0) & (lengths <= LONG))
    for j in range(LONG // 4):
        alive = alive[blocks[alive] > j]
        if not len(alive):
            break
        h[alive] = _rotl(h[alive] ^ _mix(word(starts[alive] + 4 * j)), 13) * np.uint32(5) + np.uint32(0xE6546B64)
    tail = lengths & 3
    mask = ((np.uint64(1) << (tail.astype(np.uint64) * np.uint64(8))) - np.uint64(1)).astype(np.uint32)
    h ^= _mix(word(starts + 4 * blocks) & mask)
    h ^= lengths.astype(np.uint32)
    h ^= h >> np.uint32(16)
    h *= np.uint32(0x85EBCA6B)
    h ^= h >> np.uint32(13)
    h *= np.uint32(0xC2B2AE35)
    h ^= h >> np.uint32(16)
    h = h.view(np.int32)
    for i in np.flatnonzero(lengths > LONG):
        h[i] = murmurhash3_32(tokens[int(i)].as_py().encode(), seed=0)
    return h
