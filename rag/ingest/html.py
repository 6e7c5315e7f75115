"""HTML → the article a reader came for: main content by trafilatura, the visible text otherwise.

trafilatura drops navigation, cookie banners, asides, related links and footers; when it finds no
main content (a short or unusual page) the page's visible text is used, still without the parts
that are boilerplate by their tag (nav, header, footer, aside, form) or by their name (cookie,
consent, banner, menu …). Titles lose their site suffix ("… | The River Times").
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

from ..types import LoadError
from .builder import BuiltText, TextBuilder
from .encoding import decode_text

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([\w.:-]+)""", re.IGNORECASE)
_SITE_NAME = re.compile(
    r"""<meta[^>]+(?:property|name)\s*=\s*["'](?:og:site_name|application-name)["'][^>]*>""", re.IGNORECASE)
_OG_TITLE = re.compile(r"""<meta[^>]+property\s*=\s*["']og:title["'][^>]*>""", re.IGNORECASE)
_TITLE = re.compile(r"<title[^>]*>(.*?)</title\s*>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]*>")
_HEAD_CHARS = 65536
_CONTENT_ATTRIBUTE = re.compile(r"""content\s*=\s*["']([^"']*)["']""", re.IGNORECASE)
_TITLE_SEPARATOR = re.compile(r"(\s+(?:\||–|—|-|·|::|»|:)\s+)")
_WHITESPACE_RUN = re.compile(r"\s+")
_NEWLINE = re.compile(r"\n")


def load_html(data: bytes) -> tuple[BuiltText, str | None]:
    declared = _META_CHARSET.search(data[:4096])
    source = decode_text(data, declared.group(1).decode("ascii", "replace") if declared else None)
    head = source[:_HEAD_CHARS]
    built, h1 = _main_content(source)
    if built is None:
        builder = TextBuilder()
        builder.part("", source)
        extractor = VisibleText(builder, source, skip_boilerplate=True)
        extractor.run()
        built, h1 = builder.build(), extractor.first_h1()
    title = _meta(head, _OG_TITLE) or _title_tag(head)
    return built, clean_title(title, h1, _meta(head, _SITE_NAME))


def _meta(head: str, pattern: re.Pattern) -> str | None:
    meta = pattern.search(head)
    content = _CONTENT_ATTRIBUTE.search(meta.group()) if meta else None
    return " ".join(html.unescape(content.group(1)).split()) or None if content else None


def _title_tag(head: str) -> str | None:
    found = _TITLE.search(head)
    return " ".join(html.unescape(_TAG.sub(" ", found.group(1))).split()) or None if found else None


def clean_title(title: str | None, h1: str | None, site_name: str | None) -> str | None:
    """The page's own title, without the site's name that pages append or prepend to it (known
    from og:site_name, or because the page's h1 is one of the title's parts)."""
    title = " ".join((title or "").split()) or None
    h1 = " ".join((h1 or "").split()) or None
    if not title:
        return h1
    pieces = _TITLE_SEPARATOR.split(title)  # part, separator, part, …
    parts = pieces[0::2]
    if len(parts) == 1:
        return title
    if h1 and any(h1.casefold() == part.casefold() for part in parts):
        return h1
    if site_name and parts[-1].casefold() == site_name.casefold():
        return "".join(pieces[:-2])
    if site_name and parts[0].casefold() == site_name.casefold():
        return "".join(pieces[2:])
    return title


# ---------------------------------------------------------------- main content (trafilatura)


def _main_content(source: str) -> tuple[BuiltText | None, str | None]:
    """The main content as trafilatura finds it and its first h1, or (None, None) if none."""
    import trafilatura  # deferred: only HTML corpora pay for the import

    try:
        found = trafilatura.bare_extraction(
            source, include_comments=False, include_tables=True, include_images=False,
            with_metadata=True, deduplicate=False,
        )
    except Exception:  # trafilatura or lxml giving up on a page: the visible text still serves
        return None, None
    if found is None or found.body is None or not (found.text or "").strip() or _is_baseline(found.body):
        return None, None
    builder = TextBuilder()
    builder.part("", source)
    locator = _Locator(source)
    h1 = None
    for block in found.body:
        heading = _add_block(builder, locator, block)
        h1 = h1 or heading
        _add_block_tail(builder, locator, block)
    if builder.empty:
        return None, None
    return builder.build(), h1


