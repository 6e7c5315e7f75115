"""rag: offline question answering over your articles, with quotes you can verify."""

from .config import Settings, load_settings
from .types import Answer, Citation, IndexStats, Passage, RagError

# The API pulls in torch, FAISS and BM25 (seconds): loaded on first use, so `rag --help` and the
# file-parsing child processes, which import only what they need, start in milliseconds.
_LAZY = {"answer", "build_index", "retrieve", "stream_answer"}

__all__ = [
    "Answer",
    "Citation",
    "IndexStats",
    "Passage",
    "RagError",
    "Settings",
    "answer",
    "build_index",
    "load_settings",
    "retrieve",
    "stream_answer",
]


def __getattr__(name: str):
    if name in _LAZY:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'rag' has no attribute {name!r}")
