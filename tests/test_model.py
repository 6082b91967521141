"""The classifier's data: which questions are labelled, how, and which are held back."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from pipeline import clean, model


def test_held_back_fraction_and_seed():
    ids = np.arange(1, 200_001)
    held = model.held_back(ids, 0.2, random_state=0)
    assert abs(held.mean() - 0.2) < 0.005
    assert (model.held_back(ids[::-1], 0.2, 0) == held[::-1]).all()  # per question, not per position
    other = model.held_back(ids, 0.2, random_state=1)
    assert abs(other.mean() - 0.2) < 0.005 and (other != held).mean() > 0.2
    assert not model.held_back(ids, 0.0, 0).any() and model.held_back(ids, 1.0, 0).all()


def test_labelled_keeps_exactly_one_of_the_tags_and_encodes_it():
    frame = pd.DataFrame({
        "id": pd.array([1, 2, 3, 4], dtype="Int64"),
        "tags": pd.Series([["python"], ["r", "ggplot2"], ["python", "r"], ["sql"]], dtype=clean.TAG_LIST),
        "body_text": pd.array(["a", "b", "c", None], dtype="string[pyarrow]"),
    })
    out = model.labelled(frame, ("python", "r"), test_size=0.0, random_state=0, site="example")
    assert out["id"].tolist() == [1, 2] and out["label"].tolist() == [0, 1] and out["text"].tolist() == ["a", "b"]
    assert out["site"].tolist() == ["example"] * 2
    assert pa.Table.from_pandas(out, schema=model.LABELLED_SCHEMA, preserve_index=False).num_rows == 2
    assert model.counts(out) == {"train": 2, "test": 0, "train_second": 1, "test_second": 0}


def test_label_counts_and_the_skip_rule():
    blocks = pd.DataFrame([{"train": 9, "test": 3, "train_second": 4, "test_second": 1},
                           {"train": 2, "test": 0, "train_second": 2, "test_second": 0}])
    found = model.label_counts(blocks, ("python", "r"))
    assert found == {"python": {"train": 5, "test": 2}, "r": {"train": 6, "test": 1}}
    assert model.reason_to_skip(found, min_questions=7) is None
    assert model.reason_to_skip(found, min_questions=8) == (
        "too few labelled questions: python has 7 and r has 7 (classifier.min-questions asks for 8 of each)")
    assert "no r question among the training" in model.reason_to_skip(
        {"python": {"train": 5, "test": 2}, "r": {"train": 0, "test": 9}}, min_questions=1)
    assert "no question was held back" in model.reason_to_skip(
        {"python": {"train": 5, "test": 0}, "r": {"train": 3, "test": 0}}, min_questions=1)