def _is_baseline(body) -> bool:
    """trafilatura's last resort, when it found no article: all of the page's text in one
    paragraph, a line per text node (nav and noscript included); the visible text does better."""
    blocks = list(body)
    return len(blocks) == 1 and blocks[0].tag == "p" and "\n" in (blocks[0].text or "")


def _add_block(builder: TextBuilder, locator: "_Locator", block) -> str | None:
    """Add one of trafilatura's output blocks; returns the text of a level-1 heading."""
    tag = block.tag
    if tag == "head":
        text = _flat(block)
        builder.heading(text, locator.find(text))
        return text if block.get("rend") == "h1" else None
    if tag == "list":
        builder.paragraph_break()
        for item in block.iter("item"):
            text = _flat(item, exclude="list")
            builder.line_break()
            builder.add(text, locator.find(text))
        builder.paragraph_break()
    elif tag == "table":
        builder.paragraph_break()
        for row in block.iter("row"):
            cells = [_flat(cell) for cell in row.iter("cell")]
            text = " | ".join(cell for cell in cells if cell)
            builder.line_break()
            builder.add(text, locator.find(cells[0] if cells else text))
        builder.paragraph_break()
    else:  # p, quote, code and anything else trafilatura emits: a paragraph
        text = _code_lines(block) if tag == "code" else _flat(block)
        builder.paragraph_break()
        builder.add(text, locator.find(text))
        builder.paragraph_break()
    return None


def _add_block_tail(builder: TextBuilder, locator: "_Locator", block) -> None:
    if block.tail and block.tail.strip():
        text = " ".join(block.tail.split())
        builder.paragraph_break()
        builder.add(text, locator.find(text))


def _flat(element, exclude: str | None = None) -> str:
    """An element's text with whitespace runs collapsed (its nested ``exclude`` elements left out)."""
    if exclude is None:
        return " ".join("".join(element.itertext()).split())
    parts = [element.text or ""]
    for child in element:
        if child.tag != exclude:
            parts.append("".join(child.itertext()))
        parts.append(child.tail or "")
    return " ".join("".join(parts).split())


def _code_lines(block) -> str:
    lines = "".join(block.itertext()).split("\n")
    return "\n".join(" ".join(line.split()) for line in lines if line.strip())


class _Locator:
    """Finds each extracted paragraph in the page's source, moving forward as the text does."""

    _PROBE_CHARS = 24

    def __init__(self, source: str):
        self._source = source
        self._cursor = 0

    def find(self, text: str) -> int:
        """Where ``text`` (or its opening words) starts in the source after the last find, or -1."""
        for probe in (text, text[: self._PROBE_CHARS], text.split(" ", 1)[0]):
            if len(probe) < 3 and probe != text:
                continue
            at = self._source.find(probe, self._cursor)
            if at >= 0:
                self._cursor = at + len(probe)
                return at
        return -1


# ---------------------------------------------------------------- visible text (HTMLParser)


