"""Read: a path, a glob or an s3:// URL of Posts.xml → blocks of whole lines, one task each.

Inputs are listed once, on the driver, sizes included (one listing per glob, one request per
named file); each block is then read by the task that parses it. Blocks are cut at newlines as
``dask.bytes.read_bytes`` cuts them (``fsspec.utils.read_block``), and the XML declaration,
``<posts>``, the BOM and CRLF are dealt with by the parser (``parse.split_lines``): no ``sed`` step.
A packed input (.7z, .gz, …) is unpacked once into a plain copy, which is cut the same way (``archive``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import distributed
from dask.utils import parse_bytes
from fsspec.utils import read_block

from pipeline import archive
from pipeline.errors import PipelineError
from pipeline.storage import filesystem, open_file, storage_errors

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Block:
    """One task's worth of input: the lines that start in ``length`` bytes from ``offset`` of ``path``."""

    path: str  # the input as the user named it (an archive's own path)
    index: int  # position within its file, so that line numbers can be recovered
    offset: int
    length: int
    source: str | None = None  # where the bytes are, if not at path: a packed input's plain copy

    def read(self, storage_options: dict) -> bytes:
        """The block's bytes, whole lines only."""
        with open_file(self.source or self.path, "rb", storage_options) as f:
            return read_block(f, self.offset, self.length, delimiter=b"\n")


def expand(urlpaths: str | list[str], storage_options: dict, cluster_kind: str = "local",
           unpack_dir: str | None = None) -> dict[str, int]:
    """Every file the inputs name, globs expanded, with its size; a clear error for none, a missing one,
    or one that is not a Posts.xml or a supported archive of one (its first bytes are read). A packed one
    needs an ``unpack-dir`` that every worker reaches unless the cluster is a local one."""
    files: dict[str, int] = {}
    for urlpath in [urlpaths] if isinstance(urlpaths, str) else urlpaths:
        fs, path = filesystem(urlpath, storage_options)
        with storage_errors(urlpath):
            found = fs.glob(path, detail=True) if "*" in path else _info(fs, path)  # "*": as fsspec and dask decide
        matched = {fs.unstrip_protocol(p): info["size"] for p, info in sorted(found.items()) if info["type"] == "file"}
        if not matched and len(found) == 1 and next(iter(found.values()))["type"] == "directory":
            raise PipelineError(f"{urlpath} is a directory or bucket: name a file, "
                                f"or a glob such as {urlpath.rstrip('/')}/*.xml")
        if not matched:
            raise PipelineError(f"no input file matches {urlpath}")
        files.update(matched)
    packed = []
    for url in files:
        with storage_errors(url):
            packed += [url] if archive.inspect(url, storage_options) else []
    if packed and not unpack_dir and cluster_kind != "local":
        raise PipelineError(f"{packed[0]} is packed: a cluster other than a local one needs unpack-dir on storage "
                            "that every worker reaches (e.g. s3://bucket/unpacked) to unpack it into")
    return files


def _info(fs, path: str) -> dict[str, dict]:
    try:
        return {path: fs.info(path)}
    except FileNotFoundError:
        return {}


def block_count(size: int, blocksize: int, multiple: int) -> int:
    """How many blocks of at most ``blocksize`` to cut ``size`` bytes into: a multiple of ``multiple``,
    so that no worker is left with one block more than the others at the end (never a block of no bytes)."""
    count = -(-size // blocksize)
    return max(1, min(-(-count // multiple) * multiple, size))


def blocks(files: dict[str, int], blocksize: str | int, multiple: int = 1,
           storage_options: dict | None = None, unpack_dir: str | None = None) -> list[Block]:
    """The blocks of every file (path → size), of equal sizes, ``multiple`` per file or a multiple of it.

    A packed file (.7z, .gz, …) is first unpacked into its plain copy, unless a run did it before
    (``unpack``), and cut from there.
    """
    blocksize = parse_bytes(blocksize) if isinstance(blocksize, str) else blocksize
    storage_options = storage_options or {}
    packed = {}
    for path in filter(archive.named_packed, files):  # checked by expand: the name says what the content is
        with storage_errors(path):
            packed[path] = archive.inspect(path, storage_options)
    into = archive.unpack_dir(unpack_dir)
    sources = {path: archive.unpacked_url(p, into) for path, p in packed.items()}
    unpack({packed[p]: sources[p] for p in packed if not filesystem(sources[p], storage_options)[0].exists(sources[p])},
           into, storage_options)
    out = []
    for path, size in files.items():
        source = sources.get(path)
        if source:
            size = filesystem(source, storage_options)[0].size(source)
        count = block_count(size, blocksize, multiple)
        cuts = [size * i // count for i in range(count + 1)]
        out += [Block(path, i, start, end - start, source) for i, (start, end) in enumerate(zip(cuts, cuts[1:]))]
    return out


def unpack(todo: dict[archive.Packed, str], into: str, storage_options: dict) -> None:
    """Unpack each packed input into its plain copy: one task each on the cluster, which reaches the inputs
    and the unpack folder as the block tasks will (here, if no cluster is connected)."""
    if not todo:
        return
    log.info("unpacking %d packed input(s) into %s", len(todo), into)
    with storage_errors(f"{', '.join(p.url for p in todo)} or {into}"):
        try:
            client = distributed.default_client()
        except ValueError:
            for packed, target in todo.items():
                archive.unpack(packed, target, storage_options)
            return
        client.gather(client.map(archive.unpack, list(todo), list(todo.values()), storage_options=storage_options,
                                 pure=False))

