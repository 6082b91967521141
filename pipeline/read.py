"""Read: a path, a glob or an s3:// URL of Posts.xml → blocks of whole lines, one task each.

Inputs are listed once, on the driver, sizes included (one listing per glob, one request per
named file); each block is then read by the task that parses it. Blocks are cut at newlines as
``dask.bytes.read_bytes`` cuts them (``fsspec.utils.read_block``), and the XML declaration,
``<posts>``, the BOM and CRLF are dealt with by the parser (``parse.split_lines``): no ``sed`` step.
"""

from __future__ import annotations

from dataclasses import dataclass

import fsspec
from dask.utils import parse_bytes
from fsspec.core import url_to_fs
from fsspec.utils import infer_compression, read_block

from pipeline.errors import PipelineError
from pipeline.storage import storage_errors


@dataclass(frozen=True)
class Block:
    """One task's worth of input: the lines that start in ``length`` bytes from ``offset`` of ``path``."""

    path: str
    index: int  # position within its file, so that line numbers can be recovered
    offset: int
    length: int | None  # None: to the end (a compressed file is one block: it cannot be cut)

    def read(self, storage_options: dict) -> bytes:
        """The block's bytes, whole lines only."""
        with fsspec.open(self.path, "rb", compression=infer_compression(self.path), **storage_options) as f:
            return read_block(f, self.offset, self.length, delimiter=b"\n")


def expand(urlpaths: str | list[str], storage_options: dict) -> dict[str, int]:
    """Every file the inputs name, globs expanded, with its size; a clear error for none or a missing one."""
    files: dict[str, int] = {}
    for urlpath in [urlpaths] if isinstance(urlpaths, str) else urlpaths:
        with storage_errors(urlpath):
            fs, path = url_to_fs(urlpath, **storage_options)
            found = fs.glob(path, detail=True) if "*" in path else _info(fs, path)  # "*": as fsspec and dask decide
        matched = {fs.unstrip_protocol(p): info["size"] for p, info in sorted(found.items()) if info["type"] == "file"}
        if not matched and len(found) == 1 and next(iter(found.values()))["type"] == "directory":
            raise PipelineError(f"{urlpath} is a directory or bucket: name a file, or a glob such as {urlpath.rstrip('/')}/*.xml")
        if not matched:
            raise PipelineError(f"no input file matches {urlpath}")
        files.update(matched)
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


def blocks(files: dict[str, int], blocksize: str | int, multiple: int = 1) -> list[Block]:
    """The blocks of every file (path → size), of equal sizes, ``multiple`` per file or a multiple of it.

    Compressed files (.gz, .bz2, …) cannot be cut: one block each.
    """
    blocksize = parse_bytes(blocksize) if isinstance(blocksize, str) else blocksize
    out = []
    for path, size in files.items():
        if infer_compression(path):
            out.append(Block(path, 0, 0, None))
            continue
        count = block_count(size, blocksize, multiple)
        cuts = [size * i // count for i in range(count + 1)]
        out += [Block(path, i, start, end - start) for i, (start, end) in enumerate(zip(cuts, cuts[1:]))]
    return out