class VisibleText(HTMLParser):
    """Streams the text a browser shows into a TextBuilder; keeps no tree, so nesting depth costs
    nothing. With ``skip_boilerplate``, navigation, banners and footers are left out."""

    _HIDDEN = frozenset({"script", "style", "noscript", "template", "title", "svg"})
    _BOILERPLATE_TAGS = frozenset({"nav", "header", "footer", "aside", "form", "button", "dialog"})
    _BOILERPLATE_NAME = re.compile(
        r"cookie|consent|gdpr|banner|newsletter|subscribe|share|social|breadcrumb|\bmenu|navbar|"
        r"sidebar|advert|\bads?\b|promo|related|comments?\b|popup|modal|skip-link", re.IGNORECASE)
    _VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
                       "source", "track", "wbr"})
    _HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
    _PARAGRAPH = frozenset({
        "p", "blockquote", "pre", "table", "ul", "ol", "dl", "section", "article", "header",
        "footer", "nav", "aside", "main", "figure", "form", "fieldset", "address", "details", "hr",
    }) | _HEADINGS
    _LINE = frozenset({
        "br", "div", "li", "dt", "dd", "tr", "caption", "figcaption", "summary", "legend",
        "option", "body", "html",
    })
    _CELL = frozenset({"td", "th"})

    def __init__(self, builder: TextBuilder, source: str, *, skip_boilerplate: bool) -> None:
        super().__init__(convert_charrefs=True)
        self._builder = builder
        self._source = source
        self._skip_boilerplate = skip_boilerplate
        self._line_starts = [0, *(m.end() for m in _NEWLINE.finditer(source))]
        self._hidden_open: dict[str, int] = {}
        self._skipping: list = []  # [tag, depth] of the boilerplate element being left out
        self._pre_depth = 0
        self._title_parts: list[str] = []
        self._heading: list[str] | None = None  # the text of the heading being read
        self._heading_source = -1
        self._h1: str | None = None
        self._first_heading: str | None = None
        self._heading_tag = ""

    def run(self) -> None:
        try:
            self.feed(self._source)
            self.close()
        except (AssertionError, ValueError) as e:  # html.parser's rare hard failures
            raise LoadError(f"malformed HTML: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
        self._end_heading()

    def handle_starttag(self, tag: str, attrs) -> None:
        if self._skipping:
            if tag == self._skipping[0]:
                self._skipping[1] += 1
            return
        if self._skip_boilerplate and tag not in self._VOID and self._is_boilerplate(tag, attrs):
            self._skipping = [tag, 1]
            return
        if tag in self._HIDDEN:
            self._hidden_open[tag] = self._hidden_open.get(tag, 0) + 1
        if tag == "pre":
            self._pre_depth += 1
        self._break_for(tag)
        if tag in self._HEADINGS and self._heading is None:
            self._heading = []
            self._heading_source = -1
            self._heading_tag = tag

    def handle_endtag(self, tag: str) -> None:
        if self._skipping:
            if tag == self._skipping[0]:
                self._skipping[1] -= 1
                if not self._skipping[1]:
                    self._skipping = []
            return
        if self._hidden_open.get(tag):
            self._hidden_open[tag] -= 1
        if tag == "pre" and self._pre_depth:
            self._pre_depth -= 1
        if tag in self._HEADINGS and self._heading is not None and tag == self._heading_tag:
            self._end_heading()
        self._break_for(tag)

    def handle_data(self, data: str) -> None:
        if self._hidden_open.get("title"):
            self._title_parts.append(data)
        if self._skipping or any(self._hidden_open.values()):
            return
        position = self._offset()
        if self._heading is not None:
            if not self._heading and data.strip():
                self._heading_source = position + len(data) - len(data.lstrip())
            self._heading.append(data)
            return
        if self._pre_depth:
            self._builder.add(data, position)
            return
        # Outside <pre>, source line breaks and indentation are just spaces to a reader.
        segment_start = position
        for number, segment in enumerate(data.split("\n")):
            stripped = segment.strip()
            if number or segment[:1].isspace():
                self._builder.space()
            if stripped:
                indent = len(segment) - len(segment.lstrip())
                self._builder.add(_WHITESPACE_RUN.sub(" ", stripped),
                                  segment_start + indent if position >= 0 else None)
                if segment[-1:].isspace():
                    self._builder.space()
            segment_start += len(segment) + 1

    def _end_heading(self) -> None:
        if self._heading is None:
            return
        text = " ".join("".join(self._heading).split())
        self._heading = None
        if text:
            self._builder.heading(text, self._heading_source)
            self._first_heading = self._first_heading or text
            if self._heading_tag == "h1" and self._h1 is None:
                self._h1 = text

    def _is_boilerplate(self, tag: str, attrs) -> bool:
        if tag in self._BOILERPLATE_TAGS:
            return True
        names = " ".join(value or "" for name, value in attrs if name in ("id", "class", "role"))
        hidden = any(name in ("hidden", "aria-hidden") for name, _ in attrs)
        return hidden or bool(names and self._BOILERPLATE_NAME.search(names))

    def _offset(self) -> int:
        line, column = self.getpos()
        return self._line_starts[line - 1] + column if line - 1 < len(self._line_starts) else -1

    def _break_for(self, tag: str) -> None:
        if tag in self._PARAGRAPH:
            self._builder.paragraph_break()
        elif tag in self._LINE:
            self._builder.line_break()
        elif tag in self._CELL:
            self._builder.space()

    def title(self) -> str | None:
        return " ".join("".join(self._title_parts).split()) or None

    def first_h1(self) -> str | None:
        return self._h1

    def first_heading(self) -> str | None:
        return self._first_heading
