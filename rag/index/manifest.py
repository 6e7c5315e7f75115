"""The manifest of one index version as a typed record: what built it, what it holds, where.

A version is a list of immutable segments (each written once, shared by later versions) plus, per
segment, the documents deleted from it since; ``documents`` says which segment holds each live
document. Read by key (``manifest["documents"]``) it still answers like the format-1 dict did, for
code written against that.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..types import IndexCorruptError

FORMAT_VERSION = 2
FIX = "rebuild it with `rag index --full`"
MANIFEST_FILE = "manifest.json"
DOCUMENTS_FILE = "documents.json"


@dataclass(frozen=True)
class DocumentEntry:
    """A live document: its content hash, the file's size and mtime when it was read (so an
    unchanged file is recognised without hashing it), and the segment that holds it."""

    content_hash: str
    segment: str
    size: int = -1
    mtime_ns: int = -1


@dataclass(frozen=True)
class SegmentRef:
    """A segment of the version, the checksum of its description, and documents deleted from it."""

    name: str
    sha256: str
    deleted: tuple[str, ...] = ()


class _Documents(Mapping):
    """A version's document table (doc_id -> DocumentEntry), read from its own file on first
    use: opening a version, and so a reader's switch to it, does not cost the number of
    documents; only builds and listings read it."""

    def __init__(self, path: Path, size: int, sha256: str):
        self._path, self._size, self._sha256 = path, size, sha256
        self._entries: dict[str, DocumentEntry] | None = None

    def check_size(self) -> None:
        try:
            size = self._path.stat().st_size
        except FileNotFoundError:
            raise IndexCorruptError(f"{self._path} is missing; {FIX}") from None
        if size != self._size:
            raise IndexCorruptError(f"{self._path} was modified or truncated after the build; {FIX}")

    def _load(self) -> dict[str, DocumentEntry]:
        if self._entries is None:
            try:
                raw = self._path.read_bytes()
            except FileNotFoundError:
                raise IndexCorruptError(f"{self._path} is missing; {FIX}") from None
            if hashlib.sha256(raw).hexdigest() != self._sha256:
                raise IndexCorruptError(f"{self._path} was modified or truncated after the build; {FIX}")
            self._entries = {d: DocumentEntry(h, s, int(size), int(mtime))
                             for d, (h, s, size, mtime) in json.loads(raw).items()}
        return self._entries

    def __getitem__(self, doc_id: str) -> DocumentEntry:
        return self._load()[doc_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())

    # The table's own dict answers these: Mapping's defaults go through __getitem__ per entry,
    # which a build pays for every document of a large index.
    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self._load()

    def get(self, doc_id: str, default=None):
        return self._load().get(doc_id, default)

    def keys(self):
        return self._load().keys()

    def items(self):
        return self._load().items()

    def values(self):
        return self._load().values()


@dataclass(frozen=True)
class Manifest:
    model: str
    dimension: int
    chunking: dict
    next_chunk_id: int
    built_at: str
    documents: Mapping[str, DocumentEntry] = field(default_factory=dict)
    segments: tuple[SegmentRef, ...] = ()
    format_version: int = FORMAT_VERSION

    def hashes(self) -> dict[str, str]:
        return {doc_id: entry.content_hash for doc_id, entry in sorted(self.documents.items())}

    def __getitem__(self, key: str):
        """The format-1 dict view: ``documents`` maps doc_id to content hash."""
        if key == "documents":
            return self.hashes()
        if key in ("model", "dimension", "chunking", "next_chunk_id", "built_at", "format_version"):
            return getattr(self, key)
        raise KeyError(key)

    def save(self, directory: Path, write: Callable[[Path, str], None]) -> None:
        """Write the document table, then the manifest naming its checksum, with ``write``."""
        documents = json.dumps({d: [e.content_hash, e.segment, e.size, e.mtime_ns]
                                for d, e in sorted(self.documents.items())}, sort_keys=True)
        write(directory / DOCUMENTS_FILE, documents)
        write(directory / MANIFEST_FILE, json.dumps({
            "format_version": self.format_version, "model": self.model, "dimension": self.dimension,
            "chunking": self.chunking, "next_chunk_id": self.next_chunk_id, "built_at": self.built_at,
            "documents": {"size": len(documents.encode()), "sha256": hashlib.sha256(documents.encode()).hexdigest()},
            "segments": [[s.name, s.sha256, list(s.deleted)] for s in self.segments],
        }, sort_keys=True))

    @classmethod
    def read(cls, path: Path) -> "Manifest":
        """The manifest at ``path`` (its document table is read on first use); IndexCorruptError
        naming the file and the fix otherwise."""
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError as e:
            raise IndexCorruptError(f"{path} is missing; {FIX}") from e
        except (ValueError, OSError) as e:
            raise IndexCorruptError(f"{path} cannot be read ({e}); {FIX}") from e
        version = raw.get("format_version") if isinstance(raw, dict) else None
        if not isinstance(version, int):
            raise IndexCorruptError(f"{path} is not an index manifest; {FIX}")
        if version > FORMAT_VERSION:
            raise IndexCorruptError(
                f"{path} was written by a newer version of rag (format {version}, this one reads "
                f"{FORMAT_VERSION}); upgrade rag or {FIX}")
        if version < FORMAT_VERSION:
            raise IndexCorruptError(
                f"{path.parent} is an index of format {version}, from an older version of rag, "
                f"which this one no longer reads; {FIX}")
        try:
            documents = _Documents(path.parent / DOCUMENTS_FILE, int(raw["documents"]["size"]),
                                   raw["documents"]["sha256"])
            manifest = cls(
                model=raw["model"], dimension=int(raw["dimension"]), chunking=raw["chunking"],
                next_chunk_id=int(raw["next_chunk_id"]), built_at=raw["built_at"], documents=documents,
                segments=tuple(SegmentRef(n, h, tuple(deleted)) for n, h, deleted in raw["segments"]),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise IndexCorruptError(f"{path} is incomplete ({e!r}); {FIX}") from e
        documents.check_size()
        return manifest

