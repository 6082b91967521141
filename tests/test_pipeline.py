"""The whole pipeline on an embedded LocalCluster, held to the ElementTree reference computation."""

from __future__ import annotations

import json
import os

import dask.config
import joblib
import pandas as pd
import pyarrow.parquet as pq
import pytest

from pipeline import cli, model, run
from pipeline.errors import PipelineError
from pipeline.output import part_file

import reference
from support import write_posts

pytestmark = pytest.mark.cluster

SETTINGS = {"posts-pipeline.blocksize": "1MiB", "posts-pipeline.progress": False}


@pytest.fixture(scope="module")
def finished(posts, tmp_path_factory):
    """One run over several blocks (so every multi-partition trap is exercised), shared by the tests."""
    out = str(tmp_path_factory.mktemp("runs") / "run")
    with dask.config.set(SETTINGS):
        result = run.run([posts], out)
    return result.as_json(), out, reference.summary(posts)


def test_counts_equal_the_reference(finished):
    result, _, ref = finished
    assert result["settings"]["partitions"] > 5
    assert result["counts"]["rows"] == ref["rows"]
    assert result["counts"]["questions"] == ref["questions"]
    assert result["counts"]["malformed"] == len(ref["malformed_lines"]) > 0


def test_malformed_samples_name_file_and_true_line(finished, posts):
    result, _, ref = finished
    samples = result["malformed_samples"]
    assert [s["line"] for s in samples] == ref["malformed_lines"][: len(samples)]
    with open(posts, encoding="utf-8-sig") as f:
        lines = f.read().split("\n")
    for s in samples:
        assert s["file"].endswith(posts)
        assert lines[s["line"] - 1].strip().startswith(s["text"][:40])


def test_analytics_equal_the_reference(finished):
    result, out, ref = finished
    expected_cooc = sorted(ref["cooccurrence"].items(), key=lambda kv: (-kv[1], kv[0]))[:20]
    assert [tuple(x) for x in result["cooccurrence"]["top"]] == expected_cooc
    expected_top = sorted(ref["tag_counts"].items(), key=lambda kv: (-kv[1], kv[0]))
    assert [tuple(x) for x in result["top_tags"]] == expected_top[:20]
    assert result["top_tags"][0][1] > result["top_tags"][-1][1]  # sorted by count, not by name
    assert result["questions_per_year"] == dict(sorted(ref["per_year"].items()))
    counts = pd.read_csv(os.path.join(out, "tag_counts.csv"), keep_default_na=False)
    assert list(map(tuple, counts.itertuples(index=False))) == expected_top


def test_accuracy_matches_the_blog_method_on_the_same_split(finished):
    result, out, ref = finished
    clf = result["classifier"]
    assert clf["train_rows"] + clf["test_rows"] == len(ref["labelled"]) == result["labelled_questions"]
    test_ids = set(pd.read_csv(os.path.join(out, "test_split.csv"))["id"])
    assert len(test_ids) == clf["test_rows"] and test_ids <= set(ref["labelled"])
    blog = reference.blog_accuracy(ref["labelled"], test_ids)
    # One pass of SGD moves with the order of the rows by about ±0.01, the blog's as ours: both
    # methods' accuracy is the mean over five orders (ours: the batch order and SGD's seed), on the
    # run's own labelled files and split. The seed the run used gives the run's accuracy again.
    files = [os.path.join(out, "labelled", part_file(i)) for i in range(result["settings"]["partitions"])]
    held = [pq.read_table(f, columns=["test"]).column("test").to_numpy() for f in files]
    counts = pd.DataFrame({"train": [int((~h).sum()) for h in held], "test": [int(h.sum()) for h in held]})
    ours = [model.train(files, counts, ("python", "r"), seed, {})[0]["accuracy"] for seed in range(5)]
    assert ours[0] == clf["accuracy"]  # the default random-state, 0
    assert sum(ours) / len(ours) >= blog - 0.01, (ours, blog)
    assert clf["accuracy"] > 0.8 and clf["status"] == "trained"
    assert 0.5 <= clf["baseline"] < clf["accuracy"]  # the share of the larger class among the test questions
    assert clf["counts"]["python"]["test"] + clf["counts"]["r"]["test"] == clf["test_rows"]
    assert sum(map(sum, clf["confusion_matrix"])) == clf["test_rows"]



