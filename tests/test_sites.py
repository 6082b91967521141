"""Many sites in one run: each site its own figures, classifier and page, the run an index of them."""

from __future__ import annotations

import json
import os
import shutil
from urllib.parse import unquote, urlparse

import dask.config
import pandas as pd
import pyarrow.parquet as pq
import pytest
from bs4 import BeautifulSoup

from pipeline import run, sites

from support import chromium, site_folders

pytestmark = pytest.mark.cluster

SITES = ("3dprinting.meta.stackexchange", "coffee.stackexchange", "stackoverflow-2008-08")
# Two tags coffee.stackexchange has a few dozen questions of (and the others none): one site trains, two skip.
TAGS = {"posts-pipeline.classifier.tags": ["espresso", "flavor"]}


@pytest.fixture(scope="module")
def dumps(tmp_path_factory) -> str:
    return site_folders(tmp_path_factory.mktemp("dumps"), SITES)


@pytest.fixture(scope="module")
def many(dumps, shared_scheduler, tmp_path_factory):
    out = tmp_path_factory.mktemp("many") / "run"
    with dask.config.set({**shared_scheduler, **TAGS}):
        result = run.run([f"{dumps}/*/Posts.xml"], str(out))
    return result, out


@pytest.fixture(scope="module")
def singles(dumps, shared_scheduler, tmp_path_factory):
    done = {}
    for site in SITES:
        out = tmp_path_factory.mktemp("single") / site
        with dask.config.set({**shared_scheduler, **TAGS}):
            run.run([f"{dumps}/{site}/Posts.xml"], str(out))
        done[site] = json.loads((out / "report.json").read_text())
    return done


def test_site_names_come_from_the_archive_or_the_folder():
    assert sites.site_of("s3://dumps/bioinformatics.stackexchange.com.7z") == "bioinformatics.stackexchange.com"
    assert sites.site_of("/data/stackoverflow.com-Posts.7z") == "stackoverflow.com"
    assert sites.site_of("file:///dumps/coffee.stackexchange/Posts.xml") == "coffee.stackexchange"
    assert sites.site_of("dumps/coffee.stackexchange/Posts.xml.gz") == "coffee.stackexchange"
    assert sites.site_of("../Posts.xml") == "site"  # never a path out of the run directory
    assert sites.site_of("/d/my site?/Posts.xml") == "my_site"


def test_each_site_has_the_figures_of_its_own_run(many, singles):
    result, out = many
    report = json.loads((out / "report.json").read_text())
    assert list(report["sites"]) == list(SITES)
    for site in SITES:
        got = dict(report["sites"][site])
        assert got.pop("page") == f"sites/{site}/report.html"
        assert got == {k: v for k, v in singles[site].items() if k in got}, site
    assert report["counts"] == {key: sum(singles[s]["counts"][key] for s in SITES)
                                for key in ("lines", "rows", "questions", "duplicates", "malformed")}
    assert report["sites"]["coffee.stackexchange"]["classifier"]["status"] == "trained"
    assert report["sites"]["stackoverflow-2008-08"]["classifier"]["reason"].startswith("too few labelled questions")


def test_each_site_gets_its_files_and_every_row_its_site(many, singles):
    result, out = many
    for site in SITES:
        assert (out / "sites" / site / "report.html").exists() and (out / "sites" / site / "tag_counts.csv").exists()
    assert (out / "sites" / "coffee.stackexchange" / "model.joblib").exists()
    assert not (out / "sites" / "stackoverflow-2008-08" / "model.joblib").exists()
    assert not (out / "report.html").exists() and (out / "index.html").exists()
    questions = pq.read_table(out / "questions", columns=["site", "id"]).to_pandas()
    assert questions.groupby("site").size().to_dict() == {s: singles[s]["counts"]["questions"] for s in SITES}
    assert not questions.duplicated().any()
    labelled = pq.read_table(out / "labelled", columns=["site", "id"]).to_pandas()
    assert set(labelled["site"]) == {"coffee.stackexchange"}
    split = pd.read_csv(out / "test_split.csv")
    assert list(split.columns) == ["site", "id"] and set(split["site"]) == {"coffee.stackexchange"}
    assert len(split) == singles["coffee.stackexchange"]["classifier"]["test_rows"]


def _links(page) -> list[str]:
    return [a["href"] for a in BeautifulSoup(page, "html.parser").find_all("a")]


def test_the_index_and_a_site_page_in_a_real_browser(many, tmp_path):
    result, out = many
    index = out / "index.html"
    dom = BeautifulSoup(chromium(index.as_uri(), "--dump-dom"), "html.parser")
    rows = dom.select("table.sites tr")[1:]
    assert [r.find("a").get_text() for r in rows] == list(SITES)
    cells = {r.find("a").get_text(): [td.get_text() for td in r.find_all("td")] for r in rows}
    coffee = result.sites["coffee.stackexchange"]
    assert cells["coffee.stackexchange"][1:3] == [str(coffee.counts["rows"]), str(coffee.counts["questions"])]
    assert cells["coffee.stackexchange"][5].startswith(f"{coffee.classifier.accuracy:.4f} on ")
    assert cells["stackoverflow-2008-08"][5].startswith("skipped: too few labelled questions")
    for href in _links(str(dom)):
        assert (out / unquote(href)).is_file(), href

    page = out / "sites" / "coffee.stackexchange" / "report.html"
    site_dom = BeautifulSoup(chromium(page.as_uri(), "--dump-dom"), "html.parser")
    assert "always guessing the larger class would score" in site_dom.select_one("p.classifier").get_text()
    assert len(site_dom.find_all("svg")) == 4  # co-occurrence, top tags, per year, confusion matrix
    back = [urlparse(page.as_uri() + "/../" + h) for h in _links(str(site_dom))]
    assert [os.path.normpath(unquote(u.path)) for u in back] == [str(index)]

    shot = tmp_path / "index.png"
    chromium(index.as_uri(), f"--screenshot={shot}", "--window-size=1200,900", "--hide-scrollbars")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("POSTS_PIPELINE_SCREENSHOTS"):  # to look at them: a folder to copy them to
        shutil.copy(shot, os.environ["POSTS_PIPELINE_SCREENSHOTS"])
        shutil.copytree(out, os.path.join(os.environ["POSTS_PIPELINE_SCREENSHOTS"], "run"), dirs_exist_ok=True)


def test_the_command_over_many_sites_names_the_index(dumps, shared_scheduler, tmp_path, capsys):
    from pipeline import cli

    out = tmp_path / "run"
    address = shared_scheduler["posts-pipeline.cluster.scheduler-address"]
    assert cli.main(["run", "-i", f"{dumps}/*/Posts.xml", "-o", str(out), "--scheduler", address,
                     "--no-progress", "--classifier-tags", "espresso", "flavor"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.endswith(f"3 sites, a classifier for 1 of them; report: {out}/index.html")
