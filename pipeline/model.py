"""Model: tell two tags apart (python vs r by default) from question text, with dask-ml.

The blog's recipe — ``HashingVectorizer`` and ``Incremental(SGDClassifier(penalty="l1"))`` — on
the questions tagged with exactly one of the two tags. ``labelled`` picks them out in the first
pass, block by block, and holds back a fraction for scoring by a seeded hash of each question's
id: a question is on the same side of the split whatever the blocks, workers or row order
(dask-ml's ``train_test_split`` draws per partition, so its split moves when the partitioning
does). The labels are encoded once, explicitly: 0 for the first tag, 1 for the second. The first
pass writes the labelled questions as Parquet, one file per block, training questions first, and
counts them. ``train`` feeds the model batches of ``TRAIN_BATCH`` training questions taken in
input order across those files, so the model depends on the input and the seed alone: the same
whatever the block size, the number of workers that had joined when the blocks were cut, or
whether the input was a local file or an S3 object. Each batch is one task that reads its rows
(only the row groups that hold them), hashes them (see ``hashing``) and hands them to
``Incremental``, which steps the model through the batches while the workers hash the next ones;
held-back questions are read, hashed and scored one task per file.
The model is the blog's, plain SGD: averaged SGD (``average=True``) was tried and, in one pass
over 200 MB, averages in the large early steps: 0.953 mean accuracy (0.924–0.970 over five row
orders) against plain SGD's 0.975 (±0.0002); on 10 MB both averaged 0.989.
"""

from __future__ import annotations

import functools
import importlib
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import dask
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from dask.base import tokenize

from pipeline import storage
from pipeline.clean import has_tag

if TYPE_CHECKING:
    import dask.array as da
    import scipy.sparse as sp
    from sklearn.linear_model import SGDClassifier

LABELLED_SCHEMA = pa.schema([("site", pa.string()), ("id", pa.int64()), ("text", pa.large_string()),
                             ("label", pa.int8()), ("test", pa.bool_())])
SIDES = ("train", "test")
COUNTS = ("train", "test", "train_second", "test_second")  # what ``counts`` gives for a block
TRAIN_BATCH = 4096  # training questions per partial_fit: the model's steps, whatever the blocks
ROW_GROUP = 1024  # rows per Parquet row group of a labelled file: a batch reads little more than its rows
# What training and scoring import (seconds of dask-ml, scikit-learn and SciPy): imported where they are used,
# so that a run only pays for them when a classifier trains, and ``import_classifier`` can warm them early.
CLASSIFIER_MODULES = ("dask.array", "scipy.sparse", "dask_ml.wrappers", "sklearn.linear_model", "sklearn.metrics",
                      "sklearn.pipeline", "pipeline.hashing")


def import_classifier() -> None:
    """Import ``CLASSIFIER_MODULES``."""
    try:
        for name in CLASSIFIER_MODULES:
            importlib.import_module(name)
    except ImportError:  # said where training imports them again
        pass


@functools.cache
def import_in_background() -> threading.Thread:
    """Start ``import_classifier`` in a thread, once per process: in the driver while the workers run pass 1
    (not during the cluster's start, whose messages it would hold up), in each worker beside its first-pass
    tasks (whose Arrow kernels leave the interpreter to it; nothing is left to import in a worker forked from
    a server that preloaded them)."""
    thread = threading.Thread(target=import_classifier, name="import-classifier", daemon=True)
    thread.start()
    return thread


def held_back(ids: np.ndarray, test_size: float, random_state: int) -> np.ndarray:
    """Which questions are held back for scoring: a seeded hash of the id below ``test_size``."""
    salt = pd.util.hash_array(np.array([random_state]).astype("uint64"))[0]
    hashes = pd.util.hash_array(ids.astype("uint64") ^ salt)
    return (hashes >> np.uint64(11)).astype(np.float64) / 2.0**53 < test_size


def labelled(questions: pd.DataFrame, labels: tuple[str, str], test_size: float, random_state: int,
             site: str) -> pd.DataFrame:
    """The questions of ``site`` tagged with exactly one of ``labels``: site, id, text, label (0 or 1) and
    held back or not."""
    first, second = (has_tag(questions["tags"], name) for name in labels)
    keep = first != second
    ids = questions["id"].to_numpy(dtype="int64", na_value=-1)[keep]
    frame = pd.DataFrame(
        {
            "site": site,
            "id": ids,
            "text": questions["body_text"].fillna("")[keep].array,
            "label": second[keep].astype("int8"),
            "test": held_back(ids, test_size, random_state),
        },
        index=questions.index[keep],
    )
    return frame.sort_values("test", kind="stable")  # training questions first, each side in input order


