"""The local index, write side: new documents go into new segments, deletions into the manifest,
and a commit publishes a new version that lists them.

A change therefore costs what changed: the new segment holds only the added documents, a removed
document is a name in the manifest, and untouched segments are neither copied nor re-read. Small
segments are merged when ``MERGE_FANOUT`` of one size class pile up (each chunk is rewritten about
log_FANOUT(N) times over its life) into segments of at most ``MAX_SEGMENT_CHUNKS``, and a
segment mostly deleted is compacted. Every file is
fsynced and checksummed before the version that lists it is published; ``CURRENT`` is replaced
atomically, so a crash at any point leaves the last good version current.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
import os
import shutil
import signal
import sqlite3
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..lexical import LexicalIndex
from ..store import (
    CURRENT_FILE,
    MANIFEST_FILE,
    READERS_FILE,
    Snapshot,
    live_rows,
    read_current,
    version_number,
)
from ..types import Chunk, Document, IndexCorruptError
from . import ann
from .manifest import TABLES_DIR, DocumentEntry, DocumentTable, Manifest, SegmentRef
from .segments import (
    IDS_FILE,
    LEXICAL_DIR,
    META_FILE,
    SCHEMA,
    SEGMENT_FILE,
    SEGMENTS_DIR,
    SENTENCES_FILE,
    SOURCE_MAPS_TABLE,
    STAMPS_FILE,
    VECTORS_FILE,
    Segment,
    file_sha256,
    stamps,
)

#: A build seals its segment every this many chunks, so its memory stays bounded.
SEGMENT_CHUNKS = 20_000
#: This many segments of one size class are merged into one.
MERGE_FANOUT = 8
#: Segments below this many live chunks count as one size class.
SMALLEST_CLASS = 1_000
#: No merge writes a segment larger than this: a merge builds the segment's whole graph (~0.2 ms
#: of CPU per row) and holds its postings in memory, so an unbounded one grew with the index
#: (a million-chunk build merged everything at its commit). Queries span segments; a 1M-chunk
#: index is five segments of this size (bench/README.md, "A million chunks").
MAX_SEGMENT_CHUNKS = 200_000
#: A segment whose live rows fall below this fraction is compacted.
COMPACT_BELOW = 0.5
#: Old versions kept besides the current one, so a damaged current one has a fallback.
KEPT_VERSIONS = 1
#: Where a build records the segments it has sealed so far, for the next build to resume from.
PENDING_DIR = "pending"
#: What the pending build is (model, chunking, base version, full), to resume only the same build.
BUILD_FILE = "build.json"
_COPY_BLOCK = 65_536
#: ``RAG_INDEX_FAULT=<step>`` kills the build at that step (crash tests; see :func:`_reached`).
FAULT_VARIABLE = "RAG_INDEX_FAULT"


def _reached(step: str) -> None:
    """A write step is done; a crash test may ask for the process to die right here."""
    if os.environ.get(FAULT_VARIABLE) == step:
        os.kill(os.getpid(), signal.SIGKILL)


def lexical_text(title: str, chunk_text: str) -> str:
    """A chunk as BM25 sees it: the document title counts as part of each chunk."""
    return f"{title}\n{chunk_text}"


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(path: Path, text: str) -> None:
    """Replace ``path`` atomically: readers see the old content or the new, never a half."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _new_database(path: Path) -> sqlite3.Connection:
    """A segment's metadata database, written without a journal or syncs: until the segment is
    sealed (fsynced, checksummed) and listed by a published version, nothing reads it, and a
    crash leaves only an unlisted folder that the next build removes."""
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode = OFF")
    db.execute("PRAGMA synchronous = OFF")
    db.executescript(SCHEMA)
    return db


def _index_vectors(path: Path) -> None:
    """A large segment gets an approximate index of its (already written) vectors."""
    vectors = np.load(path / VECTORS_FILE, mmap_mode="r")
    if len(vectors) >= ann.MIN_ROWS:
        ann.build(vectors, path / ann.ANN_FILE)


def _seal(path: Path, chunks: int, dimension: int) -> SegmentRef:
    """Fsync and checksum every file of a finished segment, then describe it."""
    files = {}
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        _fsync_file(file)
        files[str(file.relative_to(path))] = {"size": file.stat().st_size, "sha256": file_sha256(file)}
    write_durably(path / STAMPS_FILE, stamps(path, sorted(files)))
    for folder in {f.parent for f in path.rglob("*")} | {path}:
        _fsync_dir(folder)
    description = json.dumps({"chunks": chunks, "dimension": dimension, "files": files}, sort_keys=True)
    write_durably(path / SEGMENT_FILE, description)
    return SegmentRef(path.name, hashlib.sha256(description.encode()).hexdigest())


