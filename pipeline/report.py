"""Report: the run's results as ``report.json`` and a ``report.html`` a person would rather look at.

The HTML is one self-contained file, so it can be opened from S3 or mailed without its
directory. Its charts are plain bars and one 2×2 grid, written as inline SVG: crisp at any size,
their labels searchable text, and a millisecond to write where matplotlib took a third of a
second to import and as long again to draw them in every run.
"""

from __future__ import annotations

import html
import json
import platform
from dataclasses import dataclass, field
from importlib import metadata
from urllib.parse import quote

from pipeline import config
from pipeline.model import Classifier
from pipeline.output import site_file

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


def shown_url(url: str) -> str:
    """An input or output URL as reports show it: the one place where anything secret in it is taken out."""
    return config.redacted_url(url)


@dataclass
class Site:
    """One site's results: its counts and analytics from the first pass, and its classifier."""

    name: str
    inputs: list[str]
    counts: dict  # lines, rows, questions, malformed, by_post_type
    malformed_samples: list[dict]
    analytics: dict  # cooccurrence, top_tags, questions_per_year, labelled_questions
    tag_counts: list[list]  # every tag with its number of questions, ranked
    classifier: Classifier
    warnings: list[str] = field(default_factory=list)

    def as_json(self) -> dict:
        samples = [{**m, "file": shown_url(m["file"])} for m in self.malformed_samples]
        return {"site": self.name, "inputs": [shown_url(i) for i in self.inputs], "counts": self.counts,
                "warnings": self.warnings, "malformed_samples": samples, **self.analytics,
                "classifier": self.classifier.as_json()}


@dataclass
class Report:
    """A whole run: every site's results and what the run as a whole took."""

    inputs: list[str]
    output: str
    sites: dict[str, Site]
    settings: dict
    timings: dict[str, float] = field(default_factory=dict)
    compute_seconds_by_stage: dict[str, float] = field(default_factory=dict)
    tasks_by_stage: dict[str, int] = field(default_factory=dict)
    versions: dict = field(default_factory=versions)

    @property
    def many(self) -> bool:
        """More than one site: a page per site and an index (one site keeps the one-page layout)."""
        return len(self.sites) > 1

    @property
    def counts(self) -> dict:
        """Lines, rows, questions and malformed lines of every site added up."""
        names = ("lines", "rows", "questions", "duplicates", "malformed")
        return {name: sum(site.counts[name] for site in self.sites.values()) for name in names}

    @property
    def page(self) -> str:
        """The page to open first, relative to the run directory."""
        return "index.html" if self.many else "report.html"

    def site_file(self, site: Site, name: str) -> str:
        return site_file(site.name if self.many else None, name)

    def as_json(self) -> dict:
        run = {"settings": self.settings, "timings": self.timings, "compute_seconds_by_stage":
               self.compute_seconds_by_stage, "tasks_by_stage": self.tasks_by_stage, "versions": self.versions}
        head = {"status": "complete", "inputs": [shown_url(i) for i in self.inputs], "output": shown_url(self.output)}
        if not self.many:
            (site,) = self.sites.values()
            return {**head, **site.as_json(), "inputs": head["inputs"], **run}
        sites = {name: {**site.as_json(), "page": self.site_file(site, "report.html")}
                 for name, site in self.sites.items()}
        return {**head, "counts": self.counts, "sites": sites, **run}


def to_json(report: Report) -> str:
    return json.dumps(report.as_json(), indent=2, ensure_ascii=False, default=str) + "\n"


def _svg(width: float, height: float, title: str, body: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}" '
            f'role="img" aria-label="{_esc(title)}"><title>{_esc(title)}</title>'
            f'<text x="0" y="16" class="title">{_esc(title)}</text>{body}</svg>')


def _esc(value) -> str:
    return html.escape(str(value))


def _bars(pairs: list[list], title: str, color: str) -> str:
    """One horizontal bar per (label, count), in the given order, each with its count."""
    label_width = 7 * max((len(str(k)) for k, _ in pairs), default=4) + 10
    bar_width, row, top = 360, 18, max((n for _, n in pairs), default=0) or 1
    rows = "".join(
        f'<text x="{label_width - 6}" y="{40 + i * row}" text-anchor="end">{_esc(k)}</text>'
        f'<rect x="{label_width}" y="{28 + i * row}" width="{bar_width * n / top:.1f}" '
        f'height="{row - 4}" fill="{color}"/>'
        f'<text x="{label_width + bar_width * n / top + 4:.1f}" y="{40 + i * row}">{n}</text>'
        for i, (k, n) in enumerate(pairs))
    return _svg(label_width + bar_width + 60, 32 + row * len(pairs), title, rows)


