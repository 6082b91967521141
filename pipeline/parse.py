"""Parse: a block of Posts.xml → the attributes of its questions, counts per post type, malformed lines.

Every line is checked at once with Arrow's compute kernels (RE2, in C++, without the GIL): a
row is ``<row name="value" .../>`` (or ``<row ...></row>``) whose values hold only text and
well-formed references. Such a row splits at its quotes into names and values, so every
attribute of every row comes out of one vectorised split; XML references are then decoded
column by column. This accepts and rejects the same rows as ElementTree, the blog's parser
(tests compare the two), with two exceptions never seen in the dumps: single-quoted values are
rejected, and a repeated attribute is not (the last one wins). The rare lines that fail are
explained one by one in Python (``reason``), with the same rules. The lines around the rows (the
declaration, a ``<!DOCTYPE``, the root's tags) are structure; a row that shares its line with a
root tag, as in files re-serialized by other tools (``<posts><row …/>``), is still a row.
"""

from __future__ import annotations

import codecs
import re
from collections import Counter
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

QUESTION = "1"
SNIPPET = 120
ROOT_TAGS = pa.array(["<posts>", "</posts>"])
WHITESPACE = " \t\r\n"  # XML's whitespace: Python's str.strip() and \s take more

_S = r"[ \t\r\n]"
_NAME = r"[A-Za-z_][\w.-]*"
_REFERENCE = r"&(?:lt|gt|amp|quot|apos|#[0-9]+|#x[0-9a-fA-F]+);"
_TEXT = r'[^"<&\x00-\x08\x0B\x0C\x0E-\x1F\x{FFFE}\x{FFFF}]*'  # no character XML forbids
_VALUE = rf"{_TEXT}(?:{_REFERENCE}{_TEXT})*"
# A whole row, its values included (RE2 syntax, used by Arrow: no backtracking, linear time).
ROW = rf'^<row(?:{_S}+{_NAME}="{_VALUE}")*{_S}*(?:/>|>{_S}*</row>)$'

# The same grammar in Python's re, split in steps, to say why a line is not a row.
ROW_SHAPE = re.compile(rf'<row((?:{_S}+{_NAME}="[^"<]*")*){_S}*(?:/>|>{_S}*</row>)', re.ASCII)
ATTRIBUTE = re.compile(rf'({_NAME})="([^"]*)"', re.ASCII)
FORBIDDEN_CHARACTER = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
BAD_ENTITY = re.compile(r"&(?!(?:lt|gt|amp|quot|apos|#[0-9]+|#x[0-9a-fA-F]+);)")
ENTITY = re.compile(r"&(#x[0-9a-fA-F]+|#[0-9]+|lt|gt|amp|quot|apos);")
UNUSUAL_REFERENCE = r"&#(?:[0-9]|x[^AD]|x[AD][^;])"  # any but &#xA; and &#xD; (RE2)
CHARACTER_REFERENCE = re.compile(r"&#(x[0-9a-fA-F]+|[0-9]+);")
NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"', "apos": "'"}
# The references almost every escaped value is made of, decoded by plain replacement;
# "&amp;" last, so that "&amp;lt;" becomes "&lt;" and not "<".
COMMON = (("&lt;", "<"), ("&gt;", ">"), ("&quot;", '"'), ("&apos;", "'"), ("&#xA;", "\n"), ("&#xD;", "\r"),
          ("&amp;", "&"))
# What literal tabs and carriage returns become, then COMMON: the whole decoding by replacement, in order.
REPLACED = (("\t", " "), ("\r", " "), *COMMON)
# Of those, the ones few values hold (none in most blocks of the dumps): only the values that hold one go
# through every replacement, the rest through the others. None of the replacements makes a pattern appear.
RARE = ("\t", "\r", "&apos;", "&#xD;")
RARE_PATTERN = r"[\t\r]|&apos;|&#xD;"


class Malformed(NamedTuple):
    """A line that is not a usable row: where it is, why, and its start."""

    line: int  # 1-based, within the block it was read from
    reason: str
    text: str


class Parsed(NamedTuple):
    """What one block of lines holds; the questions column by column."""

    lines: pa.Array  # every line, stripped of whitespace
    post_types: Counter  # post type id (str) → rows
    malformed: list[Malformed]
    question_lines: np.ndarray  # 1-based line number of each question
    attributes: dict[str, pa.Array]  # attribute name → decoded value per question, null where absent

    def question(self, i: int) -> dict[str, str]:
        """The attributes of question ``i`` as a dict, as ElementTree gives a row's (what the tests compare)."""
        return {name: values[i].as_py() for name, values in self.attributes.items() if values[i].is_valid}


def _entity(match: re.Match) -> str:
    name = match.group(1)
    if name[0] == "#":
        return chr(int(name[2:], 16) if name[1] == "x" else int(name[1:]))
    return NAMED[name]