class _SegmentBuilder:
    """Collects the documents of one new segment (at most ~SEGMENT_CHUNKS chunks) and writes it."""

    def __init__(self, path: Path, dimension: int):
        self.path, self.dimension = path, dimension
        path.mkdir(parents=True)
        self.db = _new_database(path / META_FILE)
        self.ids: list[int] = []
        self.vectors: list[np.ndarray] = []
        self.sentences: list[np.ndarray] = []
        self.sentence_count = 0
        self.texts: list[str] = []
        self.doc_ids: list[str] = []
        self.chunks_of: dict[str, int] = {}  # doc_id -> its chunks in this segment

    def add(self, doc: Document, chunks: list[Chunk], chunk_ids: list[int], vectors: np.ndarray,
            sentences: dict[tuple[int, int], np.ndarray]) -> None:
        self.db.execute(
            "INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?, ?)",
            (doc.doc_id, doc.title, doc.text, doc.content_hash, json.dumps(list(doc.page_starts)),
             len(chunks), time.time()))
        self.db.execute("INSERT INTO source_maps VALUES (?, ?)",
                        (doc.doc_id, json.dumps(doc.source_map.to_json(), ensure_ascii=False)))
        self.db.executemany("INSERT INTO chunks VALUES (?, ?, ?, ?, ?)",
                            [(cid, c.doc_id, c.ordinal, c.start, c.end) for cid, c in zip(chunk_ids, chunks)])
        places = list(sentences)
        self.db.executemany("INSERT INTO sentences VALUES (?, ?, ?, ?)", [
            (doc.doc_id, start, end, self.sentence_count + n) for n, (start, end) in enumerate(places)])
        if places:
            self.sentences.append(np.vstack([sentences[p] for p in places]).astype(np.float16))
        self.sentence_count += len(places)
        self.ids.extend(chunk_ids)
        self.vectors.append(np.asarray(vectors, dtype=np.float32).reshape(len(chunk_ids), self.dimension))
        self.texts.extend(lexical_text(doc.title, c.text) for c in chunks)
        self.doc_ids.append(doc.doc_id)
        self.chunks_of[doc.doc_id] = len(chunks)

    def write(self) -> SegmentRef:
        empty = np.zeros((0, self.dimension), dtype=np.float32)
        np.save(self.path / IDS_FILE, np.asarray(self.ids, dtype=np.int64))
        np.save(self.path / VECTORS_FILE, np.vstack(self.vectors) if self.vectors else empty)
        np.save(self.path / SENTENCES_FILE,
                np.vstack(self.sentences) if self.sentences else empty.astype(np.float16))
        _index_vectors(self.path)
        _reached("after-vectors")
        self.db.commit()
        self.db.close()
        _reached("after-metadata")
        LexicalIndex.build(self.ids, self.texts).save(self.path / LEXICAL_DIR)
        return _seal(self.path, len(self.ids), self.dimension)

    def discard(self) -> None:
        self.db.close()
        shutil.rmtree(self.path, ignore_errors=True)


