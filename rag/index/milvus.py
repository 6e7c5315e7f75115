"""The Milvus backend: an index version is a pair of Milvus collections, the switch an alias change.

Per version ``<prefix>_v<stamp>``:

- ``…_chunks``: one row per chunk (id, document, offsets, page, title, text, dense vector) and, on
  servers with BM25 (Milvus >= 2.5, milvus-lite 2.5), its BM25 terms with the server's BM25
  function writing a sparse vector from them. The terms are ``rag.text.index_tokens`` joined by
  spaces and split again by a whitespace analyzer, so the server counts exactly the terms the local
  backend counts; with the same k1 and b its scores are the local ones times (k1 + 1), divided
  out here, so lexical and hybrid results are the local ones (the retriever fuses them the same way).
- ``…_records``: everything else a request reads, keyed rows with a vector field: sentence vectors
  for answers (served per request by key), and documents' texts, document info, the manifest and
  the build's state as text pieces (Milvus strings are at most 65,535 bytes).

The alias ``<prefix>`` names the current chunks collection: a reader resolves it once and then
reads the collections by name, so a build that switches the alias never changes what an open
reader sees. milvus-lite has no aliases: there the pointer is a one-row collection
``<prefix>_current`` (an emulation: one row upserted, atomic per row, not an alias). Collections
are created with Strong consistency, so a writer reads its own writes (resume, counts); before it
switches to a version, the writer waits until Bounded reads see all of it, and readers, which only
read committed versions, read with Bounded consistency (Strong would wait for the server's next
time tick on every call).

Every write is an upsert by key: pymilvus retries a call whose connection dropped (milvus-lite
drops idle ones), and an insert retried after it landed would store its rows twice.

A build copies the current version into the new one (server-side rows, no embedding), then applies
removals and additions: its cost is one pass over the rows plus the embedding of what changed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
import time

import numpy as np

from ..lexical import B, K1
from ..text import index_tokens
from ..types import (ChunkRecord, Document, DocumentInfo, IndexNotFoundError, Place, RagError, SourceMap,
                     page_at)
from .base import DocumentListing, listing_of
from .manifest import DocumentEntry, Manifest

#: Milvus strings hold at most 65,535 bytes; a piece of this many characters always fits.
PIECE_CHARS = 16_000
#: Rows per insert, upsert or query page.
BATCH = 512
#: BM25 parameters of the local backend, so the two rank alike.
BM25_K1, BM25_B = K1, B
#: Milvus returns at most this many hits per search.
MAX_HITS = 16_384
_STRING = 65_535
#: Readers read committed versions only, which the writer made visible to Bounded reads before
#: switching to them (Strong would wait for the server's next time tick, ~200 ms, on every call).
_READ = {"consistency_level": "Bounded"}
#: How long a commit waits for its rows to be visible to Bounded reads (Milvus's window is 5 s).
VISIBLE_WITHIN_S = 60.0


class ServerInfo:
    """What the connected Milvus can do, decided from its version, never assumed."""

    def __init__(self, uri: str, version: str, lite: bool):
        self.uri, self.version, self.lite = uri, version, lite
        found = re.match(r"v?(\d+)\.(\d+)", version)
        major_minor = (int(found[1]), int(found[2])) if found else (0, 0)
        #: Sparse vectors, the BM25 function and hybrid search came in Milvus 2.5. Checked here
        #: because pymilvus >= 2.6 silently creates a broken sparse field against older servers.
        self.bm25 = major_minor >= (2, 5)
        self.aliases = not lite

    def no_bm25_message(self) -> str:
        return (
            f"the Milvus server at {self.uri} is version {self.version}, which has no BM25 "
            "(sparse vectors and the BM25 function came in Milvus 2.5): keyword and hybrid search "
            "need Milvus >= 2.5. Search in dense mode (RAG_MODE=dense, or --mode dense) or upgrade "
            "the server"
        )


_clients: dict[str, tuple[object, ServerInfo]] = {}
_clients_lock = threading.Lock()


def connect(uri: str):
    """The process's client for ``uri`` and what its server can do (one connection per URI).

    ``uri``: a milvus-lite file (``…/name.db``), ``http://host:19530``, or ``unix:/path``.
    """
    with _clients_lock:
        if uri not in _clients:
            try:
                from pymilvus import MilvusClient
            except ImportError as e:
                raise RagError(
                    "the Milvus backend needs pymilvus: pip install 'rag[milvus]'") from e
            # A library call stays quiet: pymilvus logs warnings (and every failed call, which
            # rag reports itself) on its own logger, configured when it is imported.
            logging.getLogger("pymilvus").setLevel(logging.CRITICAL)
            lite = uri.endswith(".db")
            if lite:
                os.makedirs(os.path.dirname(os.path.abspath(uri)), exist_ok=True)
                os.environ.setdefault("GLOG_log_dir", os.path.dirname(os.path.abspath(uri)))
            # pymilvus gives a starting milvus-lite one short wait for its socket, which a busy
            # machine can miss: a few tries before giving up.
            for attempt in range(3 if lite else 1):
                try:
                    client = MilvusClient(uri, timeout=30)
                    # milvus-lite answers no version call; its wheel 2.5.1 is the Milvus 2.5 core.
                    version = "2.5-lite" if lite else client.get_server_version()
                    break
                except Exception as e:  # pymilvus raises MilvusException, gRPC errors, OSError…
                    if attempt == (2 if lite else 0):
                        raise RagError(f"cannot connect to Milvus at {uri}: {e}") from e
                    time.sleep(1)
            _clients[uri] = (client, ServerInfo(uri, version, lite))
        return _clients[uri]


def _doc_key(doc_id: str) -> str:
    """A document's key in filters: hex, so no document name needs escaping in an expression."""
    return hashlib.sha256(doc_id.encode()).hexdigest()[:32]


