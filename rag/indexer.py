"""Incremental, atomic index builds: only new and changed documents are embedded.

One build at a time holds ``index_dir/.lock`` (an OS file lock, so it dies with its process);
everything is written into a new version folder that replaces the active one only when complete.
"""

from __future__ import annotations

import fcntl
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .chunking import chunk_document, split_sentences
from .config import Settings, load_settings
from .embedding import Embedder, embedder_for
from .guard import GuardedLoader
from .loaders import file_hash, find_files
from .index.backends import current_version, open_reader, open_writer
from .store import Snapshot, check_compatible
from .types import Chunk, Document, IndexStats, LoadError, RagError

CHUNKER_VERSION = 1
_MAX_TITLE_TOKENS = 32
LOCK_FILE = ".lock"


def chunking_parameters(settings: Settings) -> dict:
    return {
        "max_tokens": settings.chunk_tokens,
        "overlap_sentences": settings.chunk_overlap_sentences,
        "chunker_version": CHUNKER_VERSION,
    }


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
class _PlannedDocument:
    document: Document
    title_for_embedding: str
    chunks: list[Chunk]
    replaces_existing: bool


@dataclass
class _Plan:
    """What a build has to do, decided before anything is written."""

    stats: IndexStats
    hashes: dict[str, str] = field(default_factory=dict)  # every doc_id the new index will hold
    documents: list[_PlannedDocument] = field(default_factory=list)
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
    corpus_dir: str | Path = "corpus",
    index_dir: str | Path = "index",
    *,
    full: bool = False,
    settings: Settings | None = None,
    progress: bool = False,
) -> IndexStats:
    """Bring the index in line with the corpus folder: only new and changed files are embedded,
    unless ``full``. Atomic and single-writer (see the module docstring)."""
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
    chunking = chunking_parameters(settings)
    base: Snapshot | None = None
    if not full and current_version(settings, index_dir) is not None:
        base = open_reader(settings, index_dir)
    try:
        if base is not None:
            check_compatible(base.manifest, settings.model, chunking, index_dir)
        embedder = embedder_for(settings)
        plan = _plan(corpus_dir, base.manifest["documents"] if base else {}, embedder, settings, progress)
        if base is not None and not plan.documents and not plan.removed:
            plan.stats.chunks = len(base)
            return plan.stats
        _write(index_dir, base, plan, embedder, settings, progress)
        return plan.stats
    finally:
        if base is not None:
            base.close()


def _plan(
    corpus_dir: Path, known: dict[str, str], embedder: Embedder, settings: Settings, progress: bool
) -> _Plan:
    """Read and chunk new and changed files; a file that fails keeps its indexed version."""
    files, skipped = find_files(corpus_dir, max_file_mb=settings.max_file_mb)
    plan = _Plan(IndexStats(skipped=list(skipped)))
    with GuardedLoader(settings.parse_timeout_s, settings.parse_memory_mb) as reader:
        for doc_id, path in tqdm(files, desc="Reading", unit="file", disable=not progress):
            try:
                content_hash = file_hash(path)
                if known.get(doc_id) == content_hash:
                    plan.hashes[doc_id] = content_hash
                    plan.stats.unchanged += 1
                    continue
                doc = reader.load(path, doc_id, content_hash)
            except (LoadError, OSError) as e:
                reason = str(e) if isinstance(e, LoadError) else f"unreadable: {e.strerror or e}"
                if doc_id in known:
                    plan.hashes[doc_id] = known[doc_id]
                    reason += " (the previously indexed version is kept)"
                plan.stats.skipped.append((doc_id, reason))
                continue
            plan.hashes[doc_id] = content_hash
            title, chunks = _chunk_for(embedder, settings, doc)
            plan.documents.append(_PlannedDocument(doc, title, chunks, doc_id in known))
    plan.removed = [doc_id for doc_id in known if doc_id not in plan.hashes]
    plan.stats.added = sum(not p.replaces_existing for p in plan.documents)
    plan.stats.updated = sum(p.replaces_existing for p in plan.documents)
    plan.stats.removed = len(plan.removed)
    return plan


def _write(
    index_dir: Path, base: Snapshot | None, plan: _Plan, embedder: Embedder, settings: Settings,
    progress: bool,
) -> None:
    """Embed the planned chunks (and their sentences) and commit a new index version with them."""
    chunks = [c for p in plan.documents for c in p.chunks]
    texts = [embedding_text(p.title_for_embedding, c.text) for p in plan.documents for c in p.chunks]
    # A chunk comes last in its embedded text, after its title.
    spans = [
        [(len(text) - len(c.text) + start, len(text) - len(c.text) + end)
         for start, end in split_sentences(c.text)]
        for text, c in zip(texts, chunks)
    ]
    vectors, span_vectors = embedder.embed_documents_and_spans(texts, spans, progress=progress)
    writer = open_writer(settings, index_dir, base, embedder.dimension)
    try:
        next_id = base.manifest["next_chunk_id"] if base else 0
        for doc_id in plan.removed:
            writer.remove_document(doc_id)
        row = 0
        for p in plan.documents:
            if p.replaces_existing:
                writer.remove_document(p.document.doc_id)
            rows = slice(row, row + len(p.chunks))
            ids = list(range(next_id, next_id + len(p.chunks)))
            writer.add_document(p.document, p.chunks, ids, vectors[rows],
                                _sentence_vectors(p.chunks, span_vectors[rows]))
            next_id += len(p.chunks)
            row += len(p.chunks)
        plan.stats.chunks = len(writer)
        writer.commit({
            "model": settings.model,
            "dimension": embedder.dimension,
            "chunking": chunking_parameters(settings),
            "documents": dict(sorted(plan.hashes.items())),
            "next_chunk_id": next_id,
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        })
    except BaseException:
        writer.abort()
        raise
