"""The index on disk: FAISS vectors + SQLite texts and metadata + BM25 + a manifest, versioned.

Layout of ``index_dir``::

    CURRENT          name of the active version folder (swapped atomically)
    v-<stamp>/       manifest.json, vectors.faiss, meta.sqlite, lexical/
    .lock            held by the one build that may write

A build writes a whole new version folder beside the active one and only then points CURRENT
at it, so a crash at any moment leaves the previous version whole and loadable.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import threading
import time
from pathlib import Path

import faiss
import numpy as np

from .lexical import LexicalIndex
from .types import (
    ChunkRecord,
    Document,
    DocumentInfo,
    IndexCorruptError,
    IndexMismatchError,
    IndexNotFoundError,
    Place,
    page_at,
)

FORMAT_VERSION = 1
CURRENT_FILE = "CURRENT"
MANIFEST_FILE = "manifest.json"
VECTORS_FILE = "vectors.faiss"
META_FILE = "meta.sqlite"
LEXICAL_DIR = "lexical"
_CHECKED_FILES = (VECTORS_FILE, META_FILE)

_SCHEMA = """
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
    doc_id TEXT NOT NULL REFERENCES documents(doc_id),
    ordinal INTEGER NOT NULL,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX chunks_by_doc ON chunks(doc_id);
