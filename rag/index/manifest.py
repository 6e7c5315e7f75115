"""The manifest of one index version as a typed record: what built it, what it holds, where.

A version is a list of immutable segments (each written once, shared by later versions) plus, per
segment, the documents deleted from it since; its document table says which segment holds each
live document. The table is a base shared by many versions (``tables/<sha256>.json``, written
once) plus the version's own changes to it (``documents.json``, small): a commit writes what
changed, and folds the changes into a new base only when they outgrow a fraction of it, so the
O(documents) rewrite is paid once per that many changes. Read by key
(``manifest["documents"]``) it still answers like the format-1 dict did, for code written
against that.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from ..types import IndexCorruptError

FORMAT_VERSION = 3
#: Format 2 kept the whole document table in the version's documents.json; it is still read.
_WHOLE_TABLE_FORMAT = 2
FIX = "rebuild it with `rag index --full`"
MANIFEST_FILE = "manifest.json"
DOCUMENTS_FILE = "documents.json"
TABLES_DIR = "tables"
#: A version's changes are folded into a new base table once they number more than this
#: fraction of the base's documents (and more than REBASE_AT_LEAST): a commit then writes at most
#: ~1/32 of the table, and the whole table is rewritten once per that many changed documents.
REBASE_FRACTION = 1 / 32
REBASE_AT_LEAST = 2_048

Write = Callable[[Path, str], None]


class DocumentEntry(NamedTuple):
    """A live document: its content hash, the file's size and mtime when it was read (so an
    unchanged file is recognised without hashing it), and the segment that holds it. A tuple:
    a build makes one per document of the table, so construction cost counts."""

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
class _StoredJson:
    """A JSON file a manifest names with its size and checksum: the size is checked when the
    version opens, the checksum when the file is first read."""

    path: Path
    size: int
    sha256: str

    def check_size(self) -> None:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            raise IndexCorruptError(f"{self.path} is missing; {FIX}") from None
        if size != self.size:
            raise IndexCorruptError(f"{self.path} was modified or truncated after the build; {FIX}")

    def load(self):
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            raise IndexCorruptError(f"{self.path} is missing; {FIX}") from None
        if hashlib.sha256(raw).hexdigest() != self.sha256:
            raise IndexCorruptError(f"{self.path} was modified or truncated after the build; {FIX}")
        return json.loads(raw)


class _Columns:
    """A base table as columns (doc_ids, hashes, sizes, mtimes, and each row's segment as an
    index into the few segment names): parsing lists is several times faster than one JSON object
    per document, and an entry is made only when asked for."""

    def __init__(self, columns: dict):
        self.doc_ids: list[str] = columns["doc_ids"]
        self.hashes: list[str] = columns["hashes"]
        self.segments: list[str] = columns["segments"]
        self.segment_of: list[int] = columns["segment_of"]
        self.sizes: list[int] = columns["sizes"]
        self.mtimes: list[int] = columns["mtimes"]
        self.rows = dict(zip(self.doc_ids, range(len(self.doc_ids))))

    @classmethod
    def of(cls, entries: Mapping[str, DocumentEntry]) -> "_Columns":
        names = sorted({entry.segment for entry in entries.values()})
        number = {name: n for n, name in enumerate(names)}
        ordered = sorted(entries.items())
        return cls({"doc_ids": [d for d, _ in ordered], "hashes": [e.content_hash for _, e in ordered],
                    "segments": names, "segment_of": [number[e.segment] for _, e in ordered],
                    "sizes": [e.size for _, e in ordered], "mtimes": [e.mtime_ns for _, e in ordered]})

    def to_json(self) -> str:
        return json.dumps({"doc_ids": self.doc_ids, "hashes": self.hashes, "segments": self.segments,
                           "segment_of": self.segment_of, "sizes": self.sizes, "mtimes": self.mtimes},
                          separators=(",", ":"))

    def entry(self, row: int) -> DocumentEntry:
        return DocumentEntry(self.hashes[row], self.segments[self.segment_of[row]], self.sizes[row],
                             self.mtimes[row])


def _entries_json(entries: Mapping[str, DocumentEntry | None]) -> str:
    return json.dumps({d: None if e is None else list(e) for d, e in sorted(entries.items())},
                      separators=(",", ":"))


def _entries_from_json(raw: dict) -> dict[str, DocumentEntry | None]:
    return {d: None if e is None else DocumentEntry(e[0], e[1], int(e[2]), int(e[3])) for d, e in raw.items()}


class DocumentTable(Mapping):
    """A version's documents (doc_id -> DocumentEntry): a base table plus this version's changes
    to it (an entry, or None for a document removed since the base). Both files are read on
    first use: opening a version, and so a reader's switch to it, does not cost the number of
    documents; only builds and listings read it."""

    def __init__(self, base: _StoredJson | _Columns | None, changes: _StoredJson | dict,
                 base_name: str | None = None):
        """``base_name`` is the shared base file's checksum (None: no shared base yet, as for a
        new index or a format-2 table, so the next commit writes one)."""
        self._base, self._changes, self.base_name = base, changes, base_name
        self._length: int | None = None

    def check_size(self) -> None:
        for stored in (self._base, self._changes):
            if isinstance(stored, _StoredJson):
                stored.check_size()

    def base(self) -> _Columns:
        if isinstance(self._base, _StoredJson):
            raw = self._base.load()
            # A format-2 table is one object by doc_id; it serves as the base until the next commit.
            self._base = _Columns.of(_entries_from_json(raw)) if self.base_name is None else _Columns(raw)
        elif self._base is None:
            self._base = _Columns.of({})
        return self._base

    def changes(self) -> dict[str, DocumentEntry | None]:
        if isinstance(self._changes, _StoredJson):
            self._changes = _entries_from_json(self._changes.load())
        return self._changes

    def updated(self, changes: Mapping[str, DocumentEntry | None]) -> "DocumentTable":
        """This table with more changes; the base is shared, not copied."""
        return DocumentTable(self.base(), {**self.changes(), **changes}, self.base_name)

    def __getitem__(self, doc_id: str) -> DocumentEntry:
        entry = self.get(doc_id)
        if entry is None:
            raise KeyError(doc_id)
        return entry

    def get(self, doc_id: str, default=None):
        changes = self.changes()
        if doc_id in changes:
            entry = changes[doc_id]
            return default if entry is None else entry
        base = self.base()
        row = base.rows.get(doc_id)
        return default if row is None else base.entry(row)

    def __contains__(self, doc_id: object) -> bool:
        return self.get(doc_id) is not None

    def __iter__(self) -> Iterator[str]:
        changes = self.changes()
        yield from (d for d in self.base().doc_ids if d not in changes)
        yield from (d for d, entry in changes.items() if entry is not None)

    def items(self):
        changes, base = self.changes(), self.base()
        return [*((d, base.entry(row)) for row, d in enumerate(base.doc_ids) if d not in changes),
                *((d, entry) for d, entry in changes.items() if entry is not None)]

    def values(self):
        return [entry for _, entry in self.items()]

    def __len__(self) -> int:
        if self._length is None:
            changes, rows = self.changes(), self.base().rows
            self._length = len(rows) + sum(
                (entry is not None) - (d in rows) for d, entry in changes.items())
        return self._length

    def save(self, directory: Path, write: Write) -> dict:
        """Write the changes (and, when they have outgrown REBASE_FRACTION of the base, a new
        base with them folded in) and return what the manifest records of them."""
        changes = self.changes()
        base = self.base()
        name = self.base_name
        if name is None or len(changes) > max(REBASE_AT_LEAST, REBASE_FRACTION * len(base.rows)):
            base, changes = _Columns.of(dict(self.items())), {}
            text = base.to_json()
            name = hashlib.sha256(text.encode()).hexdigest()
            path = _base_path(directory, name)
            if not path.exists():
                path.parent.mkdir(exist_ok=True)
                write(path, text)
        delta = _entries_json(changes)
        write(directory / DOCUMENTS_FILE, delta)
        return {"base": name, "base_size": _base_path(directory, name).stat().st_size,
                "changes": {"size": len(delta.encode()), "sha256": hashlib.sha256(delta.encode()).hexdigest()}}


def _base_path(version_dir: Path, name: str) -> Path:
    return version_dir.parent / TABLES_DIR / f"{name}.json"


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

    def save(self, directory: Path, write: Write) -> None:
        """Write the document table (its changes, and a new base when due), then the manifest
        naming their checksums, with ``write``."""
        table = self.documents if isinstance(self.documents, DocumentTable) else DocumentTable(
            None, dict(self.documents))
        documents = table.save(directory, write)
        write(directory / MANIFEST_FILE, json.dumps({
            "format_version": self.format_version, "model": self.model, "dimension": self.dimension,
            "chunking": self.chunking, "next_chunk_id": self.next_chunk_id, "built_at": self.built_at,
            "documents": documents,
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
        if version < _WHOLE_TABLE_FORMAT:
            raise IndexCorruptError(
                f"{path.parent} is an index of format {version}, from an older version of rag, "
                f"which this one no longer reads; {FIX}")
        try:
            documents = _document_table(path.parent, raw["documents"], version)
            manifest = cls(
                model=raw["model"], dimension=int(raw["dimension"]), chunking=raw["chunking"],
                next_chunk_id=int(raw["next_chunk_id"]), built_at=raw["built_at"], documents=documents,
                segments=tuple(SegmentRef(n, h, tuple(deleted)) for n, h, deleted in raw["segments"]),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise IndexCorruptError(f"{path} is incomplete ({e!r}); {FIX}") from e
        documents.check_size()
        return manifest


def _document_table(version_dir: Path, recorded: dict, version: int) -> DocumentTable:
    if version == _WHOLE_TABLE_FORMAT:
        whole = _StoredJson(version_dir / DOCUMENTS_FILE, int(recorded["size"]), recorded["sha256"])
        return DocumentTable(whole, {})
    changes = recorded["changes"]
    base = _StoredJson(_base_path(version_dir, recorded["base"]), int(recorded["base_size"]), recorded["base"])
    return DocumentTable(base, _StoredJson(version_dir / DOCUMENTS_FILE, int(changes["size"]), changes["sha256"]),
                         recorded["base"])
