"""Archive: the dumps as they are published (.7z, and .gz/.bz2/.xz/.zst files), and what each input is.

Every input's first bytes are looked at when the inputs are listed, so that a file we cannot read
(a binary, a .zip, UTF-16, an empty file, a Users.xml) is named before any cluster starts.

A packed input cannot be cut into blocks: a solid 7z stream or a compressed file can only be read
from its start. So it is unpacked once, as one stream, into a plain Posts.xml under ``unpack-dir``,
in a folder named after the archive's path, size and mtime/ETag so that a later run finds it again;
the blocks are then cut from that copy as from any file.
"""

from __future__ import annotations

import codecs
import hashlib
import os
import re
import tempfile
import uuid
from dataclasses import dataclass

from pipeline.errors import PipelineError
from pipeline.storage import filesystem, is_local, open_file

HEAD = 4096  # enough for the XML declaration, a DOCTYPE and the root element
CHUNK = 4 * 2**20
# Magic numbers: compression fsspec reads (and 7z, which we read with py7zr), then formats we refuse.
PACKED = {b"7z\xbc\xaf\x27\x1c": "7z", b"\x1f\x8b": "gzip", b"BZh": "bz2", b"\xfd7zXZ\x00": "xz",
          b"\x28\xb5\x2f\xfd": "zstd"}
REFUSED = {b"PK\x03\x04": "a ZIP archive", b"PK\x05\x06": "a ZIP archive (empty)", b"Rar!\x1a\x07": "a RAR archive",
           b"\xff\xfe\x00\x00": "UTF-32 text", b"\x00\x00\xfe\xff": "UTF-32 text", b"\xff\xfe": "UTF-16 text",
           b"\xfe\xff": "UTF-16 text", b"<\x00": "UTF-16 text", b"\x00<": "UTF-16 text", b"%PDF": "a PDF document"}
# The other tables of a site's dump: given one of them, say which file is wanted.
OTHER_TABLES = ("badges", "comments", "posthistory", "postlinks", "tags", "users", "votes")
FIRST_ELEMENT = re.compile(rb"<([A-Za-z_][\w.-]*)")
SUFFIXES = (".7z", ".gz", ".bz2", ".xz", ".zst")
SUPPORTED = ".7z, .gz, .bz2, .xz or .zst"


@dataclass(frozen=True)
class Packed:
    """An input to unpack: ``kind`` is 7z or an fsspec compression; ``entry`` the 7z entry to read."""

    url: str
    kind: str
    entry: str | None
    version: str  # size and mtime or ETag: a changed file is unpacked again


def named_packed(url: str) -> bool:
    """Whether the name says packed (.7z, .gz, …); ``inspect`` holds the content to its name."""
    return url.lower().endswith(SUFFIXES)


def inspect(url: str, storage_options: dict) -> Packed | None:
    """None for a plain Posts.xml; the packed input to unpack; or a one-line error naming what the file is."""
    fs, path = filesystem(url, storage_options)
    info = fs.info(path)
    if not info["size"]:
        raise PipelineError(f"{url} is an empty file, not a Posts.xml")
    head = fs.cat_file(path, start=0, end=HEAD)
    kind = next((k for magic, k in PACKED.items() if head.startswith(magic)), None)
    if bool(kind) != named_packed(url):
        said = f"a {kind} file" if kind else "not packed"
        raise PipelineError(f"{url} is {said}, but its name says otherwise: name a packed input {SUPPORTED}, "
                            "and a plain one .xml")
    version = f"{info['size']}-{info.get('ETag') or info.get('mtime') or info.get('LastModified')}"
    if kind == "7z":
        return Packed(url, kind, _posts_entry(url, fs, path), version)
    if kind:
        with fs.open(path, "rb", compression=kind, block_size=2**20) as f:
            try:
                inner = f.read(HEAD)
            except Exception as exc:  # the codecs raise their own types (OSError, EOFError, LZMAError, ZstdError)
                raise PipelineError(f"{url} is not a readable {kind} file: {exc}") from None
        check_posts_xml(f"{url} (unpacked)", inner)
        return Packed(url, kind, None, version)
    check_posts_xml(url, head)
    return None