def counts(frame: pd.DataFrame) -> dict[str, int]:
    """How many of a block's labelled questions train and how many score, and how many of each side carry
    the second label (the rest carry the first)."""
    test, second = frame["test"].to_numpy(bool), frame["label"].to_numpy() == 1
    return {"train": int((~test).sum()), "test": int(test.sum()),
            "train_second": int((~test & second).sum()), "test_second": int((test & second).sum())}


def label_counts(block_counts: pd.DataFrame, labels: tuple[str, str]) -> dict[str, dict[str, int]]:
    """Labelled questions per label and side, summed over blocks: ``{"python": {"train": 9, "test": 2}, …}``."""
    totals = block_counts.sum()
    found = {side: (int(totals[side] - totals[f"{side}_second"]), int(totals[f"{side}_second"])) for side in SIDES}
    return {label: {side: found[side][i] for side in SIDES} for i, label in enumerate(labels)}


def reason_to_skip(found: dict[str, dict[str, int]], min_questions: int) -> str | None:
    """Why these labelled questions cannot give a classifier worth reporting (None: they can).

    A model trained on one class, or scored on no question, would print an accuracy that means nothing.
    """
    totals = {label: sum(sides.values()) for label, sides in found.items()}
    few = [f"{label} has {n}" for label, n in totals.items() if n < min_questions]
    if few:
        return (f"too few labelled questions: {' and '.join(few)} "
                f"(classifier.min-questions asks for {min_questions} of each)")
    untrained = [label for label, sides in found.items() if not sides["train"]]
    if untrained:
        return f"no {' or '.join(untrained)} question among the training questions (see classifier.test-size)"
    if not sum(sides["test"] for sides in found.values()):
        return "no question was held back for scoring (see classifier.test-size)"
    return None


@dataclass
class Classifier:
    """The classifier stage's result: trained (scores, model, held-back ids) or skipped (why)."""

    tags: list[str]
    counts: dict[str, dict[str, int]]  # labelled questions per label and side
    reason: str | None = None  # why it was skipped; None: trained
    suggested_tags: list[str] = field(default_factory=list)  # when skipped: the site's own most frequent tags
    scores: dict = field(default_factory=dict)  # accuracy, baseline, train_rows, test_rows, confusion_matrix
    model: dict | None = None  # what model.joblib holds
    test_ids: np.ndarray | None = None

    @property
    def status(self) -> str:
        return "skipped" if self.reason else "trained"

    @property
    def accuracy(self) -> float | None:
        return self.scores.get("accuracy")

    def as_json(self) -> dict:
        skipped = {"reason": self.reason, "suggested_tags": self.suggested_tags} if self.reason else {}
        return {"status": self.status, "tags": self.tags, **skipped, **self.scores, "counts": self.counts}


def _side(path: str, storage_options: dict, held: bool, columns: list[str]) -> pa.Table:
    """``columns`` of one block's labelled questions on one side of the split."""
    with storage.open_file(path, "rb", storage_options) as f:
        table = pq.read_table(f, columns=[*columns, "test"])
    return table.filter(pc.equal(table["test"], held))


Piece = tuple[str, int, int]  # a labelled file and a range of its training questions: (path, start, stop)


def batches(files: list[str], n_train: list[int], size: int) -> list[list[Piece]]:
    """The training questions of ``files`` (``n_train`` in each, at the start of each file) in batches of
    ``size`` in input order (the last one smaller), each batch the pieces of the files it takes rows from."""
    ends = np.cumsum(n_train)
    out: list[list[Piece]] = []
    for lo in range(0, int(ends[-1]) if len(ends) else 0, size):
        hi, pieces = min(lo + size, int(ends[-1])), []
        for path, end, n in zip(files, ends, n_train):
            start = int(end) - n
            if n and start < hi and end > lo:
                pieces.append((path, max(lo, start) - start, min(hi, int(end)) - start))
        out.append(pieces)
    return out


def _rows(piece: Piece, storage_options: dict, column: str) -> pa.ChunkedArray:
    """``column`` of a piece's rows, read from the row groups that hold them only."""
    path, start, stop = piece
    with storage.open_file(path, "rb", storage_options) as f:
        parquet = pq.ParquetFile(f)
        firsts = np.cumsum([0] + [parquet.metadata.row_group(i).num_rows for i in range(parquet.num_row_groups)])
        group_lo = int(np.searchsorted(firsts, start, side="right")) - 1
        group_hi = int(np.searchsorted(firsts, stop, side="left"))
        table = parquet.read_row_groups(range(group_lo, group_hi), columns=[column])
    return table[column].slice(start - int(firsts[group_lo]), stop - start)


