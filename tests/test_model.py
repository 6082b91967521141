"""The classifier's data: which questions are labelled, how, which are held back, and how they are batched."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline import clean, hashing, model
from pipeline.output import write_parquet


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


def test_batches_take_the_training_questions_in_input_order_whatever_the_files():
    # 3 + 0 + 5 + 2 training questions in batches of 4: across file ends, empty files left out.
    got = model.batches(["a", "b", "c", "d"], [3, 0, 5, 2], size=4)
    assert got == [[("a", 0, 3), ("c", 0, 1)], [("c", 1, 5)], [("d", 0, 2)]]

    def numbered(batched, first):  # each batch as the input positions of its questions
        return [[first[path] + q for path, start, stop in batch for q in range(start, stop)] for batch in batched]

    # The same ten questions cut into other files make batches of the same questions.
    other = model.batches(["x", "y"], [7, 3], size=4)
    assert numbered(got, {"a": 0, "c": 3, "d": 8}) == numbered(other, {"x": 0, "y": 7}) == [
        [0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert model.batches([], [], size=4) == [] and model.batches(["a"], [0], size=4) == []


def test_a_batch_reads_its_rows_from_the_row_groups_that_hold_them(tmp_path):
    frame = pd.DataFrame({"site": "s", "id": range(10), "text": [f"word{i}" for i in range(10)],
                          "label": [i % 2 for i in range(10)], "test": [False] * 7 + [True] * 3})
    path = str(tmp_path / "part.0.parquet")
    write_parquet(frame.astype({"label": "int8"}), path, model.LABELLED_SCHEMA, {}, row_group_size=3)
    assert pq.ParquetFile(path).num_row_groups == 4
    # Training rows 2..6: the end of the first row group, all of the second, the start of the third.
    assert model.targets([(path, 2, 6)], {}).tolist() == [0, 1, 0, 1]
    assert model.targets([(path, 0, 1), (path, 6, 7)], {}).tolist() == [0, 0]
    expected = hashing.transform(pa.array([f"word{i}" for i in range(2, 7)], pa.large_string()))
    assert (model.features([(path, 2, 7)], {}) != expected).nnz == 0


def test_the_start_path_leaves_the_classifier_libraries_to_the_classifier():
    """What a run imports before its cluster starts holds none of dask-ml, scikit-learn or SciPy (seconds of
    imports): they are imported when a classifier trains, or beside the first pass (``import_classifier``)."""
    heavy = ["dask_ml", "sklearn", "scipy", "joblib"]
    code = ("import sys, pipeline.cli, pipeline.run; print(*[m for m in {heavy} if m in sys.modules]); "
            "pipeline.run.model.import_classifier(); print(*[m for m in {heavy} if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", code.format(heavy=heavy)], capture_output=True, text=True,
                          timeout=120, check=True)
    assert done.stdout.splitlines() == ["", " ".join(heavy)]
