"""The local index on disk, read side: versions of immutable segments, each reader pinned to one.

Layout of ``index_dir``::

    CURRENT            name of the active version (replaced atomically)
    v-<seq>/           manifest.json (typed: rag.index.manifest) and READERS
    segments/<name>/   immutable segments (rag.index.segments), shared by the versions listing them
    .lock              held by the one build that may write

A reader takes a shared lock on its version's ``READERS`` file for as long as it lives, and a
build removes an old version only when it can take that lock exclusively: a version goes only
when no process reads it, and a segment only when no remaining version lists it. The write side
is :mod:`rag.index.writer`; nothing here imports it.
"""

from __future__ import annotations

import fcntl
import heapq
import itertools
import json
import logging
import re
import threading
import weakref
from collections import OrderedDict
from pathlib import Path

import numpy as np

from .index.base import DocumentListing, clamped_offset
from .index.manifest import FIX, MANIFEST_FILE, Manifest
from .index.segments import SEGMENTS_DIR, SOURCE_MAPS_TABLE, Segment
from .lexical import LexicalIndex
from .text import Vocabulary, WordCounts
from .types import (
    ChunkRecord,
    Document,
    DocumentInfo,
    IndexCorruptError,
    IndexMismatchError,
    IndexNotFoundError,
    Place,
    SourceMap,
    page_at,
)

CURRENT_FILE = "CURRENT"
READERS_FILE = "READERS"
VERSION_NAME = re.compile(r"v-(\d{8})$")
_OPEN_ATTEMPTS = 5
_log = logging.getLogger(__name__)


def read_current(index_dir: Path) -> str | None:
    try:
        name = (Path(index_dir) / CURRENT_FILE).read_text().strip()
    except FileNotFoundError:
        return None
    return name or None


def version_number(name: str) -> int | None:
    match = VERSION_NAME.match(name)
    return int(match.group(1)) if match else None


def check_compatible(manifest, model: str, chunking: dict, where: Path) -> None:
    """Refuse an index whose vectors or chunks a different configuration would not reproduce."""
    if manifest["model"] != model:
        raise IndexMismatchError(
            f"the index in {where} was built with model {manifest['model']!r}, but the configured "
            f"model is {model!r}; {FIX} (or set RAG_MODEL back)"
        )
    if manifest["chunking"] != chunking:
        raise IndexMismatchError(
            f"the index in {where} was built with chunking {manifest['chunking']}, but the "
            f"configuration asks for {chunking}; {FIX}"
        )


class _VersionGone(IndexCorruptError):
    """The version was removed between reading CURRENT and locking it: read CURRENT again."""


def _hold(version_dir: Path):
    """A shared lock on the version that keeps builds from removing it while this reader lives."""
    try:
        handle = open(version_dir / READERS_FILE, "rb")
    except FileNotFoundError:
        raise _VersionGone from None
    fcntl.flock(handle, fcntl.LOCK_SH)
    if not (version_dir / MANIFEST_FILE).exists():  # removed while we waited for the lock
        handle.close()
        raise _VersionGone
    return handle


def live_rows(segment: Segment, deleted: tuple[str, ...]) -> np.ndarray | None:
    """Which rows of ``segment`` are live once ``deleted`` documents are gone (None: all)."""
    if not deleted:
        return None
    live = np.ones(len(segment), dtype=bool)
    rows = segment.rows_of_documents(list(deleted))
    live[rows[rows >= 0]] = False
    return live


