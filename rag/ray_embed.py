"""Bulk embedding on a Ray cluster: ``rag index --ray ADDRESS|auto``.

The build is planned here as in :mod:`rag.indexer` (read, chunk, decide what changed); only the
embedding moves to Ray Data: chunk texts go through ``map_batches`` on a pool of actors, each of
which loads the model once from a local path (the same path must exist on every node, as must
``rag`` itself). Every row carries its id through the pool, and each document is written to the
index backend as soon as all its chunks are back, in batches.

A killed build resumes: on a backend that keeps what a build wrote (Milvus), the next build on
the same base finds the documents already written whole and embeds only the rest. On the local
backend a Ray build records no pending version (that is rag.indexer's resume), so there it starts
over.

The build joins an existing cluster and starts none itself. Ray sends no usage statistics here
(``RAY_USAGE_STATS_ENABLED=0``). Ray nodes listen on the machine's routable address whatever
``--node-ip-address`` says (``ray start`` and ``ray.init`` both replace 127.0.0.1 by it), so a
cluster of nodes on one machine for testing belongs in a loopback-only network namespace
(tests/index/servers.py), and a real one behind the cluster network's firewall.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
from tqdm.auto import tqdm

from .chunking import split_sentences
from .config import Settings, load_settings
from .embedding import embedder_for, resolve_model_path
from .guard import GuardedLoader
from .index.backends import current_version, open_reader, open_writer
from .chunking import DocumentTooLong, chunking_parameters
from .indexer import (
    _chunk_for,
    _plan,
    _refuse_read,
    _sentence_vectors,
    build_lock,
    embedding_text,
    read_changed,
)
from .store import check_compatible
from .types import Chunk, Document, IndexStats, RagError


@dataclass
class _Planned:
    """A changed document, read and chunked, waiting for its vectors."""

    document: Document
    title_for_embedding: str
    chunks: list[Chunk]


class ChunkEncoder:
    """One actor of the pool: the model, loaded once, embedding batches of chunk texts."""

    def __init__(self, model_path: str, threads: int, batch_size: int, precision: str):
        from .embedding import Embedder

        self._embedder = Embedder(model_path, threads=threads, batch_size=batch_size, precision=precision)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        spans = [json.loads(s) for s in batch["spans"]]
        vectors, span_vectors = self._embedder.embed_documents_and_spans(list(batch["text"]), spans)
        pooled = np.empty(len(span_vectors), dtype=object)
        pooled[:] = [b"" if v is None else v.astype(np.float32).tobytes() for v in span_vectors]
        return {"row": batch["row"], "vector": vectors, "sentences": pooled}


def connect(address: str) -> None:
    """Join the Ray cluster at ``address`` ("auto": the one this machine joined with ``ray start``,
    or RAY_ADDRESS)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
    except ImportError as e:
        raise RagError("bulk embedding on Ray needs ray[data]: pip install 'rag[ray]'") from e
    if ray.is_initialized():
        return
    options = {"logging_level": "WARNING", "log_to_driver": False}
    host = urlsplit(f"//{address}").hostname if address != "auto" else None
    if host in ("127.0.0.1", "localhost"):
        options["_node_ip_address"] = "127.0.0.1"
    try:
        ray.init(address=address, **options)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise RagError(f"cannot join the Ray cluster at {address}: {e}") from e


def build_index_on_ray(
    corpus_dir: str | Path, index_dir: str | Path, address: str, *, full: bool = False,
    settings: Settings | None = None, progress: bool = False, actors: int = 2,
    on_written: Callable[[str], None] | None = None,
) -> IndexStats:
    """:func:`rag.indexer.build_index` with the embedding done by ``actors`` Ray actors.

    ``on_written(doc_id)`` is called after each document is written."""
    settings = settings or load_settings()
    corpus_dir, index_dir = Path(corpus_dir), Path(index_dir)
    if not corpus_dir.is_dir():
        raise RagError(f"corpus folder {corpus_dir} does not exist")
    model_path = resolve_model_path(settings.model)
    if not os.path.isdir(model_path):
        raise RagError(f"Ray actors load the model from a local folder; {settings.model!r} is not one "
                       "(set RAG_MODEL to a path that exists on every Ray node)")
    with build_lock(index_dir):
        base = None
        if not full and current_version(settings, index_dir) is not None:
            base = open_reader(settings, index_dir, verify=False)
        try:
            return _build(corpus_dir, index_dir, address, base, model_path, settings, progress, actors,
                          on_written)
        finally:
            if base is not None:
                base.close()