def _chunks_name(version: str) -> str:
    return f"{version}_chunks"


def _records_name(version: str) -> str:
    return f"{version}_records"


def _version_of(chunks_collection: str) -> str:
    return chunks_collection.removesuffix("_chunks")


def _pointer_name(prefix: str) -> str:
    return f"{prefix}_current"


def current_version(uri: str, prefix: str) -> str | None:
    """The current version's name (the alias target, or the lite pointer), None without one."""
    client, server = connect(uri)
    if server.aliases:
        if prefix not in client.list_aliases().get("aliases", []):
            return None
        return _version_of(client.describe_alias(prefix)["collection_name"])
    pointer = _pointer_name(prefix)
    if not client.has_collection(pointer):
        return None
    rows = client.query(pointer, ids=[0], output_fields=["version"])
    return rows[0]["version"] if rows else None


def _pieces(text: str) -> list[str]:
    return [text[i : i + PIECE_CHARS] for i in range(0, len(text), PIECE_CHARS)] or [""]


def _typed_manifest(stored: dict) -> Manifest:
    """The manifest a build committed (the indexer's dict: documents as doc_id -> content hash,
    file_stats as doc_id -> [size, mtime_ns]) as the typed record every backend's reader gives,
    so an unchanged file is recognised by its size and mtime here too. Milvus has no segments."""
    stats = stored.get("file_stats", {})
    return Manifest(
        model=stored["model"], dimension=int(stored["dimension"]), chunking=stored["chunking"],
        next_chunk_id=int(stored["next_chunk_id"]), built_at=stored["built_at"],
        documents={doc_id: DocumentEntry(content_hash, "", *stats.get(doc_id, (-1, -1)))
                   for doc_id, content_hash in stored["documents"].items()})


