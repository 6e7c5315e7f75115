"""Markdown → plain text as it reads when rendered: no ``#``, ``**`` or link syntax, hard-wrapped
lines joined into their paragraph, code kept line by line, headings as sections.

markdown-it-py parses (CommonMark and tables); every piece of text is then found in the source
moving forward, so each run of the output maps back to its exact place in the file.
"""

from __future__ import annotations

import re

from .builder import BuiltText, TextBuilder

_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?\n)(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.DOTALL)
_FRONT_MATTER_TITLE = re.compile(r"^title:[ \t]*[\"']?(.+?)[\"']?[ \t]*$", re.MULTILINE)
_NEWLINE = re.compile(r"\n")


def load_markdown(source: str) -> tuple[BuiltText, str | None]:
    """The rendered text and the title: front matter's ``title:``, else the first level-1 heading."""
    from markdown_it import MarkdownIt  # deferred: only Markdown corpora pay for the import

    title = None
    if front := _FRONT_MATTER.match(source):
        if found := _FRONT_MATTER_TITLE.search(front.group(1)):
            title = found.group(1)
        # Blank the front matter out, keeping every offset after it where it was.
        source = re.sub(r"[^\n]", " ", front.group()) + source[front.end():]
    # HTML stays as written (CommonMark with raw HTML off): the text shows a <script>, never hides
    # or runs it.
    tokens = MarkdownIt("commonmark", {"html": False}).enable("table").parse(source)
    renderer = _Renderer(source)
    renderer.render(tokens)
    return renderer.builder.build(), title or renderer.first_h1


class _Renderer:
    def __init__(self, source: str):
        self.builder = TextBuilder()
        self.builder.part("", source)
        self.first_h1: str | None = None
        self._source = source
        self._line_starts = [0, *(m.end() for m in _NEWLINE.finditer(source))]
        self._cursor = 0

    def render(self, tokens) -> None:
        in_heading = None
        cells_in_row = 0
        for token in tokens:
            if token.map:
                self._cursor = max(self._cursor, self._line_starts[min(token.map[0], len(self._line_starts) - 1)])
            kind = token.type
            if kind == "heading_open":
                in_heading = token.tag
            elif kind == "heading_close":
                in_heading = None
            elif kind == "inline" and in_heading:
                pieces = self._inline_pieces(token)
                text = "".join(piece for piece, _ in pieces)
                self.builder.heading(text, pieces[0][1] if pieces else None)
                if in_heading == "h1" and self.first_h1 is None:
                    self.first_h1 = " ".join(text.split())
            elif kind == "inline":
                for piece, source in self._inline_pieces(token):
                    if piece == "\n":
                        self.builder.line_break()
                    elif piece == " ":
                        self.builder.space()
                    else:
                        self.builder.add(piece, source)
            elif kind in ("paragraph_open", "paragraph_close", "blockquote_open", "hr",
                          "bullet_list_open", "ordered_list_open", "bullet_list_close",
                          "ordered_list_close", "table_open", "table_close"):
                if not token.hidden:
                    self.builder.paragraph_break()
            elif kind in ("th_open", "td_open"):
                if cells_in_row:
                    self.builder.add(" | ")
                cells_in_row += 1
            elif kind in ("list_item_open", "tr_open"):
                self.builder.line_break()
                cells_in_row = 0
            elif kind in ("fence", "code_block"):
                self._code(token.content)

    def _inline_pieces(self, token) -> list[tuple[str, int]]:
        """The visible pieces of an inline token: text with its source offset (-1 if not found),
        " " for a soft line break and "\\n" for a hard one."""
        pieces = []
        for child in token.children or []:
            if child.type in ("text", "code_inline") and child.content:
                pieces.append((child.content, self._find(child.content)))
            elif child.type == "image" and child.content:
                pieces.append((child.content, self._find(child.content)))
            elif child.type == "softbreak":
                pieces.append((" ", -1))
            elif child.type == "hardbreak":
                pieces.append(("\n", -1))
        return pieces

    def _code(self, content: str) -> None:
        self.builder.paragraph_break()
        for line in content.split("\n"):
            if line.strip():
                self.builder.line_break()
                self.builder.add(line.rstrip(), self._find(line.rstrip()))
        self.builder.paragraph_break()

    def _find(self, text: str) -> int:
        at = self._source.find(text, self._cursor)
        if at < 0:
            return -1
        self._cursor = at + len(text)
        return at