"""
# Sentence vectors for answering (float16), pooled from the chunk's forward pass at build time.
# Indexes built before they existed lack the table; answering then embeds sentences itself.
_SENTENCES_SCHEMA = """
CREATE TABLE IF NOT EXISTS sentences (
    doc_id TEXT NOT NULL,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (doc_id, start, end)
) WITHOUT ROWID;
"""

_FIX = "rebuild it with `rag index --full`"


def read_current(index_dir: Path) -> str | None:
    try:
        name = (index_dir / CURRENT_FILE).read_text().strip()
    except FileNotFoundError:
        return None
    return name or None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_compatible(manifest: dict, model: str, chunking: dict, where: Path) -> None:
    """Refuse an index whose vectors or chunks a different configuration would not reproduce."""
    if manifest["model"] != model:
        raise IndexMismatchError(
            f"the index in {where} was built with model {manifest['model']!r}, but the configured "
            f"model is {model!r}; {_FIX} (or set RAG_MODEL back)"
        )
    if manifest["chunking"] != chunking:
        raise IndexMismatchError(
            f"the index in {where} was built with chunking {manifest['chunking']}, but the "
            f"configuration asks for {chunking}; {_FIX}"
        )


class Snapshot:
    """The local backend's :class:`~rag.index.base.IndexReader`: one complete version folder,
    read-only, safe to share between threads."""

    def __init__(self, version_dir: Path):
        self.path = version_dir
        self.manifest = self._read_manifest()
        self._check_files()
        try:
            self._vectors = faiss.read_index(str(version_dir / VECTORS_FILE))
        except RuntimeError as e:
            raise IndexCorruptError(f"{version_dir / VECTORS_FILE} cannot be read ({e}); {_FIX}") from e
        self._db = sqlite3.connect(
            f"file:{version_dir / META_FILE}?mode=ro", uri=True, check_same_thread=False
        )
        self._db_lock = threading.Lock()
        try:
            chunk_count = self._query("SELECT COUNT(*) FROM chunks")[0][0]
        except sqlite3.DatabaseError as e:
            raise IndexCorruptError(f"{version_dir / META_FILE} is damaged ({e}); {_FIX}") from e
        if chunk_count != self._vectors.ntotal or self._vectors.d != self.manifest["dimension"]:
            raise IndexCorruptError(
                f"{version_dir} is inconsistent: {self._vectors.ntotal} vectors of dimension "
                f"{self._vectors.d} for {chunk_count} chunks; {_FIX}"
            )
        self._has_sentences = bool(
            self._query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sentences'"))
        try:
            self.lexical = LexicalIndex.load(version_dir / LEXICAL_DIR)
        except (OSError, ValueError) as e:
            raise IndexCorruptError(f"{version_dir / LEXICAL_DIR} cannot be read ({e}); {_FIX}") from e

    def _read_manifest(self) -> dict:
        path = self.path / MANIFEST_FILE
        try:
            manifest = json.loads(path.read_text())
        except FileNotFoundError as e:
            raise IndexCorruptError(f"{path} is missing; {_FIX}") from e
        except (ValueError, OSError) as e:
            raise IndexCorruptError(f"{path} cannot be read ({e}); {_FIX}") from e
        version = manifest.get("format_version") if isinstance(manifest, dict) else None
        if not isinstance(version, int):
            raise IndexCorruptError(f"{path} is not an index manifest; {_FIX}")
        if version > FORMAT_VERSION:
            raise IndexCorruptError(
                f"{path} was written by a newer version of rag (format {version}, this one reads "
                f"{FORMAT_VERSION}); upgrade rag or {_FIX}"
            )
        return manifest

    def _check_files(self) -> None:
        for name, expected in self.manifest["files"].items():
            path = self.path / name
            if not path.exists():
                raise IndexCorruptError(f"{path} is missing; {_FIX}")
            if path.stat().st_size != expected["size"] or file_sha256(path) != expected["sha256"]:
                raise IndexCorruptError(f"{path} was modified or truncated after the build; {_FIX}")

    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._db_lock:
            return self._db.execute(sql, params).fetchall()

    def __len__(self) -> int:
        return self._vectors.ntotal

    def close(self) -> None:
        self._db.close()

    def search_dense(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        """(chunk_id, cosine similarity) best first."""
        k = min(k, self._vectors.ntotal)
        if k < 1:
            return []
        scores, ids = self._vectors.search(vector.reshape(1, -1), k)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]

    def similarities(self, vector: np.ndarray, chunk_ids: list[int]) -> dict[int, float]:
        """Cosine similarity of ``vector`` to each given chunk (vectors are normalised)."""
        if not chunk_ids:
            return {}
        stored = np.vstack([self._vectors.reconstruct(int(i)) for i in chunk_ids])
        return dict(zip(chunk_ids, (stored @ vector).tolist()))

    def sentence_vectors(self, places: list[Place]) -> dict[Place, np.ndarray]:
        """The stored vector of each sentence place that has one."""
        if not self._has_sentences:
            return {}
        found = {}
        with self._db_lock:
            for place in places:
                row = self._db.execute(
                    "SELECT vector FROM sentences WHERE doc_id = ? AND start = ? AND end = ?", place
                ).fetchone()
                if row is not None and len(row[0]) == 2 * self._vectors.d:
                    found[place] = np.frombuffer(row[0], dtype=np.float16).astype(np.float32)
        return found

    def lexical_scores(self, query: str):
        """BM25 scores of ``query`` against this version's chunks."""
        return self.lexical.scores(query)

    def chunks(self, chunk_ids: list[int]) -> dict[int, ChunkRecord]:
        if not chunk_ids:
            return {}
        marks = ",".join("?" * len(chunk_ids))
        rows = self._query(
            "SELECT c.chunk_id, c.doc_id, d.title, c.text, c.start, c.end, d.page_starts "
            f"FROM chunks c JOIN documents d USING (doc_id) WHERE c.chunk_id IN ({marks})",
            tuple(chunk_ids),
        )
        return {
            row[0]: ChunkRecord(row[0], row[1], row[2], row[3], row[4], row[5],
                                page_at(json.loads(row[6]), row[4]))
            for row in rows
        }

    def document(self, doc_id: str) -> Document:
        rows = self._query(
            "SELECT doc_id, title, text, content_hash, page_starts FROM documents WHERE doc_id = ?",
            (doc_id,),
        )
        if not rows:
            raise KeyError(doc_id)
        doc_id, title, text, content_hash, page_starts = rows[0]
        return Document(doc_id, title, text, content_hash, tuple(json.loads(page_starts)))

    def documents(self) -> list[DocumentInfo]:
        rows = self._query(
            "SELECT doc_id, title, chunks, page_starts, indexed_at FROM documents ORDER BY doc_id"
        )
        return [
            DocumentInfo(doc_id, title, chunks, len(json.loads(starts)) or None, indexed_at)
            for doc_id, title, chunks, starts, indexed_at in rows
        ]


def open_snapshot(index_dir: Path) -> Snapshot:
    name = read_current(index_dir)
    if name is None:
        raise IndexNotFoundError(
            f"no index in {index_dir}: build one with `rag index --corpus DIR --index {index_dir}` "
            "(or rag.build_index in Python)"
        )
    version_dir = index_dir / name
    if not version_dir.is_dir():
        raise IndexCorruptError(f"{index_dir / CURRENT_FILE} names {name}, which is missing; {_FIX}")
    return Snapshot(version_dir)


