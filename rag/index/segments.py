"""One immutable segment of the local index, read side: written once, shared by every version
that lists it, memory-mapped, and opened once per process however many versions use it.

Layout of ``segments/<name>/``::

    segment.json     counts, dimension, size and SHA-256 of every other file
    meta.sqlite      documents (with their text), chunks (spans of that text), sentence rows,
                     source maps (each document's text located in its file, for display)
    chunk_ids.npy    the chunk id of each row, ascending
    vectors.npy      float32 chunk vectors, one row per chunk (normalised: inner product = cosine)
    sentences.npy    float16 sentence vectors, rows named in meta.sqlite
    lexical/         term-frequency postings (rag.lexical)
    ann.faiss        only in large segments: an approximate index of the vectors (rag.index.ann)
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from ..lexical import LexicalIndex, mapped
from ..types import IndexCorruptError
from .ann import ANN_FILE, ApproximateIndex, LiveFilter
from .manifest import FIX

SEGMENTS_DIR = "segments"
SEGMENT_FILE = "segment.json"
#: Written by the build beside a sealed segment's files: each one's identity (inode, size, mtime)
#: when its checksum was computed. A reader finding a file with that identity does not read it all
#: again (at a million chunks a first open read 6 GB, ~2 minutes from a cold disk); a rewrite,
#: truncation or copy changes the identity, and the checksum is then verified in full.
STAMPS_FILE = "checksummed.json"
META_FILE = "meta.sqlite"
IDS_FILE = "chunk_ids.npy"
VECTORS_FILE = "vectors.npy"
SENTENCES_FILE = "sentences.npy"
LEXICAL_DIR = "lexical"

SCHEMA = """
CREATE TABLE documents (
    doc_id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    text TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    page_starts TEXT NOT NULL,
    chunks INTEGER NOT NULL,
    indexed_at REAL NOT NULL
);
CREATE TABLE chunks (
    chunk_id INTEGER PRIMARY KEY,
    doc_id TEXT NOT NULL,
    ordinal INTEGER NOT NULL,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL
);
CREATE INDEX chunks_by_doc ON chunks(doc_id);
CREATE TABLE sentences (
    doc_id TEXT NOT NULL,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    row INTEGER NOT NULL,
    PRIMARY KEY (doc_id, start, end)
) WITHOUT ROWID;
CREATE TABLE source_maps (
    doc_id TEXT PRIMARY KEY,
    map TEXT NOT NULL
) WITHOUT ROWID;
"""
#: Segments written before source maps were kept have no such table.
SOURCE_MAPS_TABLE = "source_maps"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# Files whose checksum this process has verified, by identity: segments never change once
# written, so each is read in full once, not at every version switch.
_verified: set[tuple] = set()
_open_segments: "weakref.WeakValueDictionary[tuple[str, str], Segment]" = weakref.WeakValueDictionary()
_open_lock = threading.Lock()


def stamps(path: Path, names: list[str]) -> str:
    """The identity of each named file of the segment at ``path``, for STAMPS_FILE."""
    return json.dumps({name: [(stat := (path / name).stat()).st_ino, stat.st_size, stat.st_mtime_ns]
                       for name in names}, sort_keys=True)


def _trust_stamps(path: Path) -> None:
    """Files whose identity is as the build stamped it count as verified (a missing or unreadable
    stamps file just means every file is checksummed in full)."""
    try:
        stamped = json.loads((path / STAMPS_FILE).read_text())
        _verified.update((str(path / name), int(ino), int(size), int(mtime))
                         for name, (ino, size, mtime) in stamped.items())
    except (OSError, ValueError, TypeError, AttributeError):
        return


def _check_file(path: Path, expected: dict, verify: bool) -> None:
    """The file exists with its size, and (``verify``) its checksum."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise IndexCorruptError(f"{path} is missing; {FIX}") from None
    identity = (str(path), stat.st_ino, stat.st_size, stat.st_mtime_ns)
    if stat.st_size != expected["size"] or (
            verify and identity not in _verified and file_sha256(path) != expected["sha256"]):
        raise IndexCorruptError(f"{path} was modified or truncated after the build; {FIX}")
    if verify:
        _verified.add(identity)


