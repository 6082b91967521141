"""Report: the run's results as ``report.json`` and a ``report.html`` a person would rather look at.

The HTML is one self-contained file (charts embedded as PNG), so it can be opened from S3 or
mailed without its directory. The charts are drawn with matplotlib's object API, not pyplot's
global state, so that the analytics' ones can be drawn in a thread while the classifier trains.
"""

from __future__ import annotations

import base64
import html
import io
import json
import platform
from importlib import metadata

from matplotlib.figure import Figure

PACKAGES = ("posts-pipeline", "dask", "distributed", "dask-ml", "scikit-learn", "pandas", "pyarrow", "numpy", "s3fs")


def versions() -> dict:
    """The versions that decide the results, recorded so that a run can be reproduced."""
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def to_json(report: dict) -> str:
    return json.dumps(report, indent=2, ensure_ascii=False, default=str) + "\n"


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode()


def _bars(pairs: list[list], title: str, color: str) -> str:
    fig = Figure(figsize=(7, 0.28 * max(len(pairs), 4) + 1))
    ax = fig.subplots()
    names = [str(k) for k, _ in pairs][::-1]
    ax.barh(names, [n for _, n in pairs][::-1], color=color)
    ax.set_title(title)
    ax.set_xlabel("questions")
    return _png(fig)


def _years(per_year: dict) -> str:
    fig = Figure(figsize=(7, 3))
    ax = fig.subplots()
    ax.bar(list(per_year), list(per_year.values()), color="#4c72b0")
    ax.set_title("Questions per year")
    ax.tick_params(axis="x", labelrotation=45)
    return _png(fig)


def _confusion(matrix: list[list[int]], labels: list[str]) -> str:
    fig = Figure(figsize=(3.6, 3.2))
    ax = fig.subplots()
    ax.imshow(matrix, cmap="Blues")
    darkest = max(max(row) for row in matrix) or 1
    for i, row in enumerate(matrix):
        for j, n in enumerate(row):
            ax.text(j, i, str(n), ha="center", va="center", color="white" if n > darkest / 2 else "black")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title("Confusion matrix (test split)")
    return _png(fig)


def _table(rows: list[tuple[str, object]]) -> str:
    cells = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
    return f"<table>{cells}</table>"


def analytics_charts(analytics: dict) -> list[str]:
    """The charts of ``analytics.combine``'s results, as base64 PNG."""
    cooc = analytics["cooccurrence"]
    return [
        _bars(cooc["top"], f"Tags that co-occur with '{cooc['tag']}'", "#dd8452"),
        _bars(analytics["top_tags"], "Top tags", "#55a868"),
        _years(analytics["questions_per_year"]),
    ]


def to_html(report: dict, charts: list[str] | None = None) -> str:
    """The page; ``charts`` are ``analytics_charts(report)`` when drawn beforehand."""
    counts, clf, cooc = report["counts"], report["classifier"], report["cooccurrence"]
    images = list(charts or analytics_charts(report))
    if clf.get("test_rows"):
        images.append(_confusion(clf["confusion_matrix"], clf["tags"]))
    summary = _table(
        [
            ("inputs", ", ".join(report["inputs"])),
            ("rows", counts["rows"]),
            ("questions", counts["questions"]),
            ("malformed lines", counts["malformed"]),
            (f"questions tagged {cooc['tag']}", cooc["questions_with_tag"]),
            (f"classifier ({' vs '.join(clf['tags'])}) accuracy", f"{clf['accuracy']:.4f}"),
            ("train / test rows", f"{clf['train_rows']} / {clf['test_rows']}"),
            ("total seconds", report["timings"]["total"]),
        ]
    )
    malformed = "".join(
        f"<li><code>{html.escape(m['file'])}:{m['line']}</code> {html.escape(m['reason'])}: "
        f"<code>{html.escape(m['text'])}</code></li>"
        for m in report["malformed_samples"]
    )
    timings = _table(list(report["timings"].items()))
    versions_table = _table(list(report["versions"].items()))
    charts = "".join(f'<img alt="chart" src="data:image/png;base64,{b}">' for b in images)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>posts-pipeline report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 64em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }} th, td {{ text-align: left; padding: .2em 1em .2em 0; }}
img {{ max-width: 100%; margin: 1em 1em 0 0; vertical-align: top; }} code {{ font-size: 90%; }}
</style></head><body>
<h1>posts-pipeline report</h1>
{summary}
{charts}
<h2>Malformed lines (first {len(report["malformed_samples"])} of {counts["malformed"]})</h2>
<ul>{malformed or "<li>none</li>"}</ul>
<h2>Stage timings (seconds)</h2>{timings}
<h2>Versions</h2>{versions_table}
</body></html>
"""