def test_the_model_depends_on_the_questions_and_seed_not_on_blocks_or_workers(posts, tmp_path, monkeypatch):
    """The same dump cut into other blocks on another number of workers trains the same model: batches
    of training questions in input order, not one step per block (small batches, so that they cross
    block ends and row groups)."""
    monkeypatch.setattr(model, "TRAIN_BATCH", 100)
    runs = {}
    for name, blocksize, workers in (("small blocks", "512KiB", 2), ("large blocks", "4MiB", 1)):
        out = str(tmp_path / name.replace(" ", "-"))
        with dask.config.set({**SETTINGS, "posts-pipeline.blocksize": blocksize,
                              "posts-pipeline.cluster.local.n-workers": workers}):
            report = run.run([posts], out).as_json()
        runs[name] = report, joblib.load(os.path.join(out, "model.joblib"))["pipeline"][-1]
    (small, small_model), (large, large_model) = runs.values()
    assert small["settings"]["partitions"] > 2 * large["settings"]["partitions"]
    assert small["classifier"]["train_rows"] > 3 * 100
    assert small["classifier"]["accuracy"] == large["classifier"]["accuracy"]
    assert (small_model.coef_ != large_model.coef_).nnz == 0 and small_model.coef_.nnz > 0
    assert (small_model.intercept_ == large_model.intercept_).all()

def test_outputs_are_complete_and_readable(finished):
    result, out, _ = finished
    manifest = json.load(open(os.path.join(out, "_SUCCESS")))
    for name in ("report.json", "report.html", "tag_counts.csv", "model.joblib", "test_split.csv"):
        assert manifest["files"][name] == os.path.getsize(os.path.join(out, name))
    assert json.load(open(os.path.join(out, "report.json")))["counts"] == result["counts"]
    assert not [n for n in os.listdir(os.path.dirname(out)) if ".partial-" in n]
    html = open(os.path.join(out, "report.html")).read()
    assert html.count("<svg ") == 4  # co-occurrence, top tags, per year, confusion matrix
    for label in (result["cooccurrence"]["top"][0][0], result["top_tags"][0][0], *result["questions_per_year"]):
        assert f">{label}</text>" in html
    # The cleaned questions: plain pandas reads them, and tags are lists, not their string form.
    table = pq.read_table(os.path.join(out, "questions"))
    frame = table.to_pandas()
    assert len(frame) == result["counts"]["questions"]
    first = frame["tags"].iloc[0]
    assert not isinstance(first, str) and len(first) >= 1 and all(isinstance(t, str) for t in first)
    assert str(table.schema.field("tags").type) == "list<element: string>"
    fitted = __import__("joblib").load(os.path.join(out, "model.joblib"))
    assert fitted["labels"] == ["python", "r"]
    assert os.path.getsize(os.path.join(out, "model.joblib")) < 1_000_000  # sparse weights, not 2**20 floats
    assert fitted["pipeline"].predict(["import pandas as pd\ndef f(self): pass"])[0] == 0


def test_each_block_is_read_and_parsed_once(finished):
    result, _, _ = finished
    # Parsing, cleaning, writing and analytics are one task per block; the model reads the labelled
    # questions that pass wrote, each block's file once to fit and once to score.
    partitions = result["settings"]["partitions"]
    tasks = result["tasks_by_stage"]
    assert tasks["first pass"] == partitions and "read" not in tasks  # each block is read by the task that parses it
    assert tasks["classifier: read+hash"] <= partitions
    assert tasks["classifier: read+hash+predict"] <= partitions
    assert set(result["compute_seconds_by_stage"]) >= {"read", "parse+questions", "clean", "analytics",
                                                       "write Parquet", "classifier: read+hash", "classifier: fit"}