def features(pieces: list[Piece], storage_options: dict) -> sp.csr_matrix:
    """The hashed texts of one batch of training questions."""
    from pipeline import hashing

    texts = pa.chunked_array([c for p in pieces for c in _rows(p, storage_options, "text").chunks],
                             type=LABELLED_SCHEMA.field("text").type)
    return hashing.transform(texts.combine_chunks())


def targets(pieces: list[Piece], storage_options: dict) -> np.ndarray:
    """The labels of one batch of training questions."""
    return np.concatenate([_rows(p, storage_options, "label").to_numpy() for p in pieces])


def score_block(path: str, storage_options: dict, estimator: SGDClassifier) -> tuple[np.ndarray, ...]:
    """Predicted labels, labels and ids of one block's held-back questions."""
    from pipeline import hashing

    table = _side(path, storage_options, True, ["id", "text", "label"])
    predicted = estimator.predict(hashing.transform(table["text"].combine_chunks())).astype("int8")
    return predicted, table["label"].to_numpy(), table["id"].to_numpy()


def _chunks(function, batched: list[list[Piece]], storage_options: dict, width: int | None = None) -> da.Array:
    """A dask array with one chunk per batch, each chunk one task: ``from_delayed`` and ``concatenate``
    would add two more per chunk, and tiny tasks cost as much scheduling as big ones."""
    import dask.array as da
    import scipy.sparse as sp

    sizes = tuple(sum(stop - start for _, start, stop in pieces) for pieces in batched)
    name = f"{function.__name__}-{tokenize(batched, storage_options)}"
    if width:
        graph = {(name, i, 0): (function, pieces, storage_options) for i, pieces in enumerate(batched)}
        return da.Array(graph, name, (sizes, (width,)), dtype=np.float64, meta=sp.csr_matrix((0, width)))
    graph = {(name, i): (function, pieces, storage_options) for i, pieces in enumerate(batched)}
    return da.Array(graph, name, (sizes,), dtype=np.int8)


def train(files: list[str], block_counts: pd.DataFrame, labels: tuple[str, str], random_state: int,
          storage_options: dict) -> tuple[dict, dict, np.ndarray]:
    """Fit on the training questions of ``files``; return the scores, the model and the held-back ids.

    Needs one training question at least (``reason_to_skip`` says when there is none); one class only, or
    no held-back question, still give a model (accuracy and baseline None without a question to score).
    """
    from dask_ml.wrappers import Incremental
    from sklearn.linear_model import SGDClassifier
    from sklearn.metrics import confusion_matrix
    from sklearn.pipeline import make_pipeline

    from pipeline import hashing

    n_train, n_test = block_counts["train"].tolist(), block_counts["test"].tolist()
    batched = batches(files, n_train, TRAIN_BATCH)
    x_train = _chunks(features, batched, storage_options, width=hashing.N_FEATURES)
    y_train = _chunks(targets, batched, storage_options)
    classifier = Incremental(SGDClassifier(penalty="l1", random_state=random_state), scoring="accuracy",
                             random_state=random_state)
    classifier.fit(x_train, y_train, classes=[0, 1])
    # The L1 penalty leaves almost all of the 2**20 weights at zero (102 non-zero on 200 MB): as a
    # sparse matrix the model is a few KB, not 8 MB, for every worker that scores and in
    # model.joblib (``densify()`` it before any further ``partial_fit``). Predictions are the same.
    # It goes into the graph once, as a key every block depends on.
    fitted = classifier.estimator_.sparsify()
    shared = dask.delayed(fitted, pure=True)
    scoring = [dask.delayed(score_block)(f, storage_options, shared) for f, n in zip(files, n_test) if n]
    scored = dask.compute(scoring)[0]
    if not scored:
        scored = [(np.empty(0, "int8"), np.empty(0, "int8"), np.empty(0, "int64"))]
    predicted, actual, test_ids = (np.concatenate(part) for part in zip(*scored))
    scores = {
        "tags": list(labels),
        "accuracy": float(np.mean(predicted == actual)) if len(actual) else None,
        # What always guessing the larger class would score: 0.82 on 11 questions may be no better.
        "baseline": float(max(np.mean(actual == 0), np.mean(actual == 1))) if len(actual) else None,
        "train_rows": int(sum(n_train)),
        "test_rows": int(len(actual)),
        # (scikit-learn refuses an empty one: no question scored is a matrix of zeros)
        "confusion_matrix": confusion_matrix(actual, predicted, labels=[0, 1]).tolist() if len(actual)
        else [[0, 0], [0, 0]],
    }
    model = {"labels": list(labels), "pipeline": make_pipeline(hashing.vectorizer(), fitted)}
    return scores, model, test_ids