class VersionWriter:
    """The local backend's :class:`~rag.index.base.IndexWriter`: writes the next version folder
    beside the active one; ``commit`` makes it active."""

    def __init__(self, index_dir: Path, base: Snapshot | None, dimension: int):
        self.index_dir = index_dir
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        self.path = index_dir / f"v-{stamp}-{os.getpid()}-{time.monotonic_ns() % 10**9}"
        self.path.mkdir(parents=True)
        db_path = self.path / META_FILE
        self.db = sqlite3.connect(db_path)
        if base is not None:
            with sqlite3.connect(f"file:{base.path / META_FILE}?mode=ro", uri=True) as source:
                source.backup(self.db)
            self.vectors = faiss.read_index(str(base.path / VECTORS_FILE))
        else:
            self.db.executescript(_SCHEMA)
            self.vectors = faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
        self.db.executescript(_SENTENCES_SCHEMA)

    def remove_document(self, doc_id: str) -> None:
        ids = [r[0] for r in self.db.execute("SELECT chunk_id FROM chunks WHERE doc_id = ?", (doc_id,))]
        if ids:
            self.vectors.remove_ids(np.asarray(ids, dtype=np.int64))
        self.db.execute("DELETE FROM chunks WHERE doc_id = ?", (doc_id,))
        self.db.execute("DELETE FROM sentences WHERE doc_id = ?", (doc_id,))
        self.db.execute("DELETE FROM documents WHERE doc_id = ?", (doc_id,))

    def add_document(
        self, doc: Document, chunks: list, chunk_ids: list[int], vectors: np.ndarray,
        sentences: dict[tuple[int, int], np.ndarray] | None = None,
    ) -> None:
        """``sentences``: vector by (start, end) in the document, for answering."""
        self.db.execute(
            "INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?, ?)",
            (doc.doc_id, doc.title, doc.text, doc.content_hash, json.dumps(list(doc.page_starts)),
             len(chunks), time.time()),
        )
        self.db.executemany(
            "INSERT INTO chunks VALUES (?, ?, ?, ?, ?, ?)",
            [(cid, c.doc_id, c.ordinal, c.start, c.end, c.text) for cid, c in zip(chunk_ids, chunks)],
        )
        if len(chunk_ids):
            self.vectors.add_with_ids(vectors, np.asarray(chunk_ids, dtype=np.int64))
        self.db.executemany(
            "INSERT INTO sentences VALUES (?, ?, ?, ?)",
            [(doc.doc_id, start, end, vector.astype(np.float16).tobytes())
             for (start, end), vector in (sentences or {}).items()],
        )

    def __len__(self) -> int:
        return self.vectors.ntotal

    def lexical_rows(self) -> tuple[list[int], list[str]]:
        """Every chunk as BM25 sees it: the document title counts as part of each chunk."""
        rows = self.db.execute(
            "SELECT c.chunk_id, d.title, c.text FROM chunks c JOIN documents d USING (doc_id) "
            "ORDER BY c.chunk_id"
        ).fetchall()
        return [r[0] for r in rows], [f"{r[1]}\n{r[2]}" for r in rows]

    def commit(self, manifest: dict) -> None:
        lexical = LexicalIndex.build(*self.lexical_rows())
        self.db.commit()
        self.db.close()
        faiss.write_index(self.vectors, str(self.path / VECTORS_FILE))
        lexical.save(self.path / LEXICAL_DIR)
        manifest = dict(manifest, format_version=FORMAT_VERSION, files={
            name: {"size": (self.path / name).stat().st_size, "sha256": file_sha256(self.path / name)}
            for name in _CHECKED_FILES
        })
        _write_durably(self.path / MANIFEST_FILE, json.dumps(manifest, indent=1, sort_keys=True))
        for name in _CHECKED_FILES:
            _fsync_file(self.path / name)
        _fsync_dir(self.path)
        previous = read_current(self.index_dir)
        _write_durably(self.index_dir / CURRENT_FILE, self.path.name)
        _remove_old_versions(self.index_dir, keep={self.path.name, previous})

    def abort(self) -> None:
        try:
            self.db.close()
        finally:
            shutil.rmtree(self.path, ignore_errors=True)


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_durably(path: Path, text: str) -> None:
    """Replace ``path`` atomically: readers see the old content or the new, never a half."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _remove_old_versions(index_dir: Path, keep: set) -> None:
    """Drop all but the active version and its predecessor (readers may still be opening it),
    including folders left by builds that died."""
    for path in index_dir.glob("v-*"):
        if path.is_dir() and path.name not in keep:
            shutil.rmtree(path, ignore_errors=True)
    for tmp in index_dir.glob(f".{CURRENT_FILE}.*.tmp"):
        tmp.unlink(missing_ok=True)