def unescape(value: str) -> str:
    """Decode an attribute value as XML does (literal tabs and carriage returns become spaces, references decoded)."""
    return ENTITY.sub(_entity, value.replace("\t", " ").replace("\r", " "))


def is_xml_char(code: int) -> bool:
    """Whether XML 1.0 allows this character (and so a reference to it)."""
    return code in (0x9, 0xA, 0xD) or 0x20 <= code <= 0xD7FF or 0xE000 <= code <= 0xFFFD or 0x10000 <= code <= 0x10FFFF


def bad_reference(line: str) -> bool:
    return any(
        not is_xml_char(int(ref[1:], 16) if ref[0] == "x" else int(ref)) for ref in CHARACTER_REFERENCE.findall(line)
    )


def reason(line: str) -> str | None:
    """Why ``line`` (stripped) is not a usable row, or None if it is one."""
    match = ROW_SHAPE.fullmatch(line)
    if match is None:
        if line.startswith("<row"):
            return "not a well-formed <row .../> element (unclosed, unquoted or '<' in a value)"
        return "not a <row> element"
    if FORBIDDEN_CHARACTER.search(line):
        return "a character XML does not allow (a control character?)"
    if "&" in line and (BAD_ENTITY.search(line) or bad_reference(line)):
        return "undefined or broken entity (a bare '&'?)"
    attributes = dict(ATTRIBUTE.findall(match.group(1)))
    if not attributes.get("Id", "").isdigit():
        return "Id missing or not an integer"
    if not attributes.get("PostTypeId", "").isdigit():
        return "PostTypeId missing or not an integer"
    return None


def _is_structure(lines: pa.Array) -> np.ndarray:
    """The lines around the rows: the XML declaration, a document type, <posts>, </posts>, blank lines."""
    around = pc.or_(pc.starts_with(lines, "<?xml"), pc.starts_with(lines, "<!DOCTYPE"))
    return pc.or_(pc.is_in(lines, pa.array(["", *ROOT_TAGS.to_pylist()])), around).to_numpy(zero_copy_only=False)


def _unwrapped(lines: pa.Array) -> pa.Array:
    """Lines without the root's tags where a row shares a line with them, as in a re-serialized file
    (``<posts><row …/>``)."""
    wrapped = pc.and_not(pc.or_(pc.starts_with(lines, "<posts>"), pc.ends_with(lines, "</posts>")),
                         pc.is_in(lines, ROOT_TAGS))
    if not pc.any(wrapped).as_py():
        return lines
    bare = pc.replace_substring_regex(lines.filter(wrapped), f"^<posts>{_S}*|{_S}*</posts>$", "")
    return pc.replace_with_mask(lines, wrapped, bare)


def _unusual_references(values: pa.Array) -> np.ndarray:
    """Values with character references other than ``&#xA;`` and ``&#xD;`` (rare: decoded in Python)."""
    return pc.fill_null(pc.match_substring_regex(values, UNUSUAL_REFERENCE), False).to_numpy(zero_copy_only=False)


def _decode(values: pa.Array) -> pa.Array:
    """XML-decode a column of raw attribute values."""
    escaped = pc.fill_null(pc.match_substring_regex(values, "[&\t\r]"), False)
    if not pc.any(escaped).as_py():
        return values
    rare = pc.fill_null(pc.match_substring_regex(values, RARE_PATTERN), False)
    decoded = replaced_where(values, escaped, [(ref, char) for ref, char in REPLACED if ref not in RARE])
    decoded = replaced_where(values, rare, REPLACED, into=decoded)
    unusual = np.flatnonzero(_unusual_references(values))
    if len(unusual):
        decoded = decoded.to_pylist()
        for i, value in zip(unusual, values.take(unusual).to_pylist()):
            decoded[i] = unescape(value)
        decoded = pa.array(decoded, values.type)
    return decoded


def replaced_where(values: pa.Array, mask: pa.Array, replacements, into: pa.Array | None = None) -> pa.Array:
    """``into`` (default ``values``) where ``mask`` picks a value: that value of ``values`` with each of
    ``replacements`` (pairs: substring, replacement) made in order. Each replacement is a pass over the values
    it is made in: only the values that need it (a mask of them is one RE2 pass), not the whole column."""
    into = values if into is None else into
    picked = pc.sum(mask).as_py() or 0
    if not picked:
        return into
    whole = picked == len(values)  # (then every value of ``into`` is replaced)
    chosen = values if whole else values.filter(mask)
    for reference, char in replacements:
        chosen = pc.replace_substring(chosen, reference, char)
    return chosen if whole else pc.replace_with_mask(into, mask, chosen)