class MilvusReader:
    """The Milvus :class:`~rag.index.base.IndexReader`: one version's collections, by name."""

    def __init__(self, uri: str, prefix: str, version: str):
        self._client, self.server = connect(uri)
        self.version = version
        self._chunks, self._records = _chunks_name(version), _records_name(version)
        for name in (self._chunks, self._records):
            if not self._client.has_collection(name):
                raise RagError(f"Milvus at {uri} has no collection {name} (version {version} of "
                               f"{prefix!r} was removed); reopen the index")
            self._client.load_collection(name)  # a restarted server may hold it released
        fields = {f["name"] for f in self._client.describe_collection(self._chunks)["fields"]}
        self.has_bm25 = "sparse" in fields
        self.manifest = _typed_manifest(json.loads(self._blob("manifest", "")))
        self._count = json.loads(self._blob("stats", ""))["chunks"]
        self._dimension = self.manifest.dimension

    def _blob(self, kind: str, doc_key: str) -> str:
        rows = self._client.query(
            self._records, filter=f'kind == "{kind}" and doc_key == "{doc_key}"',
            output_fields=["piece", "body"], limit=MAX_HITS, **_READ)
        if not rows:
            raise KeyError((kind, doc_key))
        return "".join(r["body"] for r in sorted(rows, key=lambda r: r["piece"]))

    def __len__(self) -> int:
        return self._count

    def close(self) -> None:
        """Nothing to release: the connection is the process's, shared by every version."""

    def search_dense(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        k = min(k, self._count, MAX_HITS)
        if k < 1:
            return []
        hits = self._client.search(
            self._chunks, data=[np.asarray(vector, dtype=np.float32).tolist()], anns_field="dense",
            limit=k, search_params={"metric_type": "IP"}, **_READ)[0]
        return [(int(h["id"]), float(h["distance"])) for h in hits]

    def vectors(self, chunk_ids: list[int]) -> dict[int, np.ndarray]:
        if not chunk_ids:
            return {}
        rows = self._client.get(self._chunks, ids=list(chunk_ids), output_fields=["dense"], **_READ)
        stored = {r["chunk_id"]: np.asarray(r["dense"], dtype=np.float32) for r in rows}
        return {i: stored[i] for i in chunk_ids if i in stored}

    def similarities(self, vector: np.ndarray, chunk_ids: list[int]) -> dict[int, float]:
        return {i: float(v @ vector) for i, v in self.vectors(chunk_ids).items()}

    def lexical_scores(self, query: str) -> "MilvusLexicalScores":
        if not self.has_bm25:
            raise RagError(self.server.no_bm25_message())
        return MilvusLexicalScores(self._client, self._chunks, " ".join(index_tokens([query])[0]))

    def chunks(self, chunk_ids: list[int]) -> dict[int, ChunkRecord]:
        if not chunk_ids:
            return {}
        rows = self._client.get(
            self._chunks, ids=list(chunk_ids),
            output_fields=["doc_id", "title", "text", "start_offset", "end_offset", "page"], **_READ)
        return {
            r["chunk_id"]: ChunkRecord(r["chunk_id"], r["doc_id"], r["title"], r["text"],
                                       r["start_offset"], r["end_offset"],
                                       None if r["page"] < 0 else r["page"])
            for r in rows
        }

    def sentence_vectors(self, places: list[Place]) -> dict[Place, np.ndarray]:
        keys = {f"sentence:{_doc_key(d)}:{s}:{e}": (d, s, e) for d, s, e in places}
        if not keys:
            return {}
        rows = self._client.get(self._records, ids=list(keys), output_fields=["vector"], **_READ)
        return {keys[r["key"]]: np.asarray(r["vector"], dtype=np.float32) for r in rows}

    def document(self, doc_id: str) -> Document:
        key = _doc_key(doc_id)
        info = json.loads(self._blob("docinfo", key))  # KeyError if not in this version
        return Document(doc_id, info["title"], self._blob("text", key), info["content_hash"],
                        tuple(info["page_starts"]), source_map=SourceMap.from_json(info.get("source_map")))

    def documents(self) -> list[DocumentInfo]:
        pieces: dict[str, list[tuple[int, str]]] = {}
        for row in _rows(self._client, self._records, 'kind == "docinfo"', ["doc_key", "piece", "body"]):
            pieces.setdefault(row["doc_key"], []).append((row["piece"], row["body"]))
        infos = [json.loads("".join(body for _, body in sorted(p))) for p in pieces.values()]
        return sorted(
            (DocumentInfo(i["doc_id"], i["title"], i["chunks"], len(i["page_starts"]) or None,
                          i["indexed_at"]) for i in infos),
            key=lambda d: d.doc_id)

    def document_page(self, search: str, offset: int, limit: int) -> DocumentListing:
        return listing_of(self.documents(), search, offset, limit)


class MilvusLexicalScores:
    """One query's BM25 scores, asked of the server's BM25 function on demand."""

    def __init__(self, client, collection: str, terms: str):
        self._client, self._collection, self._terms = client, collection, terms

    def _search(self, limit: int, filter: str = "") -> list[tuple[int, float]]:
        if not self._terms or limit < 1:
            return []
        hits = self._client.search(
            self._collection, data=[self._terms], anns_field="sparse", limit=min(limit, MAX_HITS),
            filter=filter, search_params={"metric_type": "BM25"}, **_READ)[0]
        # Milvus's BM25 keeps the (k1 + 1) factor that bm25s's Lucene variant drops.
        return [(int(h["id"]), float(h["distance"]) / (BM25_K1 + 1)) for h in hits if h["distance"] > 0]

    def top(self, k: int) -> list[tuple[int, float]]:
        return self._search(k)

    def of(self, chunk_ids: list[int]) -> list[float]:
        found = dict(self._search(len(chunk_ids), f"chunk_id in {[int(i) for i in chunk_ids]}"))
        return [found.get(i, 0.0) for i in chunk_ids]


def _rows(client, collection: str, filter: str, fields: list[str]):
    """Every row matching ``filter``, page by page (a plain query stops at 16,384)."""
    iterator = client.query_iterator(collection, batch_size=BATCH, filter=filter, output_fields=fields)
    try:
        while batch := iterator.next():
            yield from batch
    finally:
        iterator.close()


class MilvusWriter:
    """The Milvus :class:`~rag.index.base.IndexWriter`: fills a new version's collections.

    The new version starts as a copy of the current one. Nothing is visible to readers until
    ``commit`` moves the alias. With ``resume``, a build that died leaves its collections behind
    and the next build on the same base carries on from them: :meth:`written_documents` says what
    is there already.
    """

    def __init__(self, uri: str, prefix: str, base: MilvusReader | None, dimension: int,
                 *, resume: bool = False):
        self._client, self.server = connect(uri)
        self.uri, self.prefix, self.dimension = uri, prefix, dimension
        self._base_version = base.version if base is not None else ""
        self.version = (self._unfinished_build() if resume else None) or self._create()
        self._chunks, self._records = _chunks_name(self.version), _records_name(self.version)
        state = json.loads(self._blob_or("build", "{}"))
        if base is not None and not state.get("copied"):
            self._copy_from(base)
            self._put_blob("build", "", json.dumps({"base": self._base_version, "copied": True}))

    # ---------------------------------------------------------------- collections

    def _versions(self) -> list[str]:
        return sorted({_version_of(n) for n in self._client.list_collections()
                       if n.startswith(f"{self.prefix}_v") and n.endswith("_chunks")})

    def _unfinished_build(self) -> str | None:
        """A version a killed build on the same base left behind, if any."""
        current = current_version(self.uri, self.prefix)
        for version in reversed(self._versions()):
            if version == current or not self._client.has_collection(_records_name(version)):
                continue
            rows = self._client.query(_records_name(version), ids=["build::0"], output_fields=["body"])
            if rows and json.loads(rows[0]["body"]).get("base") == self._base_version:
                return version
        return None

    def _create(self) -> str:
        from pymilvus import DataType, Function, FunctionType

        version = f"{self.prefix}_v{time.time_ns()}"
        client = self._client
        chunks = client.create_schema(auto_id=False)
        chunks.add_field("chunk_id", DataType.INT64, is_primary=True)
        chunks.add_field("doc_key", DataType.VARCHAR, max_length=64)
        chunks.add_field("doc_id", DataType.VARCHAR, max_length=_STRING)
        chunks.add_field("title", DataType.VARCHAR, max_length=_STRING)
        chunks.add_field("text", DataType.VARCHAR, max_length=_STRING)
        for name in ("ordinal", "start_offset", "end_offset", "page"):
            chunks.add_field(name, DataType.INT64)
        chunks.add_field("dense", DataType.FLOAT_VECTOR, dim=self.dimension)
        chunk_indexes = client.prepare_index_params()
        chunk_indexes.add_index("dense", index_type="FLAT", metric_type="IP")
        if self.server.bm25:
            chunks.add_field("terms", DataType.VARCHAR, max_length=_STRING, enable_analyzer=True,
                             analyzer_params={"tokenizer": "whitespace"})
            chunks.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
            chunks.add_function(Function(
                name="bm25", function_type=FunctionType.BM25, input_field_names=["terms"],
                output_field_names=["sparse"]))
            chunk_indexes.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25",
                                    params={"bm25_k1": BM25_K1, "bm25_b": BM25_B})
        records = client.create_schema(auto_id=False)
        records.add_field("key", DataType.VARCHAR, is_primary=True, max_length=256)
        records.add_field("kind", DataType.VARCHAR, max_length=16)
        records.add_field("doc_key", DataType.VARCHAR, max_length=64)
        records.add_field("piece", DataType.INT64)
        records.add_field("body", DataType.VARCHAR, max_length=_STRING)
        records.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dimension)
        record_indexes = client.prepare_index_params()
        record_indexes.add_index("vector", index_type="FLAT", metric_type="IP")
        client.create_collection(_records_name(version), schema=records, index_params=record_indexes,
                                 consistency_level="Strong")
        client.create_collection(_chunks_name(version), schema=chunks, index_params=chunk_indexes,
                                 consistency_level="Strong")
        self._records = _records_name(version)
        self._put_blob("build", "", json.dumps({"base": self._base_version, "copied": False}))
        return version

    def _copy_from(self, base: MilvusReader) -> None:
        """The base version's rows, upserted (so a resumed copy does not duplicate)."""
        chunk_fields = ["chunk_id", "doc_key", "doc_id", "title", "text", "ordinal", "start_offset",
                        "end_offset", "page", "dense"] + (["terms"] if base.has_bm25 and self.server.bm25 else [])
        self._copy(base._chunks, self._chunks, "chunk_id >= 0", chunk_fields)
        self._copy(base._records, self._records, 'kind in ["sentence", "text", "docinfo"]',
                   ["key", "kind", "doc_key", "piece", "body", "vector"])

    def _copy(self, source: str, target: str, filter: str, fields: list[str]) -> None:
        batch = []
        for row in _rows(self._client, source, filter, fields):
            batch.append({f: row[f] for f in fields})
            if len(batch) == BATCH:
                self._client.upsert(target, batch)
                batch = []
        if batch:
            self._client.upsert(target, batch)

    # ---------------------------------------------------------------- blobs

    def _blob_rows(self, kind: str, doc_key: str, text: str) -> list[dict]:
        zero = [0.0] * self.dimension
        return [{"key": f"{kind}:{doc_key}:{n}", "kind": kind, "doc_key": doc_key, "piece": n,
                 "body": piece, "vector": zero} for n, piece in enumerate(_pieces(text))]

    def _put_blob(self, kind: str, doc_key: str, text: str) -> None:
        self._client.delete(self._records, filter=f'kind == "{kind}" and doc_key == "{doc_key}"')
        self._client.upsert(self._records, self._blob_rows(kind, doc_key, text))

    def _blob_or(self, kind: str, default: str) -> str:
        rows = self._client.query(self._records, filter=f'kind == "{kind}" and doc_key == ""',
                                  output_fields=["piece", "body"], limit=MAX_HITS)
        return "".join(r["body"] for r in sorted(rows, key=lambda r: r["piece"])) or default

    # ---------------------------------------------------------------- IndexWriter

    def remove_document(self, doc_id: str) -> None:
        key = _doc_key(doc_id)
        # The document's info goes first: it is what marks the document as written (resume).
        self._client.delete(self._records, filter=f'kind == "docinfo" and doc_key == "{key}"')
        self._client.delete(self._chunks, filter=f'doc_key == "{key}"')
        self._client.delete(self._records, filter=f'doc_key == "{key}"')

    def add_document(self, doc: Document, chunks: list, chunk_ids: list[int], vectors: np.ndarray,
                     sentences: dict[tuple[int, int], np.ndarray] | None = None) -> None:
        """Chunks, then sentence vectors, then the text, and the document's info last: a document
        with its info row is whole (what a resumed build trusts)."""
        key = _doc_key(doc.doc_id)
        rows = []
        for chunk_id, chunk, vector in zip(chunk_ids, chunks, vectors):
            row = {"chunk_id": int(chunk_id), "doc_key": key, "doc_id": doc.doc_id, "title": doc.title,
                   "text": chunk.text, "ordinal": chunk.ordinal, "start_offset": chunk.start,
                   "end_offset": chunk.end, "page": page_at(doc.page_starts, chunk.start) or -1,
                   "dense": np.asarray(vector, dtype=np.float32).tolist()}
            if self.server.bm25:
                row["terms"] = " ".join(index_tokens([f"{doc.title}\n{chunk.text}"])[0])
            rows.append(row)
        for first in range(0, len(rows), BATCH):
            self._client.upsert(self._chunks, rows[first : first + BATCH])
        sentence_rows = [
            {"key": f"sentence:{key}:{start}:{end}", "kind": "sentence", "doc_key": key, "piece": 0,
             "body": "", "vector": np.asarray(vector, dtype=np.float32).tolist()}
            for (start, end), vector in (sentences or {}).items()]
        text_rows = self._blob_rows("text", key, doc.text)
        for batch in (sentence_rows, text_rows):
            for first in range(0, len(batch), BATCH):
                self._client.upsert(self._records, batch[first : first + BATCH])
        info = {"doc_id": doc.doc_id, "title": doc.title, "content_hash": doc.content_hash,
                "page_starts": list(doc.page_starts), "chunks": len(chunks), "indexed_at": time.time(),
                "source_map": doc.source_map.to_json()}
        self._client.upsert(self._records, self._blob_rows("docinfo", key, json.dumps(info)))

    def written_documents(self) -> dict[str, str]:
        """Documents already whole in this version, doc_id -> content hash."""
        pieces: dict[str, list[tuple[int, str]]] = {}
        for row in _rows(self._client, self._records, 'kind == "docinfo"', ["doc_key", "piece", "body"]):
            pieces.setdefault(row["doc_key"], []).append((row["piece"], row["body"]))
        infos = [json.loads("".join(body for _, body in sorted(p))) for p in pieces.values()]
        return {i["doc_id"]: i["content_hash"] for i in infos}

    def max_chunk_id(self) -> int:
        """The highest chunk id written so far, -1 if none."""
        highest = -1
        for row in _rows(self._client, self._chunks, "chunk_id >= 0", ["chunk_id"]):
            highest = max(highest, row["chunk_id"])
        return highest

    def __len__(self) -> int:
        return self._client.query(self._chunks, filter="", output_fields=["count(*)"])[0]["count(*)"]

    def commit(self, manifest: dict) -> None:
        self._put_blob("manifest", "", json.dumps(manifest, sort_keys=True))
        self._client.delete(self._records, filter='kind == "build"')
        stats = json.dumps({"chunks": len(self), "written": time.time_ns()})
        self._put_blob("stats", "", stats)  # the last write
        for name in (self._chunks, self._records):
            self._client.flush(name)
        self._wait_until_visible(stats)
        previous = current_version(self.uri, self.prefix)
        self._point_to(self.version)
        for version in self._versions():
            if version not in (self.version, previous):
                self._drop(version)

    def _wait_until_visible(self, stats: str) -> None:
        """Wait until a Bounded read sees the stats row, this build's last write. Bounded reads see
        every write older than a moving bound, so from then on they see the whole version,
        deletes included (a count could match while an update is still half visible)."""
        deadline = time.monotonic() + VISIBLE_WITHIN_S
        while True:
            rows = self._client.query(self._records, ids=["stats::0"], output_fields=["body"], **_READ)
            if rows and rows[0]["body"] == stats:
                return
            if time.monotonic() > deadline:
                raise RagError(f"Milvus at {self.uri} did not make version {self.version} visible "
                               f"within {VISIBLE_WITHIN_S:.0f} s; the current version is unchanged")
            time.sleep(0.2)

    def _point_to(self, version: str) -> None:
        client, chunks = self._client, _chunks_name(version)
        if self.server.aliases:
            if self.prefix in client.list_aliases().get("aliases", []):
                client.alter_alias(chunks, self.prefix)
            else:
                client.create_alias(chunks, self.prefix)
            return
        from pymilvus import DataType

        pointer = _pointer_name(self.prefix)
        if not client.has_collection(pointer):
            schema = client.create_schema(auto_id=False)
            schema.add_field("id", DataType.INT64, is_primary=True)
            schema.add_field("version", DataType.VARCHAR, max_length=256)
            schema.add_field("placeholder", DataType.FLOAT_VECTOR, dim=2)  # Milvus needs a vector
            indexes = client.prepare_index_params()
            indexes.add_index("placeholder", index_type="FLAT", metric_type="L2")
            client.create_collection(pointer, schema=schema, index_params=indexes,
                                     consistency_level="Strong")
        client.upsert(pointer, [{"id": 0, "version": version, "placeholder": [0.0, 0.0]}])

    def _drop(self, version: str) -> None:
        for name in (_chunks_name(version), _records_name(version)):
            if self._client.has_collection(name):
                self._client.drop_collection(name)

    def abort(self) -> None:
        self._drop(self.version)


def open_reader(uri: str, prefix: str) -> MilvusReader:
    version = current_version(uri, prefix)
    if version is None:
        raise IndexNotFoundError(
            f"no index {prefix!r} in Milvus at {uri}: build one with `rag index` "
            "(RAG_INDEX_BACKEND=milvus)")
    return MilvusReader(uri, prefix, version)