class Snapshot:
    """The local backend's :class:`~rag.index.base.IndexReader`: one version, read-only, safe to
    share between threads, held (not removable by builds) until closed or garbage-collected."""

    def __init__(self, version_dir: Path, verify: bool = True):
        self.path = version_dir
        #: Why an older version is read instead of the current one, if it is.
        self.fallback_reason: str | None = None
        self._handle = _hold(version_dir)
        try:
            self.manifest = Manifest.read(version_dir / MANIFEST_FILE)
            segments_dir = version_dir.parent / SEGMENTS_DIR
            self._segments = [Segment.open(segments_dir, ref.name, ref.sha256, verify)
                              for ref in self.manifest.segments]
            self._live = [live_rows(segment, ref.deleted)
                          for segment, ref in zip(self._segments, self.manifest.segments)]
            self._filters = [segment.live_filter(live) for segment, live in zip(self._segments, self._live)]
            self._index_rows()
            self.lexical = LexicalIndex.combined(
                [(segment.lexical, live) for segment, live in zip(self._segments, self._live)])
            self._deleted = [frozenset(ref.deleted) for ref in self.manifest.segments]
            for segment in self._segments:
                if segment.info["dimension"] != self.manifest.dimension:
                    raise IndexCorruptError(f"{segment.path} holds vectors of dimension "
                                            f"{segment.info['dimension']}, not {self.manifest.dimension}; {FIX}")
        except BaseException:
            self.close()
            raise

    def _index_rows(self) -> None:
        """Where each live chunk id is: the segment and the row, found by one binary search."""
        ids, segments, rows = [], [], []
        for n, (segment, live) in enumerate(zip(self._segments, self._live)):
            held = np.arange(len(segment)) if live is None else np.flatnonzero(live)
            ids.append(np.asarray(segment.chunk_ids)[held])
            segments.append(np.full(len(held), n, dtype=np.int32))
            rows.append(held)
        ids = np.concatenate(ids) if ids else np.zeros(0, dtype=np.int64)
        order = np.arange(len(ids)) if np.all(ids[1:] > ids[:-1]) else np.argsort(ids, kind="stable")
        self._ids = ids[order]
        self._id_segment = np.concatenate(segments)[order] if segments else np.zeros(0, np.int32)
        self._id_row = np.concatenate(rows)[order] if rows else np.zeros(0, np.int64)

    def _locate(self, chunk_ids: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(found mask, segment, row) of each chunk id."""
        ids = np.asarray(chunk_ids, dtype=np.int64)
        if not len(self._ids):
            return np.zeros(len(ids), bool), np.zeros(len(ids), np.int32), np.zeros(len(ids), np.int64)
        at = np.minimum(np.searchsorted(self._ids, ids), len(self._ids) - 1)
        return self._ids[at] == ids, self._id_segment[at], self._id_row[at]

    def __len__(self) -> int:
        return len(self._ids)

    def close(self) -> None:
        """Release the version (builds may then remove it); the segments close with their last user."""
        handle, self._handle = getattr(self, "_handle", None), None
        if handle is not None:
            handle.close()
        self._segments = []

    def search_dense(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        """(chunk_id, cosine similarity) best first, over every segment."""
        if k < 1 or not len(self):
            return []
        found = [segment.search(vector, k, live, live_filter)
                 for segment, live, live_filter in zip(self._segments, self._live, self._filters)]
        ids = np.concatenate([f[0] for f in found])
        scores = np.concatenate([f[1] for f in found])
        order = np.lexsort((ids, -scores))[:k]
        return [(int(ids[i]), float(scores[i])) for i in order]

    def vectors(self, chunk_ids: list[int]) -> dict[int, np.ndarray]:
        """The stored vector of each given chunk (ids not in the version are left out)."""
        found, segments, rows = self._locate(chunk_ids)
        stored = {}
        for n in np.unique(segments[found]):
            mine = found & (segments == n)
            order = np.argsort(rows[mine])  # memory-mapped rows read in file order
            block = np.asarray(self._segments[n].vectors[rows[mine][order]])
            stored.update(zip(np.asarray(chunk_ids, dtype=np.int64)[mine][order].tolist(), block))
        return {c: stored[c] for c in chunk_ids if c in stored}

    def similarities(self, vector: np.ndarray, chunk_ids: list[int]) -> dict[int, float]:
        """Cosine similarity of ``vector`` to each given chunk (vectors are normalised): the
        rows gathered per segment in file order, then one product in the order asked."""
        ids = np.asarray(chunk_ids, dtype=np.int64)
        _, first = np.unique(ids, return_index=True)
        ids = ids[np.sort(first)]
        found, segments, rows = self._locate(ids)
        ids = ids[found]
        if not len(ids):
            return {}
        block = np.empty((len(ids), self.manifest.dimension), dtype=np.float32)
        for n in np.unique(segments[found]).tolist():
            mine = np.flatnonzero(segments[found] == n)
            order = mine[np.argsort(rows[found][mine])]
            block[order] = self._segments[n].vectors[rows[found][order]]
        return dict(zip(ids.tolist(), (block @ vector).tolist()))

    def sentence_vectors(self, places: list[Place]) -> dict[Place, np.ndarray]:
        """The stored vector of each sentence place that has one."""
        found = {}
        holding = {doc_id: self._segment_holding(doc_id) for doc_id in {p[0] for p in places}}
        for place in places:
            segment = holding[place[0]]
            if segment is None:
                continue
            row = segment.query("SELECT row FROM sentences WHERE doc_id = ? AND start = ? AND end = ?", place)
            if row:
                found[place] = np.asarray(segment.sentences[row[0][0]], dtype=np.float32)
        return found

    def lexical_scores(self, query: str):
        """BM25 scores of ``query`` against this version's chunks."""
        return self.lexical.scores(query)

    def chunks(self, chunk_ids: list[int]) -> dict[int, ChunkRecord]:
        ids = np.asarray(chunk_ids, dtype=np.int64)
        found, segments, rows = self._locate(ids)
        records = {}
        for n in np.unique(segments[found]).tolist():
            mine = found & (segments == n)
            records.update(zip(ids[mine].tolist(), _chunk_records(self._segments[n], rows[mine].tolist())))
        return {c: records[c] for c in chunk_ids if c in records}

    def vocabulary(self) -> Vocabulary:
        """The surface words of this version's documents (texts and titles): each segment's
        counted once per process (versions share segments), less those of the documents deleted
        from them since, so a new version reads only its new segments' and deleted documents'
        texts."""
        removed = WordCounts(text for segment, deleted in zip(self._segments, self._deleted) if deleted
                             for text in _texts_and_titles(segment, sorted(deleted)))
        return Vocabulary(parts=[_segment_words(segment) for segment in self._segments], removed=removed)

    def _segment_holding(self, doc_id: str) -> Segment | None:
        """The one segment where the document is live (newer segments replace older ones)."""
        for segment, deleted in zip(reversed(self._segments), reversed(self._deleted)):
            if doc_id not in deleted and segment.query("SELECT 1 FROM documents WHERE doc_id = ?", (doc_id,)):
                return segment
        return None

    def document(self, doc_id: str) -> Document:
        segment = self._segment_holding(doc_id)
        rows = segment.query(
            "SELECT doc_id, title, text, content_hash, page_starts FROM documents WHERE doc_id = ?",
            (doc_id,)) if segment is not None else []
        if not rows:
            raise KeyError(doc_id)
        doc_id, title, text, content_hash, page_starts = rows[0]
        stored = segment.query("SELECT map FROM source_maps WHERE doc_id = ?", (doc_id,)) if (
            segment.has_table(SOURCE_MAPS_TABLE)) else []
        return Document(doc_id, title, text, content_hash, tuple(json.loads(page_starts)),
                        source_map=SourceMap.from_json(json.loads(stored[0][0]) if stored else None))

    def documents(self) -> list[DocumentInfo]:
        infos = []
        for segment, deleted in zip(self._segments, self._deleted):
            for doc_id, title, chunks, starts, indexed_at in segment.query(
                    "SELECT doc_id, title, chunks, page_starts, indexed_at FROM documents"):
                if doc_id not in deleted:
                    infos.append(DocumentInfo(doc_id, title, chunks, len(json.loads(starts)) or None, indexed_at))
        return sorted(infos, key=lambda info: info.doc_id)

    def document_page(self, search: str, offset: int, limit: int) -> DocumentListing:
        """A page of documents, filtered in SQLite: only the doc_ids that match are read from
        each segment (in doc_id order, from its primary key), and only the page's rows in full."""
        needle = search.strip().casefold()
        where = "WHERE instr(casefold(doc_id), ?) OR instr(casefold(title), ?)" if needle else ""
        streams = []
        for n, (segment, deleted) in enumerate(zip(self._segments, self._deleted)):
            ids = segment.query(f"SELECT doc_id FROM documents {where} ORDER BY doc_id",
                                (needle, needle) if needle else ())
            streams.append([(row[0], n) for row in ids if row[0] not in deleted])
        matching = list(heapq.merge(*streams))
        limit = max(1, limit)
        offset = clamped_offset(offset, limit, len(matching))
        page = matching[offset:offset + limit]
        infos = {}
        for n in {n for _, n in page}:
            wanted = [doc_id for doc_id, m in page if m == n]
            for doc_id, title, chunks, starts, indexed_at in self._segments[n].query(
                    "SELECT doc_id, title, chunks, page_starts, indexed_at FROM documents "
                    f"WHERE doc_id IN ({','.join('?' * len(wanted))})", tuple(wanted)):
                infos[doc_id] = DocumentInfo(doc_id, title, chunks, len(json.loads(starts)) or None, indexed_at)
        total = len(matching) if not needle else self._live_documents()
        return DocumentListing([infos[doc_id] for doc_id, _ in page], offset, len(matching), total)

    def _live_documents(self) -> int:
        return sum(segment.query("SELECT count(*) FROM documents")[0][0] - len(deleted)
                   for segment, deleted in zip(self._segments, self._deleted))


class _RecordCache:
    """Chunk records of recently read rows, process-wide, the least recently used dropped past
    ``size``: segments never change, so a row's record is the same in every version listing its
    segment, and the results of a corpus's questions come back to the same chunks. Keys are a
    number per open segment (never a reused path), so a closed segment's records just age out."""

    def __init__(self, size: int):
        self.size = size
        self._records: OrderedDict[tuple[int, int], ChunkRecord] = OrderedDict()
        self._segment_keys: "weakref.WeakKeyDictionary[Segment, int]" = weakref.WeakKeyDictionary()
        self._numbers = itertools.count()
        self._lock = threading.Lock()

    def get(self, segment: Segment, rows: list[int]) -> tuple[int, list[ChunkRecord | None]]:
        """The segment's key and each row's record (None where not cached)."""
        with self._lock:
            key = self._segment_keys.get(segment)
            if key is None:
                key = self._segment_keys[segment] = next(self._numbers)
            found = []
            for row in rows:
                record = self._records.get((key, row))
                if record is not None:
                    self._records.move_to_end((key, row))
                found.append(record)
            return key, found

    def put(self, key: int, records: dict[int, ChunkRecord]) -> None:
        with self._lock:
            self._records.update(((key, row), record) for row, record in records.items())
            while len(self._records) > self.size:
                self._records.popitem(last=False)


#: About 1 KB each (a 128-token chunk's text and its record): ~20 MB at most.
_records = _RecordCache(20_000)


def _chunk_records(segment: Segment, rows: list[int]) -> list[ChunkRecord]:
    """The record of each row of ``segment``: from the cache, else read (and then cached)."""
    key, records = _records.get(segment, rows)
    missing = sorted({row for row, record in zip(rows, records) if record is None})
    if not missing:
        return records
    read = dict(zip(missing, _read_records(segment, missing)))
    _records.put(key, read)
    return [read[row] if record is None else record for row, record in zip(rows, records)]


def _read_records(segment: Segment, rows: list[int]) -> list[ChunkRecord]:
    spans = segment.chunk_spans()
    documents = spans.documents[rows]
    # Each document's text is read once (by rowid) and sliced here: SQLite's substr() walks a
    # text from its first character, so one per chunk re-read long documents.
    wanted = np.unique(documents).tolist()
    texts = {rowid: (doc_id, title, text, () if page_starts == "[]" else json.loads(page_starts))
             for rowid, doc_id, title, text, page_starts in segment.query(
                 "SELECT rowid, doc_id, title, text, page_starts FROM documents "
                 f"WHERE rowid IN ({','.join('?' * len(wanted))})", tuple(wanted))}
    records = []
    for chunk_id, start, end, rowid in zip(np.asarray(segment.chunk_ids)[rows].tolist(),
                                           spans.starts[rows].tolist(), spans.ends[rows].tolist(),
                                           documents.tolist()):
        doc_id, title, text, page_starts = texts[rowid]
        records.append(ChunkRecord(chunk_id, doc_id, title, text[start:end], start, end,
                                   page_at(page_starts, start) if page_starts else None))
    return records


_words: "weakref.WeakKeyDictionary[Segment, WordCounts]" = weakref.WeakKeyDictionary()
_words_lock = threading.Lock()
_READ_AT_ONCE = 500


def _segment_words(segment: Segment) -> WordCounts:
    """The words of every document of ``segment``, counted on first use by this process."""
    with _words_lock:
        counted = _words.get(segment)
        if counted is None:
            counted = _words[segment] = WordCounts(_texts_and_titles(segment))
        return counted


def _texts_and_titles(segment: Segment, doc_ids: list[str] | None = None):
    """Text and title of each document of ``segment`` (or of ``doc_ids``), a few hundred read at
    a time: a large segment's texts are never all in memory at once."""
    if doc_ids is not None:
        for start in range(0, len(doc_ids), _READ_AT_ONCE):
            wanted = tuple(doc_ids[start:start + _READ_AT_ONCE])
            for title, text in segment.query("SELECT title, text FROM documents "
                                             f"WHERE doc_id IN ({','.join('?' * len(wanted))})", wanted):
                yield text
                yield title
        return
    last = 0
    while rows := segment.query("SELECT rowid, title, text FROM documents WHERE rowid > ? "
                                "ORDER BY rowid LIMIT ?", (last, _READ_AT_ONCE)):
        for _, title, text in rows:
            yield text
            yield title
        last = rows[-1][0]


def _versions_newest_first(index_dir: Path) -> list[str]:
    names = [p.name for p in index_dir.glob("v-*") if version_number(p.name) is not None]
    return sorted(names, key=version_number, reverse=True)


def open_snapshot(index_dir: Path, *, verify: bool = True) -> Snapshot:
    """The current version, pinned; if it is damaged, the newest older version that opens, with
    a warning naming the damage (and ``fallback_reason`` set). ``verify`` False checks file
    sizes but not checksums (a build, which reads little of its base)."""
    index_dir = Path(index_dir)
    for _ in range(_OPEN_ATTEMPTS):
        name = read_current(index_dir)
        if name is None:
            raise IndexNotFoundError(
                f"no index in {index_dir}: build one with `rag index --corpus DIR --index {index_dir}` "
                "(or rag.build_index in Python)"
            )
        version_dir = index_dir / name
        if not version_dir.is_dir():
            if read_current(index_dir) != name:
                continue
            raise IndexCorruptError(f"{index_dir / CURRENT_FILE} names {name}, which is missing; {FIX}")
        try:
            return Snapshot(version_dir, verify)
        except IndexCorruptError as error:
            if read_current(index_dir) != name:
                continue  # a build replaced the version meanwhile
            missing = next((version_dir / f for f in (MANIFEST_FILE, READERS_FILE)
                            if not (version_dir / f).exists()), version_dir)
            damage = IndexCorruptError(f"{missing} is missing; {FIX}") if isinstance(
                error, _VersionGone) else error
            return _fall_back(index_dir, name, damage, verify)
    raise IndexCorruptError(f"{index_dir} keeps changing under this reader; try again")


def _fall_back(index_dir: Path, current: str, damage: IndexCorruptError, verify: bool) -> Snapshot:
    number = version_number(current)
    for name in _versions_newest_first(index_dir):
        if number is None or version_number(name) >= number:
            continue
        try:
            snapshot = Snapshot(index_dir / name, verify)
        except IndexCorruptError:
            continue
        snapshot.fallback_reason = f"the current index version is damaged ({damage}); reading {name}, the last good one"
        _log.warning("%s", snapshot.fallback_reason)
        return snapshot
    raise damage
