"""The manifest of one index version as a typed record: what built it, what it holds, where.

A version is a list of immutable segments (each written once, shared by later versions) plus, per
segment, the documents deleted from it since; ``documents`` says which segment holds each live
document. Read by key (``manifest["documents"]``) it still answers like the format-1 dict did, for
code written against that.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..types import IndexCorruptError

FORMAT_VERSION = 2
FIX = "rebuild it with `rag index --full`"


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


@dataclass(frozen=True)
class Manifest:
    model: str
    dimension: int
    chunking: dict
    next_chunk_id: int
    built_at: str
    documents: dict[str, DocumentEntry] = field(default_factory=dict)
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

    def to_json(self) -> str:
        return json.dumps({
            "format_version": self.format_version, "model": self.model, "dimension": self.dimension,
            "chunking": self.chunking, "next_chunk_id": self.next_chunk_id, "built_at": self.built_at,
            "documents": {d: [e.content_hash, e.segment, e.size, e.mtime_ns]
                          for d, e in sorted(self.documents.items())},
            "segments": [[s.name, s.sha256, list(s.deleted)] for s in self.segments],
        }, sort_keys=True)

    @classmethod
    def read(cls, path: Path) -> "Manifest":
        """The manifest at ``path``; IndexCorruptError naming the file and the fix otherwise."""
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
            return cls(
                model=raw["model"], dimension=int(raw["dimension"]), chunking=raw["chunking"],
                next_chunk_id=int(raw["next_chunk_id"]), built_at=raw["built_at"],
                documents={d: DocumentEntry(h, s, int(size), int(mtime))
                           for d, (h, s, size, mtime) in raw["documents"].items()},
                segments=tuple(SegmentRef(n, h, tuple(deleted)) for n, h, deleted in raw["segments"]),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise IndexCorruptError(f"{path} is incomplete ({e!r}); {FIX}") from e