@dataclass(frozen=True)
class ChunkSpans:
    """Per row of a segment: its chunk's start and end in its document's text, and the rowid of
    that document in ``meta.sqlite``."""

    starts: np.ndarray
    ends: np.ndarray
    documents: np.ndarray


class Segment:
    """A segment's rows: chunk ids, vectors, sentence vectors, lexical postings and metadata."""

    def __init__(self, path: Path, sha256: str, verify: bool = True):
        self.path = path
        description = path / SEGMENT_FILE
        try:
            raw = description.read_bytes()
        except FileNotFoundError:
            raise IndexCorruptError(f"{description} is missing; {FIX}") from None
        if hashlib.sha256(raw).hexdigest() != sha256:
            raise IndexCorruptError(f"{description} was modified after the build; {FIX}")
        self.info = json.loads(raw)
        self.verified = False
        self._ann: ApproximateIndex | None = None
        self._ann_file: Path | None = None  # set once the vectors it indexes are open
        self._ann_lock = threading.Lock()
        self.check(verify)
        try:
            self.chunk_ids = mapped(path / IDS_FILE)
            self.vectors = mapped(path / VECTORS_FILE)
            self.sentences = mapped(path / SENTENCES_FILE)
            self.lexical = LexicalIndex.load(path / LEXICAL_DIR)
        except (OSError, ValueError) as e:
            raise IndexCorruptError(f"{path} cannot be read ({e}); {FIX}") from e
        self._db = sqlite3.connect(f"file:{path / META_FILE}?mode=ro", uri=True, check_same_thread=False)
        self._db.create_function("casefold", 1, str.casefold, deterministic=True)
        self._db_lock = threading.Lock()
        self._spans: ChunkSpans | None = None
        self._spans_lock = threading.Lock()
        if not len(self.chunk_ids) == len(self.vectors) == self.info["chunks"]:
            raise IndexCorruptError(f"{path} is inconsistent: {len(self.vectors)} vectors for "
                                    f"{self.info['chunks']} chunks; {FIX}")
        self._ann_file = path / ANN_FILE if ANN_FILE in self.info["files"] else None
        if verify:
            self._load_ann()

    def check(self, verify: bool) -> None:
        """Every file is there with its size; ``verify`` also checks their SHA-256 (once per
        process and file: a build, which reads only the metadata of untouched segments, skips it)."""
        if self.verified:
            return
        if verify:
            _trust_stamps(self.path)
        for name, expected in self.info["files"].items():
            _check_file(self.path / name, expected, verify)
        if verify:  # a reader's open: its searches need the graph
            self._load_ann()
        self.verified = verify

    @property
    def ann(self) -> ApproximateIndex | None:
        """The approximate index of a large segment, None in a small one. Read when a reader
        opens the segment (verified), else on first use: a build's base never searches, and
        reading a million rows' graphs cost it ~1.5 s."""
        return self._ann if self._ann_file is None else self._load_ann()

    @ann.setter
    def ann(self, index: ApproximateIndex | None) -> None:
        with self._ann_lock:
            self._ann, self._ann_file = index, None

    def _load_ann(self) -> ApproximateIndex | None:
        with self._ann_lock:
            if self._ann_file is not None:
                try:
                    index = ApproximateIndex(self._ann_file)
                except (OSError, ValueError, RuntimeError) as e:
                    raise IndexCorruptError(f"{self._ann_file} cannot be read ({e}); {FIX}") from e
                if len(index) != len(self.vectors):
                    raise IndexCorruptError(f"{self.path} is inconsistent: {len(index)} rows in its "
                                            f"approximate index for {len(self.vectors)} vectors; {FIX}")
                self._ann, self._ann_file = index, None
            return self._ann

    @classmethod
    def open(cls, segments_dir: Path, name: str, sha256: str, verify: bool = True) -> "Segment":
        """The segment, shared with any version of this process already holding it."""
        key = (str(segments_dir / name), sha256)
        with _open_lock:
            segment = _open_segments.get(key)
            if segment is None:
                segment = cls(segments_dir / name, sha256, verify)
                _open_segments[key] = segment
            else:
                segment.check(verify)
            return segment

    def __len__(self) -> int:
        return len(self.chunk_ids)

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._db_lock:
            try:
                return self._db.execute(sql, params).fetchall()
            except sqlite3.DatabaseError as e:
                raise IndexCorruptError(f"{self.path / META_FILE} is damaged ({e}); {FIX}") from e

    def has_table(self, name: str) -> bool:
        return bool(self.query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)))

    def rows_of(self, chunk_ids) -> np.ndarray:
        """Row of each chunk id in this segment, -1 where it holds no such chunk."""
        ids = np.asarray(chunk_ids, dtype=np.int64)
        if not len(self.chunk_ids):
            return np.full(len(ids), -1, dtype=np.int64)
        rows = np.minimum(np.searchsorted(self.chunk_ids, ids), len(self.chunk_ids) - 1)
        return np.where(self.chunk_ids[rows] == ids, rows, -1)

    def chunk_spans(self) -> "ChunkSpans":
        """Where each row's chunk lies: built on first use, once per process (segments never
        change, and every version listing this one shares it), so a query reads no chunk rows
        from SQLite, only the texts of the documents its results come from."""
        with self._spans_lock:
            if self._spans is None:
                rows = self.query("SELECT c.chunk_id, c.start, c.end, d.rowid FROM chunks c "
                                  "JOIN documents d ON d.doc_id = c.doc_id ORDER BY c.chunk_id")
                spans = np.array(rows, dtype=np.int64).reshape(len(rows), 4)
                if not np.array_equal(spans[:, 0], np.asarray(self.chunk_ids)):
                    raise IndexCorruptError(f"{self.path / META_FILE} does not list the chunks of "
                                            f"{self.path / IDS_FILE}; {FIX}")
                self._spans = ChunkSpans(spans[:, 1].copy(), spans[:, 2].copy(), spans[:, 3].copy())
            return self._spans

    def rows_of_documents(self, doc_ids: list[str]) -> np.ndarray:
        ids = [row[0] for start in range(0, len(doc_ids), 500) for row in self.query(
            f"SELECT chunk_id FROM chunks WHERE doc_id IN ({','.join('?' * len(doc_ids[start:start + 500]))})",
            tuple(doc_ids[start:start + 500]))]
        return self.rows_of(sorted(ids))

    def live_filter(self, live: np.ndarray | None) -> LiveFilter | None:
        """What :meth:`search` needs to skip deleted rows in the approximate index, if any."""
        has_ann = self._ann is not None or self._ann_file is not None  # without reading it
        return LiveFilter(live) if has_ann and live is not None else None

    def search(self, vector: np.ndarray, k: int, live: np.ndarray | None,
               live_filter: LiveFilter | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(chunk ids, similarities) of the k most similar live rows, best first: exact over
        every row, or, in a segment with an approximate index, over its candidates (the
        similarities are exact either way). ``live_filter``: :meth:`live_filter` of ``live``."""
        query = np.ascontiguousarray(vector, dtype=np.float32)
        if self.ann is not None and k <= len(self) // 10:
            if live is not None and live_filter is None:
                live_filter = self.live_filter(live)
            rows = self.ann.candidates(query, k, live_filter)
            scores = np.asarray(self.vectors[rows]) @ query
        else:
            rows = None
            # faiss's SIMD loop, not numpy's BLAS: one query against many rows, on one thread,
            # with no thread pool spinning against other requests (10-20x faster on a loaded machine).
            scores = np.empty(len(self), dtype=np.float32)
            if len(self):
                faiss.fvec_inner_products_ny(faiss.swig_ptr(scores), faiss.swig_ptr(query),
                                             faiss.swig_ptr(self.vectors), len(query), len(self))
            if live is not None:
                scores[~live] = -np.inf
        available = len(scores) if live is None or rows is not None else int(np.count_nonzero(live))
        k = min(k, available)
        if k < 1:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        best = np.argpartition(-scores, k - 1)[:k]
        best = best[np.argsort(-scores[best], kind="stable")]
        chosen = best if rows is None else rows[best]
        return np.asarray(self.chunk_ids[chosen]), scores[best]
