"""The dumps as they are published (.7z site archives, a single-entry Stack Overflow archive, .gz, .bz2),
read by the whole pipeline, and inputs we cannot read named before any cluster starts."""

from __future__ import annotations

import bz2
import contextlib
import gzip
import os
import shutil
import threading
import zipfile

import dask.config
import pandas as pd
import psutil
import py7zr
import pytest

from pipeline import cli, run

pytestmark = pytest.mark.cluster

DUMPS = os.path.join(os.path.dirname(__file__), "data", "real-dumps")
# Real sites, with a tag to analyse and two to classify that each site has (neither has python and r).
SITES = {
    "coffee.stackexchange": {"posts-pipeline.analytics.tag": "espresso",
                             "posts-pipeline.classifier.tags": ["brewing-process", "flavor"]},
    "stackoverflow-2008-08": {"posts-pipeline.analytics.tag": "c#",
                              "posts-pipeline.classifier.tags": ["c#", "javascript"]},
}
USERS = '<?xml version="1.0" encoding="utf-8"?>\n<users>\n  <row Id="1" Reputation="1" DisplayName="a" />\n</users>\n'
VOTES = '<?xml version="1.0" encoding="utf-8"?>\n<votes>\n  <row Id="1" PostId="1" VoteTypeId="2" />\n</votes>\n'


def posts_of(site: str) -> str:
    return os.path.join(DUMPS, site, "Posts.xml")


def site_archive(site: str, folder) -> str:
    """A site's archive as published: Posts.xml among the other tables of the dump, BZip2-compressed."""
    (folder / "Users.xml").write_text(USERS)
    (folder / "Votes.xml").write_text(VOTES)
    path = str(folder / f"{site}.com.7z")
    with py7zr.SevenZipFile(path, "w", filters=[{"id": py7zr.FILTER_BZIP2}]) as z:
        z.write(folder / "Users.xml", "Users.xml")
        z.write(posts_of(site), "Posts.xml")
        z.write(folder / "Votes.xml", "Votes.xml")
    return path


def single_entry_archive(site: str, folder) -> str:
    """``stackoverflow.com-Posts.7z``: one entry, LZMA2."""
    path = str(folder / "stackoverflow.com-Posts.7z")
    with py7zr.SevenZipFile(path, "w") as z:
        z.write(posts_of(site), "Posts.xml")
    return path


def compressed(site: str, folder, opener, suffix: str) -> str:
    path = str(folder / f"Posts.xml.{suffix}")
    with open(posts_of(site), "rb") as src, opener(path, "wb") as dst:
        shutil.copyfileobj(src, dst)
    return path


def run_on(site: str, inputs: str, out: str, unpack_dir: str, storage_options: dict | None = None) -> dict:
    settings = {"posts-pipeline.blocksize": "64KiB", "posts-pipeline.progress": False,
                "posts-pipeline.unpack-dir": unpack_dir, "posts-pipeline.storage-options": storage_options or {},
                **SITES[site]}
    with dask.config.set(settings):
        return run.run([inputs], out).as_json()


def figures(result: dict, out: str) -> dict:
    """What must not depend on how the input was packed: counts, every tag's count, co-occurrence, classifier."""
    tags = pd.read_csv(os.path.join(out, "tag_counts.csv"), keep_default_na=False)
    return {"counts": result["counts"], "tags": list(map(tuple, tags.itertuples(index=False))),
            "cooccurrence": result["cooccurrence"], "top_tags": result["top_tags"],
            "per_year": result["questions_per_year"], "classifier": result["classifier"]["confusion_matrix"],
            "malformed": [(s["line"], s["text"]) for s in result["malformed_samples"]]}


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory):
    """Each site's figures from its plain Posts.xml."""
    root = tmp_path_factory.mktemp("plain")
    return {site: figures(run_on(site, posts_of(site), str(root / site), str(root / "unused")), str(root / site))
            for site in SITES}


@pytest.mark.parametrize("layout", ["site 7z", "gz", "bz2"])
def test_packed_site_gives_the_results_of_its_posts_xml(layout, unpacked, tmp_path):
    site = "coffee.stackexchange"
    make = {"site 7z": lambda: site_archive(site, tmp_path), "gz": lambda: compressed(site, tmp_path, gzip.open, "gz"),
            "bz2": lambda: compressed(site, tmp_path, bz2.open, "bz2")}[layout]
    archive = make()
    result = run_on(site, archive, str(tmp_path / "run"), str(tmp_path / "unpacked"))
    assert figures(result, str(tmp_path / "run")) == unpacked[site]
    assert result["counts"]["questions"] == 225 and result["settings"]["partitions"] > 5  # cut into blocks
    assert [i.removeprefix("file://") for i in result["inputs"]] == [archive]  # the user's path, not the copy