def _merge(path: Path, sources: list[tuple[Segment, np.ndarray | None, tuple[str, ...]]],
           dimension: int) -> SegmentRef:
    """One segment with the live rows of ``sources`` (consecutive, so ids stay ascending), copied
    as stored: nothing is embedded or tokenised again."""
    path.mkdir(parents=True)
    keeps = [np.ones(len(s), dtype=bool) if live is None else live for s, live, _ in sources]
    total = sum(int(np.count_nonzero(k)) for k in keeps)
    np.save(path / IDS_FILE, np.concatenate([np.asarray(s.chunk_ids)[k] for (s, _, _), k in zip(sources, keeps)]))
    _copy_rows(path / VECTORS_FILE, [(s.vectors, np.flatnonzero(k)) for (s, _, _), k in zip(sources, keeps)],
               total, dimension, np.float32)
    _index_vectors(path)
    db = _new_database(path / META_FILE)
    sentence_rows: list[tuple[np.ndarray, list[int]]] = []  # rows kept from each source, in order
    sentence_count = 0
    for n, (segment, _, deleted) in enumerate(sources):
        db.execute("ATTACH DATABASE ? AS source", (str(segment.path / META_FILE),))
        db.execute("CREATE TEMP TABLE gone (doc_id TEXT PRIMARY KEY)")
        db.executemany("INSERT INTO gone VALUES (?)", [(d,) for d in deleted])
        db.execute("INSERT INTO documents SELECT * FROM source.documents WHERE doc_id NOT IN gone")
        db.execute("INSERT INTO chunks SELECT * FROM source.chunks WHERE doc_id NOT IN gone")
        if segment.has_table(SOURCE_MAPS_TABLE):
            db.execute("INSERT INTO source_maps SELECT * FROM source.source_maps WHERE doc_id NOT IN gone")
        kept = db.execute("SELECT doc_id, start, end, row FROM source.sentences "
                          "WHERE doc_id NOT IN gone ORDER BY row").fetchall()
        db.executemany("INSERT INTO sentences VALUES (?, ?, ?, ?)",
                       [(d, s, e, sentence_count + i) for i, (d, s, e, _) in enumerate(kept)])
        sentence_rows.append((segment.sentences, [r[3] for r in kept]))
        sentence_count += len(kept)
        db.commit()
        db.execute("DROP TABLE gone")
        db.execute("DETACH DATABASE source")
    db.close()
    _copy_rows(path / SENTENCES_FILE, sentence_rows, sentence_count, dimension, np.float16)
    LexicalIndex.merged([(s.lexical, k) for (s, _, _), k in zip(sources, keeps)]).save(path / LEXICAL_DIR)
    return _seal(path, total, dimension)


def _copy_rows(path: Path, sources: list[tuple[np.ndarray, Sequence[int]]], total: int, dimension: int,
               dtype: type) -> None:
    """The given rows of each source array (chunk or sentence vectors), in order, into one new
    file, block by block: a merge never holds all the vectors of a size class in memory."""
    if not total:
        np.save(path, np.zeros((0, dimension), dtype))
        return
    out = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=(total, dimension))
    row = 0
    for array, rows in sources:
        for start in range(0, len(rows), _COPY_BLOCK):
            block = rows[start:start + _COPY_BLOCK]
            out[row:row + len(block)] = array[block]
            row += len(block)
    out.flush()
    del out


def _size_class(live_chunks: int) -> int:
    return int(math.log(max(live_chunks, SMALLEST_CLASS) / SMALLEST_CLASS, MERGE_FANOUT))


def _bounded_run(sizes: list[int], start: int, end: int) -> tuple[int, int] | None:
    """The first run of at least two consecutive segments in [start, end) whose merge stays
    within MAX_SEGMENT_CHUNKS (as many of them as fit), or None if no two neighbours fit."""
    for first in range(start, end - 1):
        stop, total = first, 0
        while stop < end and total + sizes[stop] <= MAX_SEGMENT_CHUNKS:
            total += sizes[stop]
            stop += 1
        if stop - first >= 2:
            return first, stop
    return None


def merge_plan(sizes: list[int], rows: list[int]) -> tuple[int, int] | None:
    """A run [start, end) of consecutive segments to merge, or None: at least MERGE_FANOUT
    neighbours of one size class (as many as fit in MAX_SEGMENT_CHUNKS), or one segment mostly
    deleted."""
    classes = [_size_class(s) for s in sizes]
    start = 0
    for end in range(1, len(sizes) + 1):
        if end == len(sizes) or classes[end] != classes[start]:
            run = _bounded_run(sizes, start, end) if end - start >= MERGE_FANOUT else None
            if run is not None:
                return run
            start = end
    for n, (live, total) in enumerate(zip(sizes, rows)):
        if total and live < COMPACT_BELOW * total:
            return n, n + 1
    return None


def _next_version(index_dir: Path) -> str:
    numbers = [version_number(p.name) for p in index_dir.glob("v-*")]
    return f"v-{max([n for n in numbers if n is not None], default=0) + 1:08d}"


