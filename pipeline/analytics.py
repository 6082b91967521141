"""Analytics: tags that co-occur with a chosen tag, overall top tags, questions per year.

Each partition is summarised into one small long-format frame (``partials``) in the same pass
that writes the cleaned questions; the driver adds the partials up (``combine``). Rankings
sort by count, then by tag, so that ties come out the same on every run: dask's
``value_counts`` is no longer sorted by count, so nothing here relies on it.
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.clean import has_tag
from pipeline.questions import arrow

PARTIALS_META = pd.DataFrame(
    {"kind": pd.Series([], dtype=object), "key": pd.Series([], dtype=object), "count": pd.Series([], dtype="int64")}
)


def _counts(kind: str, values: pa.Array) -> pd.DataFrame:
    counted = pc.value_counts(values).flatten() if len(values) else [pa.array([]), pa.array([], pa.int64())]
    return pd.DataFrame({"kind": kind, "key": counted[0].to_pylist(),
                         "count": counted[1].to_numpy(zero_copy_only=False)})


def partials(questions: pd.DataFrame, tag: str, classifier_tags: tuple[str, str]) -> pd.DataFrame:
    """Counts of one partition: ``tag`` (every tag), ``cooccur`` (tags beside ``tag``), ``year``, ``labelled``."""
    tags = arrow(questions["tags"])  # list<string>
    flat = pc.list_flatten(tags)
    with_tag = has_tag(questions["tags"], tag)
    beside = pc.and_(pc.array_take(pa.array(with_tag), pc.list_parent_indices(tags)), pc.not_equal(flat, tag))
    first, second = (has_tag(questions["tags"], name) for name in classifier_tags)
    labelled = int((first != second).sum())
    years = questions["creation_date"].dt.year.dropna().astype("int64")
    return pd.concat(
        [
            _counts("tag", flat),
            _counts("cooccur", pc.filter(flat, beside)),
            _counts("year", pa.array(years.to_numpy())),
            pd.DataFrame({"kind": ["labelled", "with_tag"], "key": [None, None],
                          "count": [labelled, int(with_tag.sum())]}),
        ],
        ignore_index=True,
    ).astype(PARTIALS_META.dtypes.to_dict())


def ranked(counts: pd.Series, top: int | None = None) -> list[list]:
    """``[[key, count], …]`` by count descending, then key, optionally the first ``top``."""
    frame = counts.rename("count").rename_axis("key").reset_index()
    frame = frame.sort_values(["count", "key"], ascending=[False, True], kind="stable")
    rows = [[key, int(count)] for key, count in zip(frame["key"], frame["count"])]
    return rows[:top] if top else rows


def combine(parts: pd.DataFrame, tag: str, top: int) -> dict:
    """Add up the partials of every partition into the report's analytics."""
    totals = parts.groupby(["kind", "key"], dropna=False)["count"].sum()

    def of(kind: str) -> pd.Series:
        if kind not in totals.index.get_level_values("kind"):
            return pd.Series(dtype="int64")
        return totals.xs(kind, level="kind")

    years = of("year")
    return {
        "cooccurrence": {"tag": tag, "questions_with_tag": int(of("with_tag").sum()),
                         "top": ranked(of("cooccur"), top)},
        "top_tags": ranked(of("tag"), top),
        "tag_counts": of("tag"),
        "questions_per_year": {str(int(y)): int(n) for y, n in sorted(years.items())},
        "labelled_questions": int(of("labelled").sum()),
    }
