"""Storage: local files and object stores through fsspec, and their errors as one line that says what to fix.

Every stage opens files here, so that a refused credential, a missing key, a full disk or a
read-only file system reads the same wherever it happens — on the driver or in a worker's task.
"""

from __future__ import annotations

import errno
import mimetypes
from contextlib import contextmanager

import fsspec
from fsspec import AbstractFileSystem
from fsspec.core import url_to_fs

from pipeline.errors import PipelineError


def filesystem(url: str, storage_options: dict) -> tuple[AbstractFileSystem, str]:
    """The file system of ``url`` and the path on it."""
    with storage_errors(url):
        return url_to_fs(url, **storage_options)


def is_local(fs: AbstractFileSystem) -> bool:
    return "file" in fs.protocol


def typed(fs: AbstractFileSystem, name: str) -> dict:
    """What to pass to ``fs.open`` so that an object store serves ``name`` as what it is (an S3 object's
    Content-Type: report.html opens in a browser instead of downloading); nothing for local files."""
    if "s3" not in fs.protocol:
        return {}
    return {"ContentType": mimetypes.guess_type(name)[0] or "application/octet-stream"}


@contextmanager
def open_file(url: str, mode: str, storage_options: dict, **kwargs):
    """``url`` opened (``compression=`` and the like as fsspec takes them), its errors as one line."""
    with storage_errors(url), fsspec.open(url, mode, **storage_options, **kwargs) as f:
        yield f


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


# Errors of the disk itself, whatever the file: (errno, what happened, what to do).
DISK_ERRORS = {
    errno.ENOSPC: ("no space left on the device", "free some space or choose another output"),
    errno.EDQUOT: ("disk quota exceeded", "free some space or choose another output"),
    errno.EROFS: ("read-only file system", "choose an output on a writable file system"),
}


def describe(url: str, exc: BaseException) -> str | None:
    """A one-line explanation of a storage error, or None if it is not one we recognise."""
    name = type(exc).__name__
    text = str(exc)
    shown = url.removeprefix("file://")
    if isinstance(exc, OSError) and exc.errno in DISK_ERRORS:
        what, fix = DISK_ERRORS[exc.errno]
        return f"{what}: cannot write {shown}: {fix}"
    if isinstance(exc, NotADirectoryError):
        return f"cannot use {shown}: a part of the path is a file, not a directory ({exc.filename or text})"
    if isinstance(exc, FileNotFoundError):
        return f"not found: {shown} ({text or 'no such file, bucket or key'})"
    if name == "NoCredentialsError":
        return f"no S3 credentials for {url}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or an AWS profile)"
    if isinstance(exc, PermissionError) or name in ("ClientError", "AccessDenied"):
        detail = text.splitlines()[0] if text else name
        if "s3://" not in url:
            return f"permission denied: {shown} ({detail})"
        lowered = text.lower()
        if any(w in lowered for w in ("access key id", "signature", "security token", "invalidaccesskeyid")):
            return f"S3 refused the credentials for {url}: check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY"
        return (f"S3 refused access to {url} ({detail}): check that AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY "
                "are right and allowed to use it")
    if name in ("EndpointConnectionError", "ConnectTimeoutError", "ClientConnectorError") or (
        isinstance(exc, OSError) and "connect" in text.lower()
    ):
        detail = text.splitlines()[0] if text else name
        return f"cannot reach the storage for {url}: {detail} (check storage-options.endpoint_url)"
    if isinstance(exc, ValueError) and ("protocol" in text.lower() or "bucket" in text.lower()):
        return f"bad URL {url}: {text}"
    if isinstance(exc, ImportError):
        return f"cannot open {url}: {text}"
    return None
