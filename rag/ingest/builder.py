"""Assemble a document's text from pieces, keeping offsets for pages, sections and the source."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..text import normalize
from ..types import SourceMap

_WORD = re.compile(r"\S+")
_WORD_PIECE = re.compile(r"\w+|[^\w\s]")  # a word's letters and its marks, one at a time
# How far past the last word found the next one is looked for in the source: markup, entities
# and whitespace between two words of a paragraph fit in this; text the reader added does not.
# A short word (a letter, "of") is looked for nearer, or it would match the next one anywhere.
_SEARCH_WINDOW = 400
_SHORT_WORD, _SHORT_WORD_WINDOW = 4, 80


@dataclass(frozen=True)
class BuiltText:
    text: str
    page_starts: tuple[int, ...]
    sections: tuple[tuple[int, str], ...]
    source_map: SourceMap


class TextBuilder:
    """Appends pieces of text with the breaks between them.

    Breaks asked for between pieces merge into the widest one (a paragraph break wins over a line
    break over a space), and none is written at the start or end of the text, so every format
    yields tidy paragraphs separated by one blank line.

    A piece added with its ``source`` offset is aligned word by word with the current part of the
    file (:meth:`part`): each stretch that is there verbatim becomes a run of the source map, so
    whitespace a format collapsed or markup between words cost only those characters.
    """

    def __init__(self) -> None:
        self._pieces: list[str] = []
        self._length = 0
        self._pending = ""  # the break to write before the next piece
        self._page_starts: list[int] = []
        self._page_pending = False
        self._sections: list[tuple[int, str]] = []
        self._parts: dict[str, int] = {}
        self._part: tuple[int, str] | None = None  # the part sources point into: (index, text)
        self._runs: list[tuple[int, int, int, int]] = []
        self.last_start = 0  # where the last piece added starts in the text

    def part(self, name: str, text: str) -> None:
        """Sources given from now on are offsets in ``text``, the part of the file named ``name``."""
        self._part = (self._parts.setdefault(name, len(self._parts)), text)

    def add(self, piece: str, source: int | None = None) -> None:
        """Append ``piece`` (NFC-normalised); ``source`` is where it starts (or is first looked
        for) in the current part of the file, None or -1 where the format has no such place."""
        piece = normalize(piece)
        if not piece:
            return
        if self._pending and self._length:
            self._append(self._pending)
        self._pending = ""
        if self._page_pending:
            self._page_starts.append(self._length)
            self._page_pending = False
        self.last_start = self._length
        if source is not None and source >= 0 and self._part is not None:
            self._align(piece, source)
        self._append(piece)

    def _align(self, piece: str, source: int) -> None:
        """Runs for the stretches of ``piece`` found verbatim in the part from ``source`` on."""
        part, text = self._part
        if text.startswith(piece, source):
            self._runs.append((self._length, len(piece), part, source))
            return
        run: list[int] | None = None  # [piece offset, length, source offset]
        cursor = source

        def place(start: int, end: int) -> bool:
            """Find piece[start:end] in the source after the cursor; extend or start a run."""
            nonlocal run, cursor
            window = _SEARCH_WINDOW if end - start >= _SHORT_WORD else _SHORT_WORD_WINDOW
            found = text.find(piece[start:end], cursor, cursor + window + end - start)
            if found < 0:
                return False
            if run and text[run[2] + run[1]:found] == piece[run[0] + run[1]:start]:
                run[1] = end - run[0]
            else:
                if run:
                    self._runs.append((self._length + run[0], run[1], part, run[2]))
                run = [start, end - start, found]
            cursor = found + end - start
            return True

        for word in _WORD.finditer(piece):
            if not place(*word.span()):  # "O&O" written "O&amp;O": its letters are still there
                for bit in _WORD_PIECE.finditer(word.group()):
                    place(word.start() + bit.start(), word.start() + bit.end())
        if run:
            self._runs.append((self._length + run[0], run[1], part, run[2]))

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
        self._sections.append((self.last_start, normalize(heading)))
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
        return BuiltText("".join(self._pieces), tuple(self._page_starts), tuple(self._sections),
                         SourceMap(tuple(self._parts), tuple(self._runs)))

    def _want(self, separator: str) -> None:
        if len(separator) > len(self._pending) or (separator != " " and self._pending == " "):
            self._pending = separator

    def _append(self, text: str) -> None:
        self._pieces.append(text)
        self._length += len(text)
