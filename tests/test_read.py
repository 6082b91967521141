"""Reading packed inputs without a cluster: every compression fsspec reads, unpacked once and cut into blocks."""

from __future__ import annotations

import lzma
import os

import pytest
import zstandard

from pipeline import read
from pipeline.errors import PipelineError

POSTS = os.path.join(os.path.dirname(__file__), "data", "real-dumps", "dba-sample-reserialized", "Posts.xml")


@pytest.mark.parametrize("suffix, compress", [("xz", lzma.compress), ("zst", zstandard.ZstdCompressor().compress)])
def test_xz_and_zst_are_unpacked_into_blocks_of_whole_lines(suffix, compress, tmp_path):
    data = open(POSTS, "rb").read()
    packed = tmp_path / f"Posts.xml.{suffix}"
    packed.write_bytes(compress(data))
    blocks = read.blocks(read.expand(str(packed), {}), 8192, multiple=2, unpack_dir=str(tmp_path / "unpacked"))
    parts = [b.read({}) for b in blocks]
    assert len(blocks) > 4 and b"".join(parts) == data
    assert all(p.endswith(b"\n") for p in parts[:-1] if p)  # whole lines only
    assert {os.path.dirname(b.source) for b in blocks} <= {str(d) for d in (tmp_path / "unpacked").iterdir()}


def test_a_packed_input_needs_an_unpack_dir_off_a_local_cluster(tmp_path):
    packed = tmp_path / "Posts.xml.xz"
    packed.write_bytes(lzma.compress(open(POSTS, "rb").read()))
    assert read.expand(str(packed), {}) == {f"file://{packed}": packed.stat().st_size}  # local: a temporary folder
    with pytest.raises(PipelineError, match="is packed: a cluster other than a local one needs unpack-dir"):
        read.expand(str(packed), {}, cluster_kind="scheduler")
    assert read.expand(str(packed), {}, cluster_kind="scheduler", unpack_dir="s3://bucket/unpacked")