def split_lines(data: bytes) -> tuple[pa.Array, dict[int, str]]:
    """The lines of a block as Arrow strings, and the lines that are not UTF-8 (blanked in the array).

    Lines keep their positions (nothing dropped), so that they give true line numbers.
    """
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    whole = pa.Array.from_buffers(pa.large_binary(), 1, [None, pa.py_buffer(np.array([0, len(data)], np.int64)),
                                                         pa.py_buffer(data)])
    lines = pc.split_pattern(whole, b"\n").flatten()
    if len(lines) and len(lines[-1].as_py()) == 0:
        lines = lines.slice(0, len(lines) - 1)
    try:
        return lines.cast(pa.large_string()), {}
    except pa.ArrowInvalid:  # undecodable bytes somewhere: find the lines
        raw = lines.to_pylist()
        undecodable = {}
        for i, line in enumerate(raw):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                undecodable[i] = line.decode("utf-8", errors="backslashreplace")
                raw[i] = b""
        return pa.array(raw, pa.large_binary()).cast(pa.large_string()), undecodable


def parse_block(data: bytes) -> Parsed:
    """Sort every line of a block into question, other row, structure or malformed."""
    lines, undecodable = split_lines(data)
    stripped = _unwrapped(pc.utf8_trim(lines, WHITESPACE))
    structure = _is_structure(stripped)
    structure[list(undecodable)] = False
    is_row = pc.match_substring_regex(stripped, ROW).to_numpy(zero_copy_only=False)
    row_lines = np.flatnonzero(is_row)
    rows = stripped.filter(is_row)
    attributes = _Attributes(rows)
    ids, post_types = (attributes.column(name) for name in ("Id", "PostTypeId"))
    usable = np.logical_and.reduce(
        [pc.fill_null(pc.match_substring_regex(c, "^[0-9]+$"), False).to_numpy(zero_copy_only=False)
         for c in (ids, post_types)])
    for i in np.flatnonzero(_unusual_references(rows) & usable):  # references to characters XML forbids
        usable[i] = not bad_reference(rows[int(i)].as_py())
    is_row[row_lines[~usable]] = False

    malformed = []
    for i in np.flatnonzero(~is_row & ~structure):
        if i in undecodable:
            line, why = undecodable[i].strip(WHITESPACE), "not valid UTF-8"
        else:
            line = stripped[i].as_py()
            why = reason(line) or "not a well-formed <row .../> element"
        malformed.append(Malformed(int(i) + 1, why, line[:SNIPPET]))

    types = post_types.filter(usable)
    counts = pc.value_counts(types).flatten() if len(types) else [pa.array([]), pa.array([])]
    questions = np.flatnonzero(usable)[pc.equal(types, QUESTION).to_numpy(zero_copy_only=False)]
    return Parsed(stripped, Counter(dict(zip(counts[0].to_pylist(), counts[1].to_pylist()))), malformed,
                  row_lines[questions] + 1,
                  {name: _decode(attributes.column(name, questions)) for name in attributes.names_in(questions)})


class _Attributes:
    """Every attribute of every (valid) row: its name, raw value, and the row it belongs to.

    A valid row holds no quote inside a value, so splitting it at its quotes alternates
    ``<row Id=``, ``1``, `` PostTypeId=``, ``1``, …, `` />``: names at even places, values at odd
    ones. Names are dictionary-encoded as they stand (a handful of distinct strings) and only the
    dictionary is cleaned into attribute names.
    """

    def __init__(self, rows: pa.Array):
        parts = pc.split_pattern(rows, '"')
        offsets = parts.offsets.to_numpy()
        flat = parts.flatten()
        row = pc.list_parent_indices(parts).to_numpy()
        place = np.arange(len(flat)) - (offsets[row] - offsets[0])
        is_value = place % 2 == 1
        is_name = (place % 2 == 0) & (place < np.diff(offsets)[row] - 1)
        encoded = pc.dictionary_encode(flat.filter(is_name))
        cleaned = [part.removeprefix("<row").strip(WHITESPACE).removesuffix("=")
                   for part in encoded.dictionary.to_pylist()]
        self.names = sorted(set(cleaned))
        # each value's attribute, as an index into ``names`` (several raw spellings clean to one name)
        self.name_of = np.array([self.names.index(n) for n in cleaned], np.int64)[
            encoded.indices.to_numpy(zero_copy_only=False)]
        self.values, self.owner, self.rows = flat.filter(is_value), row[is_value], len(rows)

    def names_in(self, rows: np.ndarray) -> list[str]:
        """The attribute names that ``rows`` use."""
        chosen = np.zeros(self.rows, bool)
        chosen[rows] = True
        return [self.names[i] for i in np.unique(self.name_of[chosen[self.owner]])]

    def column(self, name: str, rows: np.ndarray | None = None) -> pa.Array:
        """The raw values of attribute ``name`` for ``rows`` (default: all), null where a row has none
        (the last one wins)."""
        found = np.flatnonzero(self.name_of == self.names.index(name)) if name in self.names else np.empty(0, np.int64)
        where = np.full(self.rows, -1)
        where[self.owner[found]] = found
        if rows is not None:
            where = where[rows]
        return self.values.take(pa.array(where, mask=where < 0))
