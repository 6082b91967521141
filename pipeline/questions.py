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
INTEGER = r"^-?[0-9]+$"
TIMESTAMP = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?$"

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


def _typed(column: pa.Array, kind: pa.DataType) -> tuple[pa.Array, pa.Array | None]:
    """``column`` (strings) as ``kind``, and a mask of values that do not fit it (None when all fit)."""
    if kind == pa.string():
        return column, None
    fits = pc.match_substring_regex(column, INTEGER if kind == pa.int64() else TIMESTAMP)
    bad = pc.invert(pc.fill_null(fits, True))
    if not pc.any(bad).as_py():
        return pc.cast(column, kind), None
    return pc.cast(pc.if_else(bad, pa.scalar(None, pa.string()), column), kind), bad


def frame(parsed: parse.Parsed) -> tuple[pd.DataFrame, list[Malformed]]:
    """Typed questions, and the rows whose values do not fit their fields (removed from the frame)."""
    columns, rejected = {}, {}
    rows = len(parsed.question_lines)
    for name, kind in FIELDS.items():
        values = parsed.attributes.get(name, pa.nulls(rows, pa.string()))
        columns[COLUMNS[name]], bad = _typed(values, kind)
        if bad is not None:
            for i in pc.indices_nonzero(bad).to_pylist():
                rejected.setdefault(i, f"{name}={values[i].as_py()!r} is not a {kind}")
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
    parsed.post_types[parse.QUESTION] -= len(rejected)  # counted as malformed instead
    malformed = sorted(parsed.malformed + rejected)
    stats = BlockStats(path, index, len(parsed.lines), parsed.post_types, len(malformed), malformed[:samples])
    return questions, stats
