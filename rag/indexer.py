"""Incremental, atomic index builds: only new and changed documents are read and embedded.

One build at a time holds ``index_dir/.lock`` (an OS file lock, so it dies with its process).
A file whose size and mtime are as indexed is not even read; the model is loaded only when a
document needs embedding. Changed documents are embedded a batch at a time and written into new
segments (rag.index.writer); the new version becomes current only at the commit, and a build
that dies resumes from the segments it had recorded.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .chunking import DocumentTooLong, chunk_document, chunking_parameters, split_sentences
from .config import Settings, load_settings
from .embedding import Embedder, embedder_for
from .guard import GuardedLoader
from .loaders import file_hash, find_files
from .index.backends import current_version, open_reader, open_writer
from .index.base import IndexReader, IndexWriter
from .index.manifest import DocumentEntry
from .index.writer import BUILD_FILE, PENDING_DIR
from .store import Snapshot, check_compatible
from .types import Chunk, Document, IndexCorruptError, IndexStats, LoadError, RagError

_MAX_TITLE_TOKENS = 32
LOCK_FILE = ".lock"
#: Chunks embedded together and handed to the writer at once: a build's memory stays bounded.
EMBED_BATCH_CHUNKS = 256


@contextmanager
def build_lock(index_dir: Path):
    """Hold the single-writer lock; a second build is refused with the holder's pid."""
    index_dir.mkdir(parents=True, exist_ok=True)
    with open(index_dir / LOCK_FILE, "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "another process"
            raise RagError(
                f"another build of {index_dir} is running (pid {holder}); wait for it to finish"
            ) from None
        lock.seek(0)
        lock.truncate()
        lock.write(str(os.getpid()))
        lock.flush()
        try:
            yield
        finally:
            lock.truncate(0)


@dataclass
class _Plan:
    """What a build has to do, decided from file sizes and mtimes before anything is read."""

    stats: IndexStats
    hashes: dict[str, str] = field(default_factory=dict)  # every doc_id the new index will hold
    file_stats: dict[str, tuple[int, int]] = field(default_factory=dict)  # of files read as they are
    to_read: list[tuple[str, Path, os.stat_result]] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


def embedding_text(title: str, chunk_text: str) -> str:
    """What the model sees for a chunk: its document's title, then the chunk itself."""
    return f"{title}\n{chunk_text}" if title else chunk_text


def _title_for_embedding(embedder: Embedder, title: str) -> str:
    return title if embedder.count_tokens(title) <= _MAX_TITLE_TOKENS else ""


def _chunk_for(embedder: Embedder, settings: Settings, doc: Document) -> tuple[str, list[Chunk]]:
    """Chunks sized so that title + chunk fit the model's window: nothing is silently truncated."""
    title = _title_for_embedding(embedder, doc.title)
    room = embedder.max_tokens - embedder.special_tokens
    if title:
        room -= embedder.count_tokens(title + "\n")
    budget = max(16, min(settings.chunk_tokens, room))
    chunks = chunk_document(
        doc,
        max_tokens=budget,
        overlap_sentences=settings.chunk_overlap_sentences,
        count_tokens=embedder.count_tokens,
        max_document_tokens=settings.max_document_tokens,
    )
    return title, chunks


def _sentence_vectors(
    chunks: list[Chunk], span_vectors: list[np.ndarray | None]
) -> dict[tuple[int, int], np.ndarray]:
    """A document's sentence vectors by their place in it, each from the first chunk holding it."""
    found: dict[tuple[int, int], np.ndarray] = {}
    for chunk, vectors in zip(chunks, span_vectors):
        if vectors is None:
            continue
        for (start, end), vector in zip(split_sentences(chunk.text), vectors):
            if vector.any():
                found.setdefault((chunk.start + start, chunk.start + end), vector)
    return found


def build_index(
    corpus_dir: str | Path | None = None,
    index_dir: str | Path | None = None,
    *,
    full: bool = False,
    settings: Settings | None = None,
    progress: bool = False,
) -> IndexStats:
    """Bring the index in line with the corpus folder: only new and changed files are embedded,
    unless ``full``. Atomic and single-writer (see the module docstring). The folders default to
    the settings' (``RAG_CORPUS_DIR`` / ``RAG_INDEX_DIR``)."""
    settings = settings or load_settings()
    corpus_dir = corpus_dir if corpus_dir is not None else settings.corpus_dir
    index_dir = index_dir if index_dir is not None else settings.index_dir
    with build_lock(Path(index_dir)):
        return build_locked(corpus_dir, index_dir, full=full, settings=settings, progress=progress)


def build_locked(
    corpus_dir: str | Path, index_dir: str | Path, *, full: bool = False,
    settings: Settings | None = None, progress: bool = False,
) -> IndexStats:
    """:func:`build_index` for a caller that holds :func:`build_lock` already, so that a change
    to the corpus folder and the build that indexes it happen under one lock."""
    settings = settings or load_settings()
    corpus_dir, index_dir = Path(corpus_dir), Path(index_dir)
    if not corpus_dir.is_dir():
        raise RagError(f"corpus folder {corpus_dir} does not exist")
    kind = _build_kind(index_dir, settings, full)
    # Milvus resumes in its own collections (rag.ray_embed), not from a pending local version.
    base = _pending_build(index_dir, kind) if settings.index_backend == "local" else None
    resumed = base is not None
    if base is None and not full and current_version(settings, index_dir) is not None:
        base = open_reader(settings, index_dir, verify=False)
    try:
        if base is not None:
            check_compatible(base.manifest, settings.model, chunking_parameters(settings), index_dir)
        plan = _plan(corpus_dir, base.manifest.documents if base else {}, settings)
        if base is not None and not resumed and not plan.to_read and not plan.removed:
            plan.stats.chunks = len(base)
            return plan.stats
        _write(index_dir, base, plan, settings, progress, kind, resumed)
        return plan.stats
    finally:
        if base is not None:
            base.close()


def _build_kind(index_dir: Path, settings: Settings, full: bool) -> dict:
    """What a build is: a pending build is resumed only by a build of the same kind."""
    return {"model": settings.model, "chunking": chunking_parameters(settings), "full": full,
            "base": None if full else current_version(settings, index_dir)}


def _pending_build(index_dir: Path, kind: dict) -> Snapshot | None:
    """The segments a build of this kind recorded before it died, to resume from; None if there
    are none (or they are unusable: the build then starts over)."""
    pending = index_dir / PENDING_DIR
    try:
        if json.loads((pending / BUILD_FILE).read_text()) != kind:
            return None
        return Snapshot(pending, verify=True)
    except (OSError, ValueError, IndexCorruptError):
        return None


def _plan(corpus_dir: Path, known: dict[str, DocumentEntry], settings: Settings) -> _Plan:
    """Files whose size and mtime are as indexed are unchanged without being read; the others
    are to be read (and hashed), and indexed documents without a file are removed."""
    files, skipped = find_files(corpus_dir, max_file_mb=settings.max_file_mb)
    plan = _Plan(IndexStats())
    for doc_id, reason in skipped:  # grown too large, unreadable …: like a file that fails to parse
        _keep_previous(plan, known, doc_id, reason)
    for doc_id, path in files:
        try:
            stat = path.stat()
        except OSError as e:
            _keep_previous(plan, known, doc_id, f"unreadable: {e.strerror or e}")
            continue
        entry = known.get(doc_id)
        if entry is not None and (entry.size, entry.mtime_ns) == (stat.st_size, stat.st_mtime_ns):
            plan.hashes[doc_id] = entry.content_hash
            plan.file_stats[doc_id] = (stat.st_size, stat.st_mtime_ns)
            plan.stats.unchanged += 1
        else:
            plan.to_read.append((doc_id, path, stat))
    found = {doc_id for doc_id, _ in files}
    plan.removed = [doc_id for doc_id in known if doc_id not in found and doc_id not in plan.hashes]
    plan.stats.removed = len(plan.removed)
    return plan


def _refuse_read(plan: _Plan, known: dict[str, DocumentEntry], doc_id: str, reason: str) -> None:
    """A file read but too long to chunk: skipped like one that cannot be read, not counted."""
    if doc_id in known:
        plan.stats.updated -= 1
    else:
        plan.stats.added -= 1
    plan.hashes.pop(doc_id, None)
    plan.file_stats.pop(doc_id, None)
    _keep_previous(plan, known, doc_id, reason)


def _keep_previous(plan: _Plan, known: dict[str, DocumentEntry], doc_id: str, reason: str) -> None:
    """A file that cannot be read keeps its indexed version, if it has one."""
    if doc_id in known:
        plan.hashes[doc_id] = known[doc_id].content_hash
        reason += " (the previously indexed version is kept)"
    plan.stats.skipped.append((doc_id, reason))


def read_changed(reader: GuardedLoader, plan: _Plan, known: Mapping[str, DocumentEntry],
                 progress: bool) -> Iterator[Document]:
    """The planned files whose content did change, read one at a time; ``plan`` records each
    file as unchanged (the same hash after all), added, updated or skipped (keeping its indexed
    version)."""
    for doc_id, path, stat in tqdm(plan.to_read, desc="Indexing", unit="file", disable=not progress):
        try:
            content_hash = file_hash(path)
            if doc_id in known and known[doc_id].content_hash == content_hash:
                plan.hashes[doc_id] = content_hash
                plan.file_stats[doc_id] = (stat.st_size, stat.st_mtime_ns)
                plan.stats.unchanged += 1
                continue
            doc = reader.load(path, doc_id, content_hash)
        except (LoadError, OSError) as e:
            _keep_previous(plan, known, doc_id,
                           str(e) if isinstance(e, LoadError) else f"unreadable: {e.strerror or e}")
            continue
        plan.hashes[doc_id] = content_hash
        plan.file_stats[doc_id] = (stat.st_size, stat.st_mtime_ns)
        if doc_id in known:
            plan.stats.updated += 1
        else:
            plan.stats.added += 1
        yield doc


class _Batch:
    """Documents read and chunked, waiting to be embedded together (the model is loaded only
    when the first one arrives)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.embedder: Embedder | None = None
        self.documents: list[tuple[Document, str, list[Chunk]]] = []

    def add(self, doc: Document) -> None:
        if self.embedder is None:
            self.embedder = embedder_for(self.settings)
        title, chunks = _chunk_for(self.embedder, self.settings, doc)
        self.documents.append((doc, title, chunks))

    def __len__(self) -> int:
        return sum(len(chunks) for _, _, chunks in self.documents)

    def embed(self) -> list[tuple[Document, list[Chunk], np.ndarray, dict]]:
        """Each document with its chunks' vectors and its sentences' vectors; empties the batch."""
        chunks = [c for _, _, cs in self.documents for c in cs]
        texts = [embedding_text(title, c.text) for _, title, cs in self.documents for c in cs]
        # A chunk comes last in its embedded text, after its title.
        spans = [
            [(len(text) - len(c.text) + start, len(text) - len(c.text) + end)
             for start, end in split_sentences(c.text)]
            for text, c in zip(texts, chunks)
        ]
        vectors, span_vectors = self.embedder.embed_documents_and_spans(texts, spans)
        done, row = [], 0
        for doc, _, cs in self.documents:
            rows = slice(row, row + len(cs))
            done.append((doc, cs, vectors[rows], _sentence_vectors(cs, span_vectors[rows])))
            row += len(cs)
        self.documents = []
        return done


def _write(index_dir: Path, base: IndexReader | None, plan: _Plan, settings: Settings, progress: bool,
           kind: dict, resumed: bool) -> None:
    """Read, chunk and embed the changed files a batch at a time, handing each batch to the
    writer as it is embedded (memory stays bounded: the writer seals a segment every
    SEGMENT_CHUNKS and records it for a resumed build), and commit the new version."""
    known = base.manifest.documents if base else {}
    batch = _Batch(settings)
    writer: IndexWriter | None = None
    next_id = base.manifest.next_chunk_id if base else 0

    def flush() -> None:
        nonlocal writer, next_id
        if writer is None:
            writer = open_writer(settings, index_dir, base, batch.embedder.dimension if batch.embedder
                                 else base.manifest.dimension, resumable=kind)
        for doc, chunks, vectors, sentences in batch.embed() if len(batch.documents) else []:
            ids = list(range(next_id, next_id + len(chunks)))
            writer.remove_document(doc.doc_id)
            writer.add_document(doc, chunks, ids, vectors, sentences)
            next_id += len(chunks)

    try:
        with GuardedLoader(settings.parse_timeout_s, settings.parse_memory_mb, settings.max_file_mb,
                           settings.max_document_tokens) as reader:
            for doc in read_changed(reader, plan, known, progress):
                try:
                    batch.add(doc)
                except DocumentTooLong as e:
                    _refuse_read(plan, known, doc.doc_id, str(e))
                    continue
                if len(batch) >= EMBED_BATCH_CHUNKS:
                    flush()
        if (base is not None and not resumed and not plan.removed and not plan.stats.added
                and not plan.stats.updated):
            plan.stats.chunks = len(base)  # the changed files had the same content after all
            return
        if base is None and batch.embedder is None:
            batch.embedder = embedder_for(settings)  # an empty corpus: the dimension comes from the model
        flush()
        for doc_id in plan.removed:
            writer.remove_document(doc_id)
        writer.commit({
            "model": settings.model,
            "dimension": batch.embedder.dimension if batch.embedder else base.manifest.dimension,
            "chunking": chunking_parameters(settings),
            "documents": dict(sorted(plan.hashes.items())),
            "file_stats": plan.file_stats,
            "next_chunk_id": next_id,
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        })
        plan.stats.chunks = len(writer)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