def _years(per_year: dict) -> str:
    """One column per year, each with its count above it."""
    column, height, top = 44, 160, max(per_year.values(), default=0) or 1
    columns = "".join(
        f'<rect x="{i * column + 4}" y="{44 + height * (1 - n / top):.1f}" width="{column - 8}" '
        f'height="{height * n / top:.1f}" fill="#4c72b0"/>'
        f'<text x="{i * column + column / 2}" y="{40 + height * (1 - n / top):.1f}" text-anchor="middle">{n}</text>'
        f'<text x="{i * column + column / 2}" y="{height + 60}" text-anchor="middle">{_esc(year)}</text>'
        for i, (year, n) in enumerate(per_year.items()))
    return _svg(max(column * len(per_year), 200), height + 68, "Questions per year", columns)


def _confusion(matrix: list[list[int]], labels: list[str]) -> str:
    """The 2×2 counts, shaded by size, actual classes down and predicted ones across."""
    cell, left, darkest = 70, 14 + 7 * max(len(label) for label in labels), max(max(row) for row in matrix) or 1
    cells = "".join(
        f'<rect x="{left + j * cell}" y="{40 + i * cell}" width="{cell}" height="{cell}" '
        f'fill="rgb({255 - int(200 * n / darkest)},{255 - int(150 * n / darkest)},255)"/>'
        f'<text x="{left + j * cell + cell / 2}" y="{45 + i * cell + cell / 2}" text-anchor="middle"'
        f' style="fill:{"#fff" if n > darkest / 2 else "#222"}">{n}</text>'
        for i, row in enumerate(matrix) for j, n in enumerate(row))
    names = "".join(
        f'<text x="{left - 6}" y="{45 + i * cell + cell / 2}" text-anchor="end">{_esc(label)}</text>'
        f'<text x="{left + i * cell + cell / 2}" y="{52 + 2 * cell}" text-anchor="middle">{_esc(label)}</text>'
        for i, label in enumerate(labels))
    axes = (f'<text x="{left + cell}" y="{70 + 2 * cell}" text-anchor="middle">predicted</text>'
            f'<text x="0" y="32">actual ↓</text>')
    return _svg(max(left + 2 * cell + 10, 260), 80 + 2 * cell, "Confusion matrix (test split)", cells + names + axes)


def _table(rows: list[tuple[str, object]]) -> str:
    cells = "".join(f"<tr><th>{_esc(k)}</th><td>{_esc(v)}</td></tr>" for k, v in rows)
    return f"<table>{cells}</table>"


def classifier_sentence(clf: Classifier) -> str:
    """The classifier's outcome in words: its accuracy beside what guessing the larger class scores, or why
    it was skipped and which tags of the site's own could be told apart instead."""
    tags = " vs ".join(clf.tags)
    if clf.reason:
        suggestion = (f" Try --classifier-tags {' '.join(clf.suggested_tags)}, the site's most frequent tags."
                      if len(clf.suggested_tags) == 2 else "")
        return f"The classifier ({tags}) was skipped: {clf.reason}.{suggestion}"
    scores = clf.scores
    if scores["accuracy"] is None:
        return (f"The classifier ({tags}) was trained on {scores['train_rows']} questions; "
                "none was held back to score it.")
    return (f"The classifier ({tags}) scored {scores['accuracy']:.4f} on {scores['test_rows']} held-back questions; "
            f"always guessing the larger class would score {scores['baseline']:.4f}.")