def test_single_entry_archive_gives_the_results_of_its_posts_xml(unpacked, tmp_path):
    site = "stackoverflow-2008-08"
    archive = single_entry_archive(site, tmp_path)
    result = run_on(site, archive, str(tmp_path / "run"), str(tmp_path / "unpacked"))
    assert figures(result, str(tmp_path / "run")) == unpacked[site]

    # A later run finds the unpacked copy and does not unpack again.
    (copy,) = [os.path.join(d, f) for d, _, files in os.walk(tmp_path / "unpacked") for f in files]
    before = os.stat(copy).st_mtime_ns
    again = run_on(site, archive, str(tmp_path / "again"), str(tmp_path / "unpacked"))
    assert figures(again, str(tmp_path / "again")) == unpacked[site]
    assert os.stat(copy).st_mtime_ns == before


@pytest.mark.s3
@pytest.mark.parametrize("layout", ["site 7z", "gz"])
def test_packed_input_from_s3(layout, s3, unpacked, tmp_path):
    site = "coffee.stackexchange"
    local = site_archive(site, tmp_path) if layout == "site 7z" else compressed(site, tmp_path, gzip.open, "gz")
    fs = s3.filesystem()
    bucket = f"dumps-{layout.replace(' ', '')}"
    fs.mkdir(bucket)
    fs.put(local, f"{bucket}/{os.path.basename(local)}")
    url = f"s3://{bucket}/{os.path.basename(local)}"
    result = run_on(site, url, str(tmp_path / "run"), f"s3://{bucket}/unpacked", {"endpoint_url": s3.endpoint})
    assert figures(result, str(tmp_path / "run")) == unpacked[site]
    assert result["inputs"] == [url]
    assert [p for p in fs.find(f"{bucket}/unpacked") if p.endswith("/Posts.xml")]


def _bad_inputs(folder) -> dict[str, str]:
    """Files that are not a Posts.xml, and what the error must call them."""
    (folder / "binary.xml").write_bytes(bytes(range(256)) * 8)
    (folder / "utf16.xml").write_bytes(open(posts_of("coffee.stackexchange"), encoding="utf-8-sig").read()
                                       [:5000].encode("utf-16"))
    (folder / "empty.xml").write_bytes(b"")
    (folder / "Users.xml").write_text(USERS)
    with zipfile.ZipFile(folder / "site.zip", "w") as z:
        z.write(posts_of("coffee.stackexchange"), "Posts.xml")
    (folder / "site.rar").write_bytes(b"Rar!\x1a\x07\x01\x00" + bytes(64))
    with py7zr.SevenZipFile(folder / "users.7z", "w") as z:
        z.writestr(USERS, "Users.xml")
    with gzip.open(folder / "gzipped.xml", "wb") as f:
        f.write(USERS.encode())
    return {"gzipped.xml": "is a gzip file, but its name says otherwise", "binary.xml": "is a binary file",
            "utf16.xml": "is UTF-16 text", "empty.xml": "is an empty file",
            "Users.xml": "is the <users> table", "site.zip": "is a ZIP archive", "site.rar": "is a RAR archive",
            "users.7z": "holds no single Posts.xml (it holds Users.xml)"}


def test_bad_inputs_are_named_before_any_cluster_starts(tmp_path, capsys):
    expected = _bad_inputs(tmp_path)
    for name, what in expected.items():
        children, running = set(), threading.Event()
        already = {p.pid for p in psutil.Process().children(recursive=True)}  # e.g. another test's S3 server

        def watch():  # every process below this one, but the fork server (and its resource tracker) that the CLI
            while not running.is_set():  # starts early, for workers to fork from
                for p in psutil.Process().children(recursive=True):
                    if p.pid in already:
                        continue
                    with contextlib.suppress(psutil.NoSuchProcess):
                        command = " ".join(p.cmdline())
                        if not (p.ppid() == os.getpid() and ("forkserver" in command or "resource_tracker" in command)):
                            children.add(f"{p.pid} {command[:200]}")

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            code = cli.main(["run", "--no-progress", "--input", str(tmp_path / name),
                             "--output", str(tmp_path / "run")])
        finally:
            running.set()
            watcher.join()
        err = capsys.readouterr().err
        assert code == 2, (name, err)
        assert err.startswith("posts-pipeline: error: ") and f"{tmp_path / name} {what}" in err, err
        assert len(err.splitlines()) == 1 and "Traceback" not in err
        assert not children, f"{name}: processes were started ({children})"
        assert not (tmp_path / "run").exists()