def test_failed_run_leaves_nothing_behind(posts, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("model exploded")

    monkeypatch.setattr(model, "train", broken)
    out = tmp_path / "run"
    with dask.config.set(SETTINGS), pytest.raises(RuntimeError, match="exploded"):
        run.run([posts], str(out))
    assert [p.name for p in tmp_path.iterdir()] == ["run.failed-driver.log"]  # no run, no staging: its log
    assert "the run failed: RuntimeError('model exploded')" in (tmp_path / "run.failed-driver.log").read_text()



def test_a_failed_runs_log_replaces_an_earlier_failed_log_but_no_other_file(posts, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("model exploded")

    monkeypatch.setattr(model, "train", broken)
    beside = tmp_path / "run.failed-driver.log"
    for earlier, kept in (("notes of my own\n", True), ("12:00:00 INFO pipeline.run: an earlier run\n", False)):
        beside.write_text(earlier)
        with dask.config.set(SETTINGS), pytest.raises(RuntimeError, match="exploded"):
            run.run([posts], str(tmp_path / "run"))
        assert (beside.read_text() == earlier) is kept, beside.read_text()[:200]

def test_no_labelled_question_skips_the_classifier_and_writes_the_rest(tmp_path):
    dump = write_posts(tmp_path / "Posts.xml", [(1, ["sql"], "joins"), (2, ["sql", "index"], "b-trees")])
    out = tmp_path / "run"
    with dask.config.set(SETTINGS):
        result = run.run([dump], str(out))
    clf = json.load(open(out / "report.json"))["classifier"]
    assert clf["status"] == "skipped"
    assert clf["counts"] == {"python": {"train": 0, "test": 0}, "r": {"train": 0, "test": 0}}
    assert "python has 0 and r has 0" in clf["reason"] and clf["suggested_tags"] == ["sql", "index"]
    assert (out / "_SUCCESS").exists() and (out / "tag_counts.csv").exists() and (out / "questions").is_dir()
    assert not (out / "model.joblib").exists() and not (out / "test_split.csv").exists()
    html = (out / "report.html").read_text()
    assert "was skipped: too few labelled questions" in html and "--classifier-tags sql index" in html
    (site,) = result.sites.values()
    assert site.classifier.model is None and site.classifier.test_ids is None


def labelled_dump(path, python: int, r: int) -> str:
    """``python`` questions tagged python and ``r`` tagged r, with words each label is known by."""
    questions = [(i, ["python"], "import pandas def self lambda") for i in range(1, python + 1)]
    questions += [(python + i, ["r"], "library ggplot2 data.frame dplyr") for i in range(1, r + 1)]
    return write_posts(path, questions)


@pytest.mark.parametrize("python, r, settings, reason", [
    (1, 0, {}, "python has 1 and r has 0"),
    (30, 3, {}, "r has 3 (classifier.min-questions asks for 10"),
    (1, 1, {"classifier.min-questions": 1, "classifier.test-size": 1e-9}, "no question was held back"),
    (1, 1, {"classifier.min-questions": 1, "classifier.test-size": 1 - 1e-9},
     "no python or r question among the training"),
])
def test_small_or_one_sided_sets_skip_with_the_reason(tmp_path, python, r, settings, reason):
    out = tmp_path / "run"
    with dask.config.set({**SETTINGS, **{f"posts-pipeline.{k}": v for k, v in settings.items()}}):
        result = run.run([labelled_dump(tmp_path / "Posts.xml", python, r)], str(out))
    (site,) = result.sites.values()
    assert site.classifier.status == "skipped" and reason in site.classifier.reason
    assert (out / "_SUCCESS").exists() and not (out / "model.joblib").exists()


def test_a_few_dozen_of_each_label_still_train(tmp_path):
    out = tmp_path / "run"
    with dask.config.set(SETTINGS):
        result = run.run([labelled_dump(tmp_path / "Posts.xml", 15, 47)], str(out))
    clf = json.load(open(out / "report.json"))["classifier"]
    assert clf["status"] == "trained" and clf["train_rows"] + clf["test_rows"] == 62
    assert clf["counts"]["python"]["train"] + clf["counts"]["python"]["test"] == 15
    test_ids = pd.read_csv(out / "test_split.csv")
    assert len(test_ids) == clf["test_rows"] > 0 and clf["baseline"] == max(
        (test_ids["id"] <= 15).mean(), (test_ids["id"] > 15).mean())
    assert (out / "model.joblib").exists()
    assert "always guessing the larger class would score" in (out / "report.html").read_text()
    (site,) = result.sites.values()
    assert site.classifier.accuracy == clf["accuracy"]


def test_one_class_on_the_training_side_still_gives_a_model(tmp_path):
    # Below the skip rule (min-questions 1): model.train itself copes with a single class.
    with dask.config.set(SETTINGS):
        result = run.run([labelled_dump(tmp_path / "Posts.xml", 12, 0)], str(tmp_path / "run"))
    (site,) = result.sites.values()
    assert site.classifier.status == "skipped" and "r has 0" in site.classifier.reason
    files = [str(tmp_path / "run" / "labelled" / part_file(i)) for i in range(result.settings["partitions"])]
    held = [pq.read_table(f, columns=["test"]).column("test").to_numpy() for f in files]
    counts = pd.DataFrame({"train": [int((~h).sum()) for h in held], "test": [int(h.sum()) for h in held]})
    scores, fitted, test_ids = model.train(files, counts, ("python", "r"), 0, {})
    assert scores["train_rows"] + scores["test_rows"] == 12 and scores["baseline"] in (1.0, None)
    assert fitted["pipeline"].predict(["import pandas"])[0] == 0
    # No held-back question to score: a model, and no accuracy rather than a made-up one.
    scores, fitted, test_ids = model.train(files, counts.assign(test=0), ("python", "r"), 0, {})
    assert (scores["accuracy"], scores["baseline"], scores["test_rows"], len(test_ids)) == (None, None, 0, 0)


def test_no_classifier_skips_it_outright(posts, tmp_path):
    out = tmp_path / "run"
    with dask.config.set({**SETTINGS, "posts-pipeline.classifier.enabled": False}):
        result = run.run([posts], str(out))
    (site,) = result.sites.values()
    assert site.classifier.status == "skipped" and "turned off" in site.classifier.reason
    assert not (out / "model.joblib").exists() and not (out / "labelled").exists()
    assert "classifier: fit" not in result.tasks_by_stage


def test_classifier_tags_that_no_question_has_are_not_a_one_class_model(posts, tmp_path):
    with dask.config.set({**SETTINGS, "posts-pipeline.classifier.tags": ["python", "nosuch"]}):
        result = run.run([posts], str(tmp_path / "run"))
    (site,) = result.sites.values()
    assert site.classifier.accuracy is None and "nosuch has 0" in site.classifier.reason


def test_unknown_html_parser_is_refused(posts, tmp_path):
    out = tmp_path / "run"
    with dask.config.set({**SETTINGS, "posts-pipeline.clean.html-parser": "lxml"}), \
            pytest.raises(PipelineError, match="html-parser must be one of fast, bs4, not 'lxml'"):
        run.run([posts], str(out))
    assert not out.exists()


def test_existing_output_is_not_overwritten_by_default(posts, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(PipelineError, match="already exists.*--overwrite"):
        run.run([posts], str(out))
    assert (out / "keep.txt").read_text() == "mine"


def test_missing_input_is_one_clear_error(tmp_path):
    with pytest.raises(PipelineError, match="no input file matches .*nothing-here"):
        run.run([str(tmp_path / "nothing-here" / "*.xml")], str(tmp_path / "run"))
    with pytest.raises(PipelineError, match="no input file matches .*Posts.xml"):
        run.run([str(tmp_path / "Posts.xml")], str(tmp_path / "run"))


def refused(dump, out, capsys) -> str:
    """The one line (no traceback) a run of ``dump`` into ``out`` stops with, leaving no ``out``."""
    assert cli.main(["run", "-i", str(dump), "-o", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and not out.exists()
    return err


def test_a_latin1_file_is_named_before_anything_starts(tmp_path, capsys):
    dump = tmp_path / "Posts.xml"
    text = open(labelled_dump(tmp_path / "utf8.xml", 12, 12), encoding="utf-8").read()
    dump.write_bytes(text.replace(' Body="', ' Body="café ').encode("latin-1"))  # every row
    assert f"{dump} is XML text but not UTF-8 (Latin-1" in refused(dump, tmp_path / "run", capsys)


def test_a_mostly_malformed_file_fails_with_the_first_reasons_unless_allowed(tmp_path, capsys):
    dump = tmp_path / "Posts.xml"
    text = open(labelled_dump(tmp_path / "good.xml", 12, 12), encoding="utf-8").read()
    dump.write_text(text.replace(' Body="', ' Body="<'))  # every row: a "<" in a value is not XML
    out = tmp_path / "run"
    err = refused(dump, out, capsys)
    assert "100% of the row lines of " in err and "(24 of 24), first: " in err and "Posts.xml:3 " in err
    assert "--allow-malformed" in err

    assert cli.main(["run", "-i", str(dump), "-o", str(out), "--no-progress", "--allow-malformed"]) == 0
    report = json.load(open(out / "report.json"))
    assert report["counts"]["malformed"] == 24 and report["warnings"][0].startswith("100% of the row lines")
    assert "Warning: 100% of the row lines" in (out / "report.html").read_text()


def test_a_few_malformed_lines_warn_without_failing(tmp_path, caplog):
    dump = labelled_dump(tmp_path / "Posts.xml", 12, 12)
    with open(dump) as f:
        lines = f.read().split("\n")
    with open(dump, "w") as f:
        f.write("\n".join(lines[:5] + ['  <row Id="broken', "  <row Id=\"x\" />"] + lines[5:]))
    with dask.config.set(SETTINGS):
        result = run.run([dump], str(tmp_path / "run"))
    (site,) = result.sites.values()
    assert site.counts["questions"] == 24 and site.counts["malformed"] == 2
    assert len(site.warnings) == 1 and site.warnings[0].startswith("8% of the row lines") and "(2 of 26)" in caplog.text


def test_duplicate_ids_are_counted_reported_and_left_out(tmp_path):
    (tmp_path / "once").mkdir()
    once = labelled_dump(tmp_path / "once" / "Posts.xml", 30, 20)
    site = tmp_path / "site"
    site.mkdir()
    text = open(once).read()
    copy = text.replace('Body="&lt;p&gt;', 'Body="&lt;p&gt;copy ')
    fifth = [line for line in copy.split("\n") if 'Id="5"' in line]
    (site / "a.xml").write_text(text.replace("</posts>", fifth[0] + "\n</posts>"))  # id 5 again, same block
    (site / "b.xml").write_text(copy)  # every id again, in other blocks
    with dask.config.set(SETTINGS):
        single = run.run([once], str(tmp_path / "single")).as_json()
        twice = run.run([str(site / "*.xml")], str(tmp_path / "twice")).as_json()
    assert twice["site"] == "site" and twice["counts"]["duplicates"] == 51 and single["counts"]["duplicates"] == 0
    assert twice["counts"]["questions"] == single["counts"]["questions"] == 50
    for key in ("top_tags", "cooccurrence", "questions_per_year", "labelled_questions"):
        assert twice[key] == single[key], key
    assert twice["classifier"]["counts"] == single["classifier"]["counts"]
    assert twice["warnings"][0].startswith("51 questions of site repeat the Id of an earlier one")
    kept = pq.read_table(tmp_path / "twice" / "questions", columns=["id", "body_text"]).to_pandas()
    assert sorted(kept["id"]) == list(range(1, 51)) and not kept["body_text"].str.contains("copy").any()
    labelled = pq.read_table(tmp_path / "twice" / "labelled", columns=["id", "text"]).to_pandas()
    assert sorted(labelled["id"]) == list(range(1, 51)) and not labelled["text"].str.contains("copy").any()
