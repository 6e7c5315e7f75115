"""The one surface that the CLI, the web app and Python users call."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from .config import Settings, load_settings
from .indexer import build_index as _build_index
from .retriever import get_retriever
from .types import Answer, IndexStats, Passage


def build_index(
    corpus_dir: str | Path = "corpus",
    index_dir: str | Path = "index",
    *,
    full: bool = False,
    settings: Settings | None = None,
    progress: bool = False,
) -> IndexStats:
    """Index the corpus folder: only new and changed files are embedded unless ``full``."""
    return _build_index(corpus_dir, index_dir, full=full, settings=settings, progress=progress)


def retrieve(
    query: str,
    k: int = 5,
    *,
    index_dir: str | Path = "index",
    mode: str | None = None,
    settings: Settings | None = None,
) -> list[Passage]:
    """The ``k`` best passages for ``query``, best first (mode: hybrid, dense or lexical)."""
    return get_retriever(index_dir, settings).search(query, k, mode=mode)


def answer(
    question: str,
    *,
    k: int | None = None,
    index_dir: str | Path = "index",
    history: list[tuple[str, str]] | None = None,
    settings: Settings | None = None,
) -> Answer:
    """An answer quoting the corpus verbatim, or an honest "not in the corpus"."""
    settings = settings or load_settings()
    retriever = get_retriever(index_dir, settings)
    from . import answerer  # TEMP-LAZY

    return answerer.answer(question, retriever, settings, k=k, history=history)


def stream_answer(
    question: str,
    *,
    k: int | None = None,
    index_dir: str | Path = "index",
    history: list[tuple[str, str]] | None = None,
    settings: Settings | None = None,
) -> Iterator[str | Answer]:
    """Text deltas as they are produced, then the verified :class:`Answer` last."""
    settings = settings or load_settings()
    retriever = get_retriever(index_dir, settings)
    from . import answerer  # TEMP-LAZY

    return answerer.stream_answer(question, retriever, settings, k=k, history=history)