class VersionWriter:
    """The local backend's :class:`~rag.index.base.IndexWriter`: writes new segments beside the
    current version's and publishes a version listing them at ``commit``.

    ``base`` None starts from nothing (a full build): the old segments stay until the new version
    is current and no reader holds a version listing them."""

    def __init__(self, index_dir: Path, base: Snapshot | None, dimension: int, *,
                 resumable: dict | None = None):
        """``resumable`` describes the build (model, chunking, base version, full); each segment
        sealed before the commit is then recorded in a pending version, which the next build of
        the same description resumes from if this one dies. Readers never see it."""
        self.index_dir = Path(index_dir)
        self.segments_dir = self.index_dir / SEGMENTS_DIR
        self.segments_dir.mkdir(parents=True, exist_ok=True)
        resuming = base is not None and base.path.name == PENDING_DIR
        _remove_unpublished(self.index_dir, keep_pending=resuming)
        self.dimension = dimension
        self._resumable = resumable
        self._recorded: set[str] = set()  # segments a pending version lists
        self._pending_base: str | None = None  # the base table the pending version lists
        #: The base version's documents, and this writer's changes to them (None: removed): a
        #: build that changes one document copies nothing of a large table.
        self._table: Mapping[str, DocumentEntry] = {} if base is None else base.manifest.documents
        self._changed: dict[str, DocumentEntry | None] = {}
        self._merged_into: dict[str, str] = {}  # segment merged away -> the segment holding its rows
        self._document_counts: dict[str, int] = {}  # sealed segment -> documents it was written with
        self._next_id = 0 if base is None else base.manifest.next_chunk_id
        self.base = base
        self._deleted: dict[str, set[str]] = {}  # segment -> documents deleted from it
        self._refs: list[SegmentRef] = [] if base is None else list(base.manifest.segments)
        self._written: list[Path] = []
        self._builder: _SegmentBuilder | None = None
        #: Live chunks of the committed version.
        self.chunk_count = 0

    def _new_segment_path(self) -> Path:
        path = self.segments_dir / f"s-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{os.getpid()}-{os.urandom(4).hex()}"
        self._written.append(path)
        return path

    def _entry(self, doc_id: str) -> DocumentEntry | None:
        """The document as written so far, in the segment that holds its rows now."""
        entry = self._changed[doc_id] if doc_id in self._changed else self._table.get(doc_id)
        if entry is None or entry.segment not in self._merged_into:
            return entry
        return entry._replace(segment=self._holder(entry.segment))

    def _holder(self, segment: str) -> str:
        """The segment holding the rows written to ``segment`` (itself, or what it was merged into)."""
        while segment in self._merged_into:
            segment = self._merged_into[segment]
        return segment

    def remove_document(self, doc_id: str) -> None:
        entry = self._entry(doc_id)
        if entry is None:
            return
        self._changed[doc_id] = None
        self._deleted.setdefault(entry.segment, set()).add(doc_id)

    def add_document(
        self, doc: Document, chunks: list[Chunk], chunk_ids: list[int], vectors: np.ndarray,
        sentences: dict[tuple[int, int], np.ndarray] | None = None,
    ) -> None:
        """``sentences``: vector by (start, end) in the document, for answering."""
        self.remove_document(doc.doc_id)
        if self._builder is None:
            self._builder = _SegmentBuilder(self._new_segment_path(), self.dimension)
        self._builder.add(doc, chunks, chunk_ids, vectors, sentences or {})
        self._changed[doc.doc_id] = DocumentEntry(doc.content_hash, self._builder.path.name)
        self._next_id = max([self._next_id, *[i + 1 for i in chunk_ids]])
        if len(self._builder.ids) >= SEGMENT_CHUNKS:
            self._seal_builder()
            if self._resumable is not None:
                self._record_pending()

    def _seal_builder(self) -> None:
        builder, self._builder = self._builder, None
        if builder is not None:
            self._refs.append(builder.write())
            self._document_counts[builder.path.name] = len(builder.doc_ids)

    def __len__(self) -> int:
        """Live chunks of the version as written so far: the sealed segments it lists, less
        their deletions, and the documents of the segment being filled."""
        total = 0
        for ref in self._live_refs():
            segment = Segment.open(self.segments_dir, ref.name, ref.sha256, verify=False)
            live = live_rows(segment, ref.deleted)
            total += len(segment) if live is None else int(np.count_nonzero(live))
        if self._builder is not None:
            gone = self._deleted.get(self._builder.path.name, set())
            total += sum(n for doc_id, n in self._builder.chunks_of.items() if doc_id not in gone)
        return total

    def _live_refs(self) -> list[SegmentRef]:
        """The segments with their deletions so far, without those left holding nothing."""
        refs = []
        for ref in self._refs:
            deleted = set(ref.deleted) | self._deleted.get(ref.name, set())
            if len(deleted) < self._documents_in(ref):
                refs.append(SegmentRef(ref.name, ref.sha256, tuple(sorted(deleted))))
        return refs

    def _documents_in(self, ref: SegmentRef) -> int:
        """Documents a sealed segment was written with (deleted or not)."""
        if ref.name not in self._document_counts:
            segment = Segment.open(self.segments_dir, ref.name, ref.sha256, verify=False)
            self._document_counts[ref.name] = segment.query("SELECT count(*) FROM documents")[0][0]
        return self._document_counts[ref.name]

    def _entries(self) -> dict[str, DocumentEntry]:
        """Every live document as written so far (for a pending version: a large build's)."""
        entries = {d: self._entry(d) for d in self._table if d not in self._changed}
        entries.update((d, self._entry(d)) for d, entry in self._changed.items() if entry is not None)
        return entries

    def _record_pending(self) -> None:
        """Record what is sealed so far as the pending version (fsynced, not current)."""
        refs = self._live_refs()
        record = Manifest(
            model=self._resumable["model"], dimension=self.dimension, chunking=self._resumable["chunking"],
            next_chunk_id=self._next_id, built_at="",
            documents=self._entries(),
            segments=tuple(refs))
        pending = self.index_dir / PENDING_DIR
        pending.mkdir(exist_ok=True)
        (pending / READERS_FILE).touch()
        write_durably(pending / BUILD_FILE, json.dumps(self._resumable, sort_keys=True))
        superseded = self._pending_base
        record.save(pending, write_durably)
        self._pending_base = Manifest.read(pending / MANIFEST_FILE).documents.base_name
        if superseded not in (None, self._pending_base) and superseded not in _listed(self.index_dir)[1]:
            (self.index_dir / TABLES_DIR / f"{superseded}.json").unlink(missing_ok=True)
        self._recorded = {r.name for r in refs}
        _reached("segment-recorded")

    def commit(self, manifest: dict) -> None:
        """Publish the version; ``manifest`` gives model, dimension, chunking, next_chunk_id,
        built_at, documents (doc_id -> content hash) and optionally file_stats (doc_id ->
        (size, mtime_ns)) for the documents whose file was read as it is now."""
        self._seal_builder()
        refs = self._refs = self._merged(self._live_refs())
        record = Manifest(
            model=manifest["model"], dimension=int(manifest["dimension"]), chunking=manifest["chunking"],
            next_chunk_id=int(manifest["next_chunk_id"]), built_at=manifest["built_at"],
            documents=self._table_after(manifest["documents"], manifest.get("file_stats", {})),
            segments=tuple(refs))
        version = self.index_dir / _next_version(self.index_dir)
        version.mkdir()
        (version / READERS_FILE).touch()
        record.save(version, write_durably)
        _fsync_file(version / READERS_FILE)
        _fsync_dir(self.index_dir)
        _reached("before-switch")
        write_durably(self.index_dir / CURRENT_FILE, version.name)
        self._written = []
        _reached("after-switch")
        shutil.rmtree(self.index_dir / PENDING_DIR, ignore_errors=True)
        remove_unused(self.index_dir)

    def _table_after(self, hashes: Mapping[str, str],
                     stats: Mapping[str, tuple[int, int]]) -> Mapping[str, DocumentEntry]:
        """The committed version's document table: the base's, with the entries that differ
        from it (a changed file, one moved by a merge, one removed) as its changes."""
        changes: dict[str, DocumentEntry | None] = {}
        for doc_id, content_hash in hashes.items():
            known = self._table.get(doc_id)
            written = self._changed[doc_id] if doc_id in self._changed else known
            if written is None:
                raise KeyError(f"{doc_id} is listed for the version but was never written to it")
            size, mtime = stats.get(doc_id, (-1, -1))
            entry = DocumentEntry(content_hash, self._holder(written.segment), size, mtime)
            if entry != known:
                changes[doc_id] = entry
        changes.update((doc_id, None) for doc_id in self._table.keys() - hashes.keys())
        if isinstance(self._table, DocumentTable):
            return self._table.updated(changes)
        return DocumentTable(None, changes)

    def _merged(self, refs: list[SegmentRef]) -> list[SegmentRef]:
        """Apply the merge policy until it asks for nothing more."""
        while True:
            segments = [Segment.open(self.segments_dir, r.name, r.sha256, verify=False) for r in refs]
            lives = [live_rows(s, r.deleted) for s, r in zip(segments, refs)]
            sizes = [len(s) if live is None else int(np.count_nonzero(live)) for s, live in zip(segments, lives)]
            plan = merge_plan(sizes, [len(s) for s in segments])
            if plan is None:
                self.chunk_count = sum(sizes)
                return refs
            start, end = plan
            for n in range(start, end):  # a merge copies these whole: check them first
                segments[n].check(verify=True)
            path = self._new_segment_path()
            merged = _merge(path, [(segments[n], lives[n], refs[n].deleted) for n in range(start, end)],
                            self.dimension)
            sources = {refs[n].name for n in range(start, end)}
            self._merged_into.update(dict.fromkeys(sources, merged.name))
            refs = refs[:start] + [merged] + refs[end:]
            self._release_merged(refs, sources)

    def _release_merged(self, refs: list[SegmentRef], sources: set[str]) -> None:
        """Remove the segments this build wrote and has just merged away: no published version
        lists them, so a full build's merges do not hold its rows twice on disk. A pending
        version is recorded again first, listing the merged segment in their place."""
        if self._resumable is not None:
            self._refs = refs
            self._record_pending()
        for path in [p for p in self._written if p.name in sources]:
            shutil.rmtree(path, ignore_errors=True)
            self._written.remove(path)

    def abort(self) -> None:
        """Remove the segments this writer wrote, except those a pending version records (the
        next build resumes from them); the current version stays as it was."""
        if self._builder is not None:
            self._builder.discard()
            self._builder = None
        for path in self._written:
            if path.name not in self._recorded:
                shutil.rmtree(path, ignore_errors=True)
        self._written = []


