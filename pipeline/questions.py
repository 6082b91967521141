"""Questions: parsed rows → a typed pandas frame per block, explicit schema.

Types are fixed here (``FIELDS``), never inferred: a value that does not fit its field makes its
row malformed, reported with the field's name, instead of turning a whole column into text.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipeline import parse
from pipeline.parse import Malformed

STRING = pd.StringDtype("pyarrow")
# The shape a value of each type must have; what Arrow then refuses to cast (out of range) does not fit either.
SHAPES = {
    pa.int64(): r"^-?[0-9]+$",
    pa.timestamp("ms"): r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?$",
}

# Attribute of <row/> → Arrow type it must have. Order is column order; PostTypeId is always 1.
FIELDS: dict[str, pa.DataType] = {
    "Id": pa.int64(),
    "AcceptedAnswerId": pa.int64(),
    "CreationDate": pa.timestamp("ms"),
    "Score": pa.int64(),
    "ViewCount": pa.int64(),
    "Body": pa.string(),
    "OwnerUserId": pa.int64(),
    "OwnerDisplayName": pa.string(),
    "LastEditorUserId": pa.int64(),
    "LastEditDate": pa.timestamp("ms"),
    "LastActivityDate": pa.timestamp("ms"),
    "Title": pa.string(),
    "Tags": pa.string(),
    "AnswerCount": pa.int64(),
    "CommentCount": pa.int64(),
    "FavoriteCount": pa.int64(),
    "ClosedDate": pa.timestamp("ms"),
    "CommunityOwnedDate": pa.timestamp("ms"),
    "ContentLicense": pa.string(),
}
PANDAS_TYPES = {pa.int64(): pd.Int64Dtype(), pa.string(): STRING}


def arrow(column: pd.Series) -> pa.Array:
    """An Arrow-backed pandas column as one Arrow array (an empty one comes as a chunked array)."""
    values = pa.array(column)
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def snake_case(name: str) -> str:
    """``AcceptedAnswerId`` → ``accepted_answer_id``."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


COLUMNS = {name: snake_case(name) for name in FIELDS}
SCHEMA = pa.schema([(COLUMNS[name], kind) for name, kind in FIELDS.items()])
META = SCHEMA.empty_table().to_pandas(types_mapper=PANDAS_TYPES.get)


class BlockStats(NamedTuple):
    """What a block held besides its questions; summed over blocks for the report."""

    path: str
    index: int
    lines: int
    post_types: Counter
    malformed: int
    samples: list[Malformed]  # the first few, line numbers within the block


def _refused(values: pa.Array, kind: pa.DataType) -> list[int]:
    """The positions of the values Arrow will not cast to ``kind``: halves are cast until each culprit is alone
    (a few casts per culprit, not one per value)."""
    pending, found = [(0, len(values))], []
    while pending:
        start, length = pending.pop()
        try:
            pc.cast(values.slice(start, length), kind)
        except pa.ArrowInvalid:
            if length == 1:
                found.append(start)
            else:
                pending += [(start, length // 2), (start + length // 2, length - length // 2)]
    return found


def _why(name: str, value: str, kind: pa.DataType, shaped: bool) -> str:
    """Why ``value`` (of the right shape or not) does not fit field ``name``."""
    shown = f"{name}={(value if len(value) <= 40 else value[:40] + '…')!r}"
    if kind == pa.int64():
        return f"{shown} is {'beyond the 64-bit integer range' if shaped else 'not an integer'}"
    if not shaped:
        return f"{shown} is not a date and time (YYYY-MM-DDThh:mm:ss.sss)"
    if len(value.partition(".")[2]) > 3:
        return f"{shown} has more than three decimals of a second"
    return f"{shown} is not a date and time of the calendar (month, day, hour, minute or second out of range)"


def _typed(name: str, column: pa.Array, kind: pa.DataType) -> tuple[pa.Array, dict[int, str]]:
    """``column`` (strings) as ``kind``, and why each value that does not fit it does not (by position).

    Values of the wrong shape are found by a regular expression; the rest are cast at once, and only if
    Arrow refuses (a number beyond 64 bits, a day not in the calendar, more than milliseconds) are the
    values it refuses looked for. Values that do not fit become nulls.
    """
    if kind == pa.string():
        return column, {}
    unshaped = pc.invert(pc.fill_null(pc.match_substring_regex(column, SHAPES[kind]), True))
    rejected = {}
    if pc.any(unshaped).as_py():
        rejected = {i: (column[i].as_py(), False) for i in pc.indices_nonzero(unshaped).to_pylist()}
        column = pc.if_else(unshaped, pa.scalar(None, pa.string()), column)
    try:
        typed = pc.cast(column, kind)
    except pa.ArrowInvalid:
        refused = _refused(column, kind)
        rejected.update((i, (column[i].as_py(), True)) for i in refused)
        unfit = np.zeros(len(column), bool)
        unfit[refused] = True
        typed = pc.cast(pc.if_else(pa.array(unfit), pa.scalar(None, pa.string()), column), kind)
    return typed, {i: _why(name, value, kind, shaped) for i, (value, shaped) in rejected.items()}


def frame(parsed: parse.Parsed) -> tuple[pd.DataFrame, list[Malformed]]:
    """Typed questions, and the rows whose values do not fit their fields (removed from the frame)."""
    columns, rejected = {}, {}
    rows = len(parsed.question_lines)
    for name, kind in FIELDS.items():
        columns[COLUMNS[name]], unfit = _typed(name, parsed.attributes.get(name, pa.nulls(rows, pa.string())), kind)
        for i, reason in unfit.items():
            rejected.setdefault(i, reason)  # the first field that does not fit
    table = pa.table(columns, schema=SCHEMA)
    if rejected:
        keep = np.ones(rows, dtype=bool)
        keep[list(rejected)] = False
        table = table.filter(keep)
    malformed = [
        Malformed(line, reason, parsed.lines[line - 1].as_py()[: parse.SNIPPET])
        for line, reason in sorted((int(parsed.question_lines[i]), reason) for i, reason in rejected.items())
    ]
    return table.to_pandas(types_mapper=PANDAS_TYPES.get), malformed


def load_block(data: bytes, path: str, index: int, samples: int) -> tuple[pd.DataFrame, BlockStats]:
    """One block of XML → its typed questions and its statistics."""
    parsed = parse.parse_block(data)
    questions, rejected = frame(parsed)
    if rejected:
        parsed.post_types[parse.QUESTION] -= len(rejected)  # counted as malformed instead
    malformed = sorted(parsed.malformed + rejected)
    stats = BlockStats(path, index, len(parsed.lines), parsed.post_types, len(malformed), malformed[:samples])
    return questions, stats
