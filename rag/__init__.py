"""rag: offline question answering over your articles, with quotes you can verify."""

from .api import answer, build_index, retrieve, stream_answer
from .config import Settings, load_settings
from .types import Answer, Citation, IndexStats, Passage, RagError

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