def _remove_unpublished(index_dir: Path, keep_pending: bool) -> None:
    """Versions numbered above CURRENT were written by a build that died before publishing them;
    a pending version not being resumed is stale."""
    if not keep_pending:
        shutil.rmtree(index_dir / PENDING_DIR, ignore_errors=True)
    current = version_number(read_current(index_dir) or "") or 0
    for path in index_dir.glob("v-*"):
        if (version_number(path.name) or 0) > current:
            shutil.rmtree(path, ignore_errors=True)


def _take_exclusively(version_dir: Path) -> object | None:
    """The version's READERS file locked exclusively (no reader holds it), else None."""
    try:
        handle = open(version_dir / READERS_FILE, "rb")
    except FileNotFoundError:
        return open(os.devnull, "rb")  # a version never published: nobody can hold it
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def _listed(index_dir: Path) -> tuple[set[str], set[str]]:
    """The segments and base document tables that the versions left on disk (and a pending
    build) list."""
    segments, tables = set(), set()
    for path in [*index_dir.glob("v-*"), index_dir / PENDING_DIR]:
        if not (path / MANIFEST_FILE).exists():
            continue
        try:
            manifest = Manifest.read(path / MANIFEST_FILE)
        except IndexCorruptError:  # an unreadable version lists nothing worth keeping
            continue
        segments.update(ref.name for ref in manifest.segments)
        tables.add(manifest.documents.base_name)
    return segments, tables


