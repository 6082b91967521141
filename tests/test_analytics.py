"""Analytics: partials add up to the naive counts; rankings by count, ties by name."""

from __future__ import annotations

from collections import Counter

import pandas as pd

from pipeline import analytics, clean


def frame(tag_lists: list[list[str]], years: list[int]) -> pd.DataFrame:
    return pd.DataFrame({
        "tags": pd.Series(tag_lists, dtype=clean.TAG_LIST),
        "creation_date": pd.to_datetime([f"{y}-06-01" for y in years]).astype("datetime64[ms]"),
    })


def test_partials_of_several_partitions_add_up_to_naive_counts():
    lists = [["python", "pandas"], ["r", "dplyr"], ["python", "r"], ["java"], [], ["python", "numpy", "pandas"]]
    years = [2010, 2011, 2011, 2012, 2012, 2024]
    parts = pd.concat([
        analytics.partials(frame(lists[:3], years[:3]), "python", ("python", "r")),
        analytics.partials(frame(lists[3:], years[3:]), "python", ("python", "r")),
        analytics.partials(frame([], []), "python", ("python", "r")),
    ])
    result = analytics.combine(parts, "python", top=10)
    assert result["cooccurrence"] == {"tag": "python", "questions_with_tag": 3,
                                      "top": [["pandas", 2], ["numpy", 1], ["r", 1]]}
    assert dict(result["top_tags"]) == Counter(t for ts in lists for t in ts)
    assert result["questions_per_year"] == {"2010": 1, "2011": 2, "2012": 2, "2024": 1}
    assert result["labelled_questions"] == 3  # python xor r


def test_ranked_is_by_count_then_name_not_alphabetical():
    counts = pd.Series({"aaa": 1, "zzz": 9, "mmm": 9, "bbb": 3})
    assert analytics.ranked(counts) == [["mmm", 9], ["zzz", 9], ["bbb", 3], ["aaa", 1]]
    assert analytics.ranked(counts, top=2) == [["mmm", 9], ["zzz", 9]]
