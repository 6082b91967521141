"""Output: a run directory (local path or s3:// prefix) that is complete or not there at all.

Locally, everything is written to a hidden sibling directory and renamed into place at the end
(one atomic step). Object stores have no rename, so there the files go straight under the
prefix and ``_SUCCESS`` — a manifest of every file — is written last; a failed run deletes what
it wrote. Readers should look for ``_SUCCESS`` (as Hadoop and Spark jobs do).
"""

from __future__ import annotations

import json
import posixpath
import uuid

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.errors import PipelineError
from pipeline.read import storage_errors

MARKER = "_SUCCESS"


class RunDirectory:
    def __init__(self, url: str, storage_options: dict, overwrite: bool = False):
        self.url = url.rstrip("/")
        with storage_errors(self.url):
            self.fs, self.final = fsspec.core.url_to_fs(self.url, **storage_options)
            self.local = "file" in self.fs.protocol
            exists = self.fs.exists(self.final) and (not self.fs.isdir(self.final) or self.fs.ls(self.final))
        if exists and not overwrite:
            raise PipelineError(f"output {url} already exists: choose a new run directory or pass --overwrite")
        self.overwrite = exists
        self.run_id = uuid.uuid4().hex[:12]
        if self.local:
            parent, name = posixpath.split(self.final)
            self.fs.makedirs(parent, exist_ok=True)
            self.staging = posixpath.join(parent, f".{name}.partial-{self.run_id}")
        else:
            if exists:
                with storage_errors(self.url):
                    self.fs.rm(self.final, recursive=True)
            self.staging = self.final
        with storage_errors(self.url):
            self.fs.makedirs(self.staging, exist_ok=True)

    def path(self, name: str) -> str:
        """Where ``name`` is written now (a URL workers can write to)."""
        return self.fs.unstrip_protocol(posixpath.join(self.staging, name))

    def directory(self, name: str) -> str:
        """A directory for workers to write files into, made now (local files need it to exist)."""
        with storage_errors(self.url):
            self.fs.makedirs(posixpath.join(self.staging, name), exist_ok=True)
        return self.path(name)

    def write(self, name: str, data: bytes | str) -> None:
        with storage_errors(self.url):
            with self.fs.open(posixpath.join(self.staging, name), "wb") as f:
                f.write(data.encode() if isinstance(data, str) else data)

    def commit(self) -> dict:
        """Write the manifest last and put the run in place; return the manifest."""
        with storage_errors(self.url):
            files = {
                posixpath.relpath(path, self.staging): info["size"]
                for path, info in self.fs.find(self.staging, detail=True).items()
            }
            manifest = {"run_id": self.run_id, "files": dict(sorted(files.items()))}
            self.write(MARKER, json.dumps(manifest, indent=2))
            if self.local:
                if self.overwrite:
                    self.fs.rm(self.final, recursive=True)
                self.fs.mv(self.staging, self.final, recursive=True)
        return manifest

    def abort(self) -> None:
        """Remove what this run wrote, so that nothing half-written is left behind."""
        try:
            if self.fs.exists(self.staging):
                self.fs.rm(self.staging, recursive=True)
        except Exception:  # the original error matters more than a failed clean-up
            pass


def write_parquet(frame: pd.DataFrame, url: str, schema: pa.Schema, storage_options: dict) -> None:
    """One Parquet file of ``frame`` with the types of ``schema`` (and pandas' metadata, as dask writes it)."""
    table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
    fs, path = fsspec.core.url_to_fs(url, **storage_options)
    with fs.open(path, "wb") as f:
        pq.write_table(table, f)


# The run directory's layout: where each part of a result goes, named in one place.
def part_file(index: int) -> str:
    """The file of block ``index`` in a Parquet directory written by the first pass."""
    return f"part.{index}.parquet"


def site_file(site: str | None, name: str) -> str:
    """Where a site's own file goes: at the top of a one-site run, under ``sites/<site>/`` in a run of many."""
    return name if site is None else f"sites/{site}/{name}"