def remove_unused(index_dir: Path) -> None:
    """Remove versions no reader holds (keeping the current one and KEPT_VERSIONS before it),
    then segments no remaining version lists, including those of builds that died. Only the
    holder of the build lock calls this, so no segment is being written meanwhile."""
    current = read_current(index_dir)
    numbers = sorted((version_number(p.name), p) for p in index_dir.glob("v-*") if p.is_dir()
                     and version_number(p.name) is not None)
    current_number = version_number(current or "")
    kept = [p for n, p in numbers if current_number is not None and n < current_number][-KEPT_VERSIONS:]
    for number, path in numbers:
        if path.name == current or path in kept:
            continue
        handle = _take_exclusively(path)
        if handle is None:
            continue
        try:
            shutil.rmtree(path, ignore_errors=True)
        finally:
            handle.close()
    for path in index_dir.glob("v-*"):  # folders of an older format, or a non-directory
        if path.is_dir() and version_number(path.name) is None:
            shutil.rmtree(path, ignore_errors=True)
    segments, tables = _listed(index_dir)
    for segment in (index_dir / SEGMENTS_DIR).glob("*"):
        if segment.name not in segments:
            shutil.rmtree(segment, ignore_errors=True)
    for table in (index_dir / TABLES_DIR).glob("*"):
        if table.stem not in tables:
            table.unlink(missing_ok=True)
    for tmp in index_dir.glob(f".{CURRENT_FILE}.*.tmp"):
        tmp.unlink(missing_ok=True)
