"""The classifier step of the single-process peers (pandas, Polars, DuckDB), as their users write it: the
blog's features and model with scikit-learn itself — ``HashingVectorizer`` and one pass of
``SGDClassifier(penalty="l1")`` — scored on a seeded fifth of the labelled questions held back."""

from __future__ import annotations

from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.linear_model import SGDClassifier
from sklearn.model_selection import train_test_split


def accuracy(texts: list[str], labels, random_state: int) -> float:
    """Accuracy on the held-back questions of ``texts`` labelled 0 (first tag) or 1 (second)."""
    x_train, x_test, y_train, y_test = train_test_split(texts, labels, test_size=0.2, random_state=random_state)
    vectorizer = HashingVectorizer(stop_words="english")
    classifier = SGDClassifier(penalty="l1", random_state=random_state)
    classifier.partial_fit(vectorizer.transform(x_train), y_train, classes=[0, 1])
    return float((classifier.predict(vectorizer.transform(x_test)) == y_test).mean())
