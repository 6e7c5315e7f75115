"""Assemble a document's text from pieces, keeping offsets for pages, sections and the source."""

from __future__ import annotations

from dataclasses import dataclass

from ..text import normalize

_NOT_FOUND = -1  # a source offset that stops the previous run: this piece's origin is unknown


@dataclass(frozen=True)
class BuiltText:
    text: str
    page_starts: tuple[int, ...]
    sections: tuple[tuple[int, str], ...]
    source_map: tuple[tuple[int, int], ...]


class TextBuilder:
    """Appends pieces of text with the breaks between them.

    Breaks asked for between pieces merge into the widest one (a paragraph break wins over a line
    break over a space), and none is written at the start or end of the text, so every format
    yields tidy paragraphs separated by one blank line.
    """

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._length = 0
        self._pending = ""  # the break to write before the next piece
        self._page_starts: list[int] = []
        self._page_pending = False
        self._sections: list[tuple[int, str]] = []
        self._source_map: list[tuple[int, int]] = []

    def add(self, piece: str, source: int | None = None) -> None:
        """Append ``piece`` (NFC-normalised); ``source`` is where it starts in the original file's
        decoded text, if known, and None where the format has no such place."""
        piece = normalize(piece)
        if not piece:
            return
        if self._pending and self._length:
            self._append(self._pending)
        self._pending = ""
        if self._page_pending:
            self._page_starts.append(self._length)
            self._page_pending = False
        if source is not None:
            self._source_map.append((self._length, source if source >= 0 else _NOT_FOUND))
        self._append(piece)

    def space(self) -> None:
        self._want(" ")

    def line_break(self) -> None:
        self._want("\n")

    def paragraph_break(self) -> None:
        self._want("\n\n")

    def heading(self, heading: str, source: int | None = None) -> None:
        """A heading on its own paragraph; it starts a section."""
        heading = " ".join(heading.split())
        if not heading:
            return
        self.paragraph_break()
        self.add(heading, source)
        self._sections.append((self._length - len(normalize(heading)), normalize(heading)))
        self.paragraph_break()

    def new_page(self) -> None:
        """The next piece starts a new page (pages without text start where the next one does)."""
        self.paragraph_break()
        if self._page_pending:
            self._page_starts.append(self._length)
        self._page_pending = True

    def continue_page(self, joiner: str) -> None:
        """The next page continues the last sentence: join with ``joiner`` (" " or "")."""
        self._pending = joiner

    @property
    def empty(self) -> bool:
        return self._length == 0

    def build(self) -> BuiltText:
        if self._page_pending:
            self._page_starts.append(self._length)
        return BuiltText("".join(self._parts), tuple(self._page_starts), tuple(self._sections),
                         tuple(self._source_map))

    def _want(self, separator: str) -> None:
        if len(separator) > len(self._pending) or (separator != " " and self._pending == " "):
            self._pending = separator

    def _append(self, text: str) -> None:
        self._parts.append(text)
        self._length += len(text)