def _page(title: str, body: str) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{_esc(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 64em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }} th, td {{ text-align: left; padding: .2em 1em .2em 0; }}
figure {{ display: inline-block; margin: 1em 2em 0 0; vertical-align: top; }} code {{ font-size: 90%; }}
svg {{ max-width: 100%; height: auto; font: 12px system-ui, sans-serif; fill: #222; }}
svg .title {{ font-weight: bold; font-size: 13px; }} .warning {{ color: #a40; }}
table.sites td, table.sites th {{ border-bottom: 1px solid #ddd; vertical-align: top; }}
</style></head><body>
<h1>{_esc(title)}</h1>
{body}
</body></html>
"""


def _run_tables(report: Report) -> str:
    return (f"<h2>Stage timings (seconds)</h2>{_table(list(report.timings.items()))}"
            f"<h2>Versions</h2>{_table(list(report.versions.items()))}")


def _warnings(warnings: list[str]) -> str:
    return "".join(f'<p class="warning">Warning: {_esc(w)}</p>' for w in warnings)


def to_html(report: Report, site: Site) -> str:
    """A site's page: its figures, charts, classifier and malformed lines (and the run's, for one site)."""
    counts, clf, analytics = site.counts, site.classifier, site.analytics
    cooc = analytics["cooccurrence"]
    images = [
        _bars(cooc["top"], f"Tags that co-occur with '{cooc['tag']}'", "#dd8452"),
        _bars(analytics["top_tags"], "Top tags", "#55a868"),
        _years(analytics["questions_per_year"]),
    ]
    if clf.scores.get("test_rows"):
        images.append(_confusion(clf.scores["confusion_matrix"], clf.tags))
    accuracy = "skipped" if clf.reason else "n/a" if clf.accuracy is None else f"{clf.accuracy:.4f}"
    rows = [("site", site.name), ("inputs", ", ".join(map(shown_url, site.inputs))), ("rows", counts["rows"]),
            ("questions", counts["questions"]), ("malformed lines", counts["malformed"]),
            (f"questions tagged {cooc['tag']}", cooc["questions_with_tag"]),
            (f"classifier ({' vs '.join(clf.tags)}) accuracy", accuracy)]
    if not clf.reason:
        rows.append(("train / test rows", f"{clf.scores['train_rows']} / {clf.scores['test_rows']}"))
    if not report.many:
        rows.append(("total seconds", report.timings.get("total")))
    malformed = "".join(
        f"<li><code>{_esc(shown_url(m['file']))}:{m['line']}</code> {_esc(m['reason'])}: "
        f"<code>{_esc(m['text'])}</code></li>"
        for m in site.malformed_samples
    )
    back = '<p><a href="../../index.html">All sites of this run</a></p>' if report.many else ""
    body = (f"{back}{_warnings(site.warnings)}<p class=\"classifier\">{_esc(classifier_sentence(clf))}</p>"
            f"{_table(rows)}{''.join(f'<figure>{svg}</figure>' for svg in images)}"
            f"<h2>Malformed lines (first {len(site.malformed_samples)} of {counts['malformed']})</h2>"
            f"<ul>{malformed or '<li>none</li>'}</ul>")
    title = f"posts-pipeline report: {site.name}" if report.many else "posts-pipeline report"
    return _page(title, body + ("" if report.many else _run_tables(report)))


def index_html(report: Report) -> str:
    """The page of a run over many sites: one row per site, linking to the site's own page."""
    rows = "".join(
        f"<tr><td><a href=\"{_esc(quote(report.site_file(site, 'report.html')))}\">{_esc(name)}</a></td>"
        f"<td>{site.counts['rows']}</td><td>{site.counts['questions']}</td><td>{site.counts['malformed']}</td>"
        f"<td>{_esc(', '.join(tag for tag, _ in site.analytics['top_tags'][:5]))}</td>"
        f"<td>{_esc(_classifier_cell(site.classifier))}</td></tr>"
        for name, site in report.sites.items())
    columns = ("site", "rows", "questions", "malformed lines", "top tags", "classifier")
    head = f"<tr>{''.join(f'<th>{c}</th>' for c in columns)}</tr>"
    totals = report.counts
    summary = _table([("sites", len(report.sites)), ("inputs", ", ".join(map(shown_url, report.inputs))),
                      ("rows", totals["rows"]), ("questions", totals["questions"]),
                      ("malformed lines", totals["malformed"]), ("total seconds", report.timings.get("total"))])
    warnings = _warnings([f"{name}: {w}" for name, site in report.sites.items() for w in site.warnings])
    body = f'{warnings}{summary}<table class="sites">{head}{rows}</table>{_run_tables(report)}'
    return _page(f"posts-pipeline run over {len(report.sites)} sites", body)


def _classifier_cell(clf: Classifier) -> str:
    if clf.reason:
        return f"skipped: {clf.reason}"
    if clf.accuracy is None:
        return "trained; no question held back to score it"
    return f"{clf.accuracy:.4f} on {clf.scores['test_rows']} questions (baseline {clf.scores['baseline']:.4f})"