def _build(corpus_dir: Path, index_dir: Path, address: str, base, model_path: str, settings: Settings,
           progress: bool, actors: int, on_written) -> IndexStats:
    """Plan and read as the indexer does, then embed on Ray and write into the next version."""
    if base is not None:
        check_compatible(base.manifest, settings.model, chunking_parameters(settings), index_dir)
    known = base.manifest.documents if base else {}
    plan = _plan(corpus_dir, known, settings)
    embedder = embedder_for(settings)
    planned = []
    with GuardedLoader(settings.parse_timeout_s, settings.parse_memory_mb, settings.max_file_mb,
                       settings.max_document_tokens) as reader:
        for doc in read_changed(reader, plan, known, progress):
            try:
                planned.append(_Planned(doc, *_chunk_for(embedder, settings, doc)))
            except DocumentTooLong as e:
                _refuse_read(plan, known, doc.doc_id, str(e))
    if base is not None and not planned and not plan.removed:
        plan.stats.chunks = len(base)
        return plan.stats
    connect(address)
    writer = open_writer(settings, index_dir, base, embedder.dimension, resume=True)
    # What a killed build already wrote whole (only backends that keep partial writes say).
    written = getattr(writer, "written_documents", dict)()
    resumable = hasattr(writer, "written_documents")
    try:
        for doc_id in plan.removed:
            writer.remove_document(doc_id)
        todo = []
        for p in planned:
            # Planned documents are new or changed, so a matching hash was written by this build.
            if written.get(p.document.doc_id) == p.document.content_hash:
                continue
            if p.document.doc_id in known or p.document.doc_id in written:
                writer.remove_document(p.document.doc_id)
            todo.append(p)
        if progress and len(todo) < len(planned):
            tqdm.write(f"resuming a killed build: {len(planned) - len(todo)} document(s) "
                       f"already written, {len(todo)} to embed", file=sys.stderr)
        next_id = base.manifest.next_chunk_id if base else 0
        if resumable:
            next_id = max(next_id, writer.max_chunk_id() + 1)
        next_id = _embed_and_write(todo, next_id, writer, model_path, settings, actors, progress,
                                   on_written)
        plan.stats.chunks = len(writer)
        writer.commit({
            "model": settings.model,
            "dimension": embedder.dimension,
            "chunking": chunking_parameters(settings),
            "documents": dict(sorted(plan.hashes.items())),
            "file_stats": plan.file_stats,
            "next_chunk_id": next_id,
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        })
    except BaseException:
        if not resumable:
            writer.abort()
        raise
    return plan.stats


def _embed_and_write(todo, next_id: int, writer, model_path: str, settings: Settings, actors: int,
                     progress: bool, on_written) -> int:
    """Embed every planned chunk on the actor pool; write each document once it is complete."""
    rows = []
    first_row = [0]  # todo[i]'s chunks are rows first_row[i] .. first_row[i + 1] - 1
    for p in todo:
        for chunk in p.chunks:
            text = embedding_text(p.title_for_embedding, chunk.text)
            shift = len(text) - len(chunk.text)  # a chunk comes last in its embedded text
            spans = [(shift + a, shift + b) for a, b in split_sentences(chunk.text)]
            rows.append({"row": len(rows), "text": text, "spans": json.dumps(spans)})
        first_row.append(len(rows))
    vectors: dict[int, np.ndarray] = {}
    sentences: dict[int, np.ndarray | None] = {}
    written = 0

    def write_complete_documents() -> None:
        nonlocal next_id, written
        while written < len(todo) and all(r in vectors for r in range(first_row[written], first_row[written + 1])):
            p, span = todo[written], range(first_row[written], first_row[written + 1])
            ids = list(range(next_id, next_id + len(p.chunks)))
            chunk_vectors = np.array([vectors.pop(r) for r in span], dtype=np.float32)
            writer.add_document(p.document, p.chunks, ids, chunk_vectors,
                                _sentence_vectors(p.chunks, [sentences.pop(r) for r in span]))
            next_id += len(p.chunks)
            written += 1
            if on_written is not None:
                on_written(p.document.doc_id)

    with tqdm(total=len(rows), desc="Embedding on Ray", unit="chunk", disable=not progress) as bar:
        for batch in _embedded_batches(rows, model_path, settings, actors):
            for row, vector, pooled in zip(batch["row"], batch["vector"], batch["sentences"]):
                vectors[int(row)] = vector
                sentences[int(row)] = (np.frombuffer(pooled, dtype=np.float32).reshape(-1, len(vector))
                                       if len(pooled) else None)
            bar.update(len(batch["row"]))
            write_complete_documents()
    write_complete_documents()  # documents without chunks
    return next_id


def _embedded_batches(rows: list[dict], model_path: str, settings: Settings, actors: int):
    """Batches of {row, vector, sentences}, in row order, from the actor pool."""
    if not rows:
        return
    import ray
    from ray.data import ActorPoolStrategy, DataContext

    context = DataContext.get_current()
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False
    dataset = ray.data.from_items(rows).map_batches(
        ChunkEncoder, batch_size=settings.batch_size, batch_format="numpy",
        compute=ActorPoolStrategy(size=actors), num_cpus=1,
        fn_constructor_kwargs={"model_path": model_path, "threads": settings.threads,
                               "batch_size": settings.batch_size, "precision": settings.precision})
    yield from dataset.iter_batches(batch_size=None, batch_format="numpy")
