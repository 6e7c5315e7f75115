"""Typed records passed between pipeline stages: files → Document → Chunk → Passage → Answer."""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Document:
    """One loaded source file.

    ``page_starts`` holds, for PDFs (and slides), the character offset in ``text`` where each page
    begins (page 1 first); it is empty for formats without pages. ``sections`` are the document's
    headings as ``(offset, heading)``. ``source_map`` locates ``text`` in the original file:
    ``(text_offset, source_offset)`` pairs, each starting a run copied verbatim from the file's
    decoded characters (text formats: txt, Markdown, HTML); empty where the page or section is
    the place to show.
    """

    doc_id: str
    title: str
    text: str
    content_hash: str
    page_starts: tuple[int, ...] = ()
    sections: tuple[tuple[int, str], ...] = ()
    source_map: tuple[tuple[int, int], ...] = ()

    def page_at(self, offset: int) -> int | None:
        """1-based page holding character ``offset``, or None for formats without pages."""
        return page_at(self.page_starts, offset)

    def section_at(self, offset: int) -> str | None:
        """The heading of the section holding character ``offset``, if any."""
        index = bisect_right([start for start, _ in self.sections], offset) - 1
        return self.sections[index][1] if index >= 0 else None

    def source_offset(self, offset: int) -> int | None:
        """Where character ``offset`` of ``text`` is in the original file's decoded text, or None
        if this format has no such mapping (or this run was not found in the source)."""
        index = bisect_right([start for start, _ in self.source_map], offset) - 1
        if index < 0:
            return None
        text_start, source_start = self.source_map[index]
        return None if source_start < 0 else source_start + offset - text_start


def page_at(page_starts: tuple[int, ...] | list[int], offset: int) -> int | None:
    if not page_starts:
        return None
    return max(1, bisect_right(page_starts, offset))


@dataclass(frozen=True)
class Chunk:
    """A span of a document's text: ``document.text[start:end] == text``."""

    doc_id: str
    ordinal: int
    text: str
    start: int
    end: int
    pages: tuple[int, ...] = ()


Place = tuple[str, int, int]  # doc_id, start, end: a span of one document's text


@dataclass(frozen=True)
class ChunkRecord:
    """One stored chunk as a reader gets it back, with its document's title and its page."""

    chunk_id: int
    doc_id: str
    title: str
    text: str
    start: int
    end: int
    page: int | None


@dataclass(frozen=True)
class DocumentInfo:
    """An indexed document as listed, without its text."""

    doc_id: str
    title: str
    chunks: int
    pages: int | None
    indexed_at: float


@dataclass(frozen=True)
class Passage:
    """A retrieved chunk, best first in any result list.

    ``score`` orders results in the mode used (fused rank score for hybrid); ``similarity`` is
    always the embedding cosine with the query, comparable across queries, which is what a
    relevance threshold should look at.
    """

    text: str
    doc_id: str
    title: str
    score: float
    start: int
    end: int
    page: int | None = None
    chunk_id: int = -1
    similarity: float = 0.0


@dataclass(frozen=True)
class Citation:
    """A verified quote: ``quote`` is exactly the cited document's ``text[start:end]``."""

    number: int
    quote: str
    doc_id: str
    title: str
    start: int
    end: int
    page: int | None
    score: float


@dataclass(frozen=True)
class Answer:
    text: str
    found: bool
    citations: list[Citation] = field(default_factory=list)
    note: str | None = None
    related: list[Passage] = field(default_factory=list)  # on a refusal: close passages, clearly not an answer
    unverified: str = ""  # a language model's sentences without a verified citation: never in text


@dataclass
class IndexStats:
    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    chunks: int = 0


class RagError(Exception):
    """An error meant for the user: its message says what went wrong and how to fix it."""


class IndexNotFoundError(RagError):
    pass


class IndexMismatchError(RagError):
    pass


class IndexCorruptError(RagError):
    pass


class LoadError(RagError):
    """A file that cannot be indexed; the message is the one-line reason."""
