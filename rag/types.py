"""Typed records passed between pipeline stages: files → Document → Chunk → Passage → Answer."""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field


@dataclass(frozen=True)
class SourceMap:
    """Where a document's text is in its original file, for display.

    ``parts`` name the places of the file that runs point into, each as a reader of the file finds
    it: ``""`` is the whole file's decoded text (txt, Markdown, HTML), ``"page 3"`` the text pypdf
    extracts from page 3 of a PDF, a chapter's file name its XHTML in an EPUB, ``"paragraph 12"``
    the text of a Word or OpenDocument file's 12th paragraph (document order), ``"slide 2, shape 3,
    paragraph 1"`` a slide's text. ``runs`` are ``(text_offset, length, part, source_offset)``:
    ``text[text_offset:text_offset + length]`` is exactly ``part_text[source_offset:…]`` of part
    ``parts[part]``, in text order; text between runs (breaks the reader added, markup-free
    renderings) has no place in the file.
    """

    parts: tuple[str, ...] = ()
    runs: tuple[tuple[int, int, int, int], ...] = ()

    def locate(self, offset: int) -> tuple[str, int] | None:
        """(part, offset in it) of text character ``offset``, or None if it has no such place."""
        index = bisect_right(self.runs, (offset, float("inf"))) - 1
        if index < 0:
            return None
        start, length, part, source = self.runs[index]
        return (self.parts[part], source + offset - start) if offset < start + length else None

    def spans(self, start: int, end: int) -> list[tuple[str, int, int, int, int]]:
        """The places of text ``[start, end)`` in the file: ``(part, source_start, source_end,
        text_start, text_end)`` for each run it overlaps, in text order."""
        first = max(0, bisect_right(self.runs, (start, float("inf"))) - 1)
        found = []
        for run_start, length, part, source in self.runs[first:]:
            if run_start >= end:
                break
            low, high = max(start, run_start), min(end, run_start + length)
            if low < high:
                found.append((self.parts[part], source + low - run_start, source + high - run_start, low, high))
        return found

    def to_json(self) -> dict:
        """A compact, JSON-ready form (runs flattened into one list of integers)."""
        return {"parts": list(self.parts), "runs": [n for run in self.runs for n in run]}

    @classmethod
    def from_json(cls, stored: dict | None) -> "SourceMap":
        if not stored:
            return cls()
        flat = stored.get("runs", [])
        return cls(tuple(stored.get("parts", ())),
                   tuple(tuple(flat[i:i + 4]) for i in range(0, len(flat) - 3, 4)))


@dataclass(frozen=True)
class Document:
    """One loaded source file.

    ``page_starts`` holds, for PDFs (and slides), the character offset in ``text`` where each page
    begins (page 1 first); it is empty for formats without pages. ``sections`` are the document's
    headings as ``(offset, heading)``. ``source_map`` locates ``text`` in the original file (every
    format; empty for an index built before it was kept).
    """

    doc_id: str
    title: str
    text: str
    content_hash: str
    page_starts: tuple[int, ...] = ()
    sections: tuple[tuple[int, str], ...] = ()
    source_map: SourceMap = field(default_factory=SourceMap)

    def page_at(self, offset: int) -> int | None:
        """1-based page holding character ``offset``, or None for formats without pages."""
        return page_at(self.page_starts, offset)

    def section_at(self, offset: int) -> str | None:
        """The heading of the section holding character ``offset``, if any."""
        index = bisect_right([start for start, _ in self.sections], offset) - 1
        return self.sections[index][1] if index >= 0 else None

    def source_offset(self, offset: int) -> int | None:
        """Where character ``offset`` of ``text`` is in its part of the original file (for txt,
        Markdown and HTML: the file's decoded text), or None if it has no such place."""
        place = self.source_map.locate(offset)
        return None if place is None else place[1]


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
