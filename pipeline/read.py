"""Read: a path, a glob or an s3:// URL of Posts.xml → blocks of whole lines, one task each.

No ``sed`` step: blocks are cut at newlines by ``dask.bytes.read_bytes`` and the XML
declaration, ``<posts>``, the BOM and CRLF are dealt with by the parser (``parse.split_lines``).
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass

import fsspec
from dask.bytes import read_bytes
from dask.delayed import Delayed
from dask.utils import parse_bytes
from fsspec.utils import infer_compression

from pipeline.errors import PipelineError


@dataclass(frozen=True)
class Block:
    """One task's worth of input: ``data`` is a delayed ``bytes`` ending at a newline."""

    path: str
    index: int  # position within its file, so that line numbers can be recovered
    data: Delayed


def expand(urlpaths: str | list[str], storage_options: dict) -> list[str]:
    """Every file the inputs name, globs expanded; a clear error for none or a missing one."""
    paths: list[str] = []
    for urlpath in [urlpaths] if isinstance(urlpaths, str) else urlpaths:
        with storage_errors(urlpath):
            fs, _, found = fsspec.get_fs_token_paths(urlpath, storage_options=storage_options)
            files = [p for p in found if fs.isfile(p)]
            if not files and len(found) == 1 and fs.isdir(found[0]):
                raise PipelineError(f"{urlpath} is a directory or bucket: name a file, or a glob such as {urlpath.rstrip('/')}/*.xml")
        if not files:
            raise PipelineError(f"no input file matches {urlpath}")
        paths += [fs.unstrip_protocol(p) for p in files]
    return paths


def even_blocksize(size: int, blocksize: int, multiple: int) -> int:
    """At most ``blocksize``, cutting ``size`` bytes into a multiple of ``multiple`` blocks of equal size,
    so that no worker is left with one block more than the others at the end."""
    count = max(1, math.ceil(size / blocksize))
    # dask's read_bytes cuts a file into size // blocksize blocks (the last one takes the rest)
    return max(1, size // (math.ceil(count / multiple) * multiple))


def blocks(urlpaths: str | list[str], blocksize: str | int, storage_options: dict, multiple: int = 1) -> list[Block]:
    """Blocks of every input file, ``multiple`` per file or a multiple of it (see ``even_blocksize``).

    Compressed files (.gz, .bz2, …) cannot be split: one block each.
    """
    blocksize = parse_bytes(blocksize) if isinstance(blocksize, str) else blocksize
    out = []
    for path in expand(urlpaths, storage_options):
        compression = infer_compression(path)
        with storage_errors(path):
            fs, _, _ = fsspec.get_fs_token_paths(path, storage_options=storage_options)
            _, per_file = read_bytes(
                path,
                delimiter=b"\n",
                blocksize=None if compression else even_blocksize(fs.size(path), blocksize, multiple),
                sample=False,
                compression=compression,
                **storage_options,
            )
        out += [Block(path, i, data) for i, data in enumerate(per_file[0])]
    return out


@contextmanager
def storage_errors(url: str):
    """Turn the errors of local files, S3 and fsspec into one line that says what to fix."""
    try:
        yield
    except PipelineError:
        raise
    except Exception as exc:
        message = describe(url, exc)
        if message is None:
            raise
        raise PipelineError(message) from exc


def describe(url: str, exc: BaseException) -> str | None:
    """A one-line explanation of a storage error, or None if it is not one we recognise."""
    name = type(exc).__name__
    text = str(exc)
    if isinstance(exc, FileNotFoundError):
        return f"not found: {url} ({text or 'no such file, bucket or key'})"
    if name == "NoCredentialsError":
        return f"no S3 credentials for {url}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or an AWS profile)"
    if isinstance(exc, PermissionError) or name in ("ClientError", "AccessDenied"):
        detail = text.splitlines()[0] if text else name
        if "s3://" not in url:
            return f"permission denied: {url} ({detail})"
        lowered = text.lower()
        if any(w in lowered for w in ("access key id", "signature", "security token", "invalidaccesskeyid")):
            return f"S3 refused the credentials for {url}: check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY"
        return (f"S3 refused access to {url} ({detail}): check that AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY "
                "are right and allowed to use it")
    if name in ("EndpointConnectionError", "ConnectTimeoutError", "ClientConnectorError") or (
        isinstance(exc, OSError) and "connect" in text.lower()
    ):
        return f"cannot reach the storage for {url}: {text.splitlines()[0] if text else name} (check storage-options.endpoint_url)"
    if isinstance(exc, ValueError) and ("protocol" in text.lower() or "bucket" in text.lower()):
        return f"bad URL {url}: {text}"
    if isinstance(exc, ImportError):
        return f"cannot open {url}: {text}"
    return None