def check_posts_xml(url: str, head: bytes) -> None:
    """Raise a one-line error unless ``head``, a file's first bytes, starts a Posts.xml in UTF-8."""
    what = next((w for magic, w in REFUSED.items() if head.startswith(magic)), None)
    if what:
        raise PipelineError(f"{url} is {what}, not a Posts.xml (XML in UTF-8, or a {SUPPORTED} of one)")
    text = head[len(codecs.BOM_UTF8):] if head.startswith(codecs.BOM_UTF8) else head
    if b"\x00" not in text and not _utf8(text) and text.lstrip().startswith(b"<"):
        raise PipelineError(f"{url} is XML text but not UTF-8 (Latin-1 or another 8-bit encoding?): the dumps are "
                            f"UTF-8, convert it first (iconv -f LATIN1 -t UTF-8)")
    if b"\x00" in text or not _utf8(text):
        raise PipelineError(f"{url} is a binary file, not a Posts.xml (XML in UTF-8, or a {SUPPORTED} of one)")
    if not text.strip():
        raise PipelineError(f"{url} holds only white space, not a Posts.xml")
    if not text.lstrip().startswith(b"<"):
        start = text.lstrip()[:20].decode("utf-8", errors="replace").splitlines()[0]
        raise PipelineError(f"{url} is a text file that is not XML (it starts with {start!r}), not a Posts.xml")
    element = next((m.group(1) for m in FIRST_ELEMENT.finditer(text)), b"").decode().lower()
    if element in OTHER_TABLES:
        raise PipelineError(f"{url} is the <{element}> table of a dump, not its posts: give the site's Posts.xml")
    if element not in ("posts", "row", ""):  # "": a root element beyond the first bytes (a long comment, say)
        raise PipelineError(f"{url} is an XML file of <{element}>, not a Posts.xml (<posts> of <row> elements)")


def _utf8(text: bytes) -> bool:
    """Whether ``text`` decodes as UTF-8, but for a character cut at its end."""
    try:
        codecs.getincrementaldecoder("utf-8")().decode(text, final=False)
        return True
    except UnicodeDecodeError:
        return False


def _posts_entry(url: str, fs, path: str) -> str:
    """The entry of a 7z archive to read: its Posts.xml (a site's archive), or its only file
    (``stackoverflow.com-Posts.7z``)."""
    import py7zr

    try:
        with fs.open(path, "rb", block_size=2**20) as f, py7zr.SevenZipFile(f) as archive:
            names = [i.filename for i in archive.list() if not i.is_directory]
    except (py7zr.exceptions.ArchiveError, py7zr.exceptions.PasswordRequired, EOFError, OSError, KeyError) as exc:
        raise PipelineError(f"{url} is not a readable 7z archive ({type(exc).__name__}: {exc})") from None
    posts = [n for n in names if n.rsplit("/", 1)[-1].lower() == "posts.xml"]
    if len(posts) == 1:
        return posts[0]
    table = os.path.splitext(names[0].rsplit("/", 1)[-1])[0].lower() if len(names) == 1 else None
    if len(names) == 1 and table not in OTHER_TABLES:
        return names[0]
    held = ", ".join(names[:8]) + (", …" if len(names) > 8 else "") if names else "no file"
    raise PipelineError(f"{url} holds no single Posts.xml (it holds {held})")


def unpack_dir(configured: str | None) -> str:
    """Where packed inputs are unpacked: ``unpack-dir`` when set, else the system's temporary folder."""
    return (configured or os.path.join(tempfile.gettempdir(), "posts-pipeline-unpacked")).rstrip("/")


def unpacked_url(packed: Packed, into: str) -> str:
    """The plain copy of a packed input under ``into``: one folder per archive and version, reused by later runs."""
    key = hashlib.sha256(f"{packed.url}\n{packed.entry}\n{packed.version}".encode()).hexdigest()[:16]
    name = packed.url.rstrip("/").rsplit("/", 1)[-1]
    return f"{into}/{name}-{key}/{(packed.entry or 'Posts.xml').rsplit('/', 1)[-1]}"


def unpack(packed: Packed, target: str, storage_options: dict) -> None:
    """Stream ``packed`` into ``target``, which appears whole or not at all (an object store's upload is
    atomic; a local file is written under another name and renamed)."""
    fs, path = filesystem(target, storage_options)
    local = is_local(fs)
    partial = f"{path}.partial-{uuid.uuid4().hex[:8]}" if local else path
    fs.makedirs(fs._parent(path), exist_ok=True)
    try:
        with fs.open(partial, "wb") as out:
            _stream(packed, out, storage_options)
        if local:
            os.replace(partial, path)
    finally:
        if local and fs.exists(partial):
            fs.rm(partial)


def _stream(packed: Packed, out, storage_options: dict) -> None:
    if packed.kind != "7z":
        with open_file(packed.url, "rb", storage_options, compression=packed.kind) as f:
            while chunk := f.read(CHUNK):
                out.write(chunk)
        return
    import py7zr
    from py7zr.io import Py7zIO, WriterFactory

    class Into(Py7zIO):
        """py7zr's output for our entry, written on as it is decompressed."""

        written = 0

        def write(self, data) -> int:
            self.written += len(data)
            return out.write(data)

        def read(self, size=None) -> bytes:
            return b""

        def seek(self, offset, whence=0) -> int:
            return 0

        def flush(self) -> None:
            pass

        def size(self) -> int:
            return self.written

    class Factory(WriterFactory):
        def create(self, filename: str) -> Py7zIO:
            return Into()

    with open_file(packed.url, "rb", storage_options) as f, py7zr.SevenZipFile(f) as archive:
        try:
            archive.extract(targets=[packed.entry], factory=Factory())
        except (py7zr.exceptions.ArchiveError, py7zr.exceptions.CrcError, EOFError) as exc:
            raise PipelineError(f"{packed.url}: cannot unpack {packed.entry} ({type(exc).__name__}: {exc})") from None
