"""Sites: which Stack Exchange site each input file holds, named from its archive or its folder.

A site's dump is published as ``bioinformatics.stackexchange.com.7z`` (or ``stackoverflow.com-Posts.7z``)
and unpacked as ``<site>/Posts.xml``: the archive's name is the site's; a plain ``.xml`` file takes the
name of its folder. Ids are unique within a site only, so each site's figures and classifier are its own.
"""

from __future__ import annotations

import posixpath
import re

# Suffixes of archives and compressed files, as the published dumps and fsspec's compressions name them.
ARCHIVE = re.compile(r"\.(7z|gz|bz2|xz|zst|zip|tar)$", re.IGNORECASE)
POSTS_SUFFIX = re.compile(r"-posts$", re.IGNORECASE)  # stackoverflow.com-Posts.7z
UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")  # a site's name becomes a folder and a link of the run directory


def site_of(path: str) -> str:
    """``…/bioinformatics.stackexchange.com.7z`` → ``bioinformatics.stackexchange.com``;
    ``dumps/coffee.stackexchange/Posts.xml`` (or ``…/Posts.xml.gz``) → ``coffee.stackexchange``."""
    path = path.split("://", 1)[-1].rstrip("/")
    folder, name = posixpath.split(path)
    archive = bool(ARCHIVE.search(name))
    while ARCHIVE.search(name):
        name = ARCHIVE.sub("", name)
    if not archive or name.lower().endswith(".xml"):
        name = posixpath.basename(folder)
    name = UNSAFE.sub("_", POSTS_SUFFIX.sub("", name)).strip("._")
    return name or "site"


def of_files(paths: list[str]) -> dict[str, str]:
    """Each input file's site."""
    return {path: site_of(path) for path in paths}
