"""HTML for the web chat, built so that no text from a document, a model or a user becomes markup.

All text passes through :func:`escape`, which writes every ASCII punctuation character as a numeric
character reference: the browser shows the same characters, but neither the chat's Markdown
renderer nor the HTML parser can see a tag, a link, an image, emphasis or a formula in them. The
only markup on the page is the markup written here.
"""

from __future__ import annotations

import html
import json
import re
import string
import time
from collections.abc import Callable, Sequence

from .types import Answer, Citation, DocumentInfo, Passage
from .web_pdf import PageImage

_ENTITIES = {ord(c): f"&#{ord(c)};" for c in string.punctuation}
# Context shown on each side of a quote in the sources panel, in characters.
PASSAGE_REACH = 280
_MARKER = re.compile(r"\[(\d+)\]")
_SPACE = re.compile(r"\s")
# The Markdown an engine writes around its quotes: backslash escapes, **strong** and *emphasis*.
_PROSE_MARKUP = re.compile(
    r"\\([^\w\s])"
    r"|\*\*(?=\S)((?:\\.|[^*\\]|\*(?!\*))+?)(?<=\S)\*\*"
    r"|\*(?=\S)((?:\\.|[^*\\])+?)(?<=\S)\*"
)
_OPENING_QUOTES, _CLOSING_QUOTES = "\"“", "\"”"


def escape(text: str) -> str:
    """``text`` as inert HTML that Markdown leaves alone too; line breaks become ``<br>``."""
    return text.translate(_ENTITIES).replace("\r\n", "\n").replace("\n", "<br>")


def source_anchor(turn: int, number: int) -> str:
    """The id of citation ``number`` of the answer at position ``turn`` of the conversation."""
    return f"source-{turn}-{number}"


# ---------------------------------------------------------------- chat messages


def render_answer(text: str, citations: Sequence[Citation], turn: int, note: str | None = None) -> str:
    """An answer with its quotes as ``<q>`` and each marker a link to (and tooltip of) its source."""
    by_number = {c.number: c for c in citations}
    quotes = sorted({c.quote for c in citations if c.quote}, key=len, reverse=True)
    pieces, position = [], 0
    if quotes:
        matches = list(re.finditer("|".join(map(re.escape, quotes)), text))
        # A quote's words may also stand unquoted, e.g. in a title ("According to *<title>*"):
        # where the quote appears between quotation marks, only those places are the quote.
        in_marks = {m.group(0) for m in matches if _between_marks(text, *m.span())}
        for match in matches:
            start, end = match.span()
            if _between_marks(text, start, end):
                start, end = start - 1, end + 1  # the <q> element draws the quotation marks
            elif match.group(0) in in_marks:
                continue
            if start < position:
                continue
            pieces.append(_prose(text[position:start], by_number, turn))
            pieces.append(f"<q>{escape(match.group(0))}</q>")
            position = end
    pieces.append(_prose(text[position:], by_number, turn))
    rendered = "".join(pieces)
    if note:
        rendered += f'<br><br><em class="answer-note">{escape(note)}</em>'
    return rendered


def _between_marks(text: str, start: int, end: int) -> bool:
    return 0 < start and end < len(text) and text[start - 1] in _OPENING_QUOTES and text[end] in _CLOSING_QUOTES


def render_user_message(text: str) -> str:
    return escape(text)


def render_error(message: str) -> str:
    return f'<strong class="answer-error">{escape(message)}</strong>'


def message_text(content) -> str:
    """The plain text of a chat message as Gradio hands it back (a string or a list of parts)."""
    if isinstance(content, list):
        content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
    elif isinstance(content, dict):
        content = content.get("text", "")
    text = re.sub(r"<br\s*/?>", "\n", str(content or ""))
    text = re.sub(r"</?q>", '"', text)
    return html.unescape(re.sub(r"<[^>]*>", "", text))


def _prose(text: str, citations: dict[int, Citation], turn: int) -> str:
    """Text between quotes: its small Markdown becomes markup, markers become links, the rest text."""
    pieces, position = [], 0
    for match in _PROSE_MARKUP.finditer(text):
        pieces.append(_with_markers(text[position:match.start()], citations, turn))
        literal, strong, emphasis = match.groups()
        if literal is not None:
            pieces.append(escape(literal))
        elif strong is not None:
            pieces.append(f"<strong>{_prose(strong, citations, turn)}</strong>")
        else:
            pieces.append(f"<em>{_prose(emphasis, citations, turn)}</em>")
        position = match.end()
    pieces.append(_with_markers(text[position:], citations, turn))
    return "".join(pieces)


def _with_markers(text: str, citations: dict[int, Citation], turn: int) -> str:
    pieces, position = [], 0
    for match in _MARKER.finditer(text):
        citation = citations.get(int(match.group(1)))
        if citation is None:
            continue
        pieces += [escape(text[position:match.start()]), _marker_link(citation, turn)]
        position = match.end()
    pieces.append(escape(text[position:]))
    return "".join(pieces)


def _marker_link(citation: Citation, turn: int) -> str:
    hint = escape(f"{citation.title} ({_place(citation)}): “{_shorten(citation.quote, 200)}”")
    return (
        f'<a class="cite" href="#{source_anchor(turn, citation.number)}" title="{hint}">'
        f"{escape(f'[{citation.number}]')}</a>"
    )


# ---------------------------------------------------------------- sources panel


SOURCES_PLACEHOLDER = '<div class="sources-empty">Sources of the latest answer appear here.</div>'
SOURCES_SEARCHING = '<div class="sources-empty">Searching the corpus…</div>'
# Relevance in words: how far a quote's score clears the level below which the corpus is said
# not to answer (Settings.min_relevance). The raw score is in the tooltip.
RELEVANCE_WORDS = ((0.35, 3, "strong match"), (0.15, 2, "good match"), (float("-inf"), 1, "fair match"))


def render_sources(
    answer: Answer, turn: int, document_text: Callable[[str], str | None], min_relevance: float = 0.69,
) -> str:
    """One card per passage, in the order the answer first cites it, every quote from it
    highlighted and numbered inside; or, for a refusal, why there are none.

    ``document_text(doc_id)`` returns the cited document's text, or None if it is gone from the
    index (then the quotes are shown alone).
    """
    unverified = getattr(answer, "unverified", "")
    extra = _related(answer.related) + (_unverified(unverified) if unverified else "")
    if not answer.citations:
        note = f"<p>{escape(answer.note)}</p>" if answer.note else ""
        return (
            '<div class="no-sources"><h3>No sources</h3><p>The corpus does not answer this question, '
            f"so there is nothing to quote.</p>{note}</div>{extra}"
        )
    texts = {doc_id: document_text(doc_id) for doc_id in dict.fromkeys(c.doc_id for c in answer.citations)}
    cards = [
        _source_card(group, turn, texts[group[0].doc_id], min_relevance)
        for group in passage_groups(answer.citations, answer.text, texts)
    ]
    return '<div class="sources"><h3>Sources</h3>' + "".join(cards) + f"</div>{extra}"


def render_sources_error(message: str) -> str:
    return f'<div class="no-sources"><h3>No sources</h3><p>{escape(message)}</p></div>'


def relevance(score: float, min_relevance: float) -> tuple[int, str]:
    """(bars out of 3, words) for a quote's score."""
    return next((bars, words) for margin, bars, words in RELEVANCE_WORDS if score - min_relevance >= margin)


def passage_groups(
    citations: Sequence[Citation], answer_text: str, texts: dict[str, str | None]
) -> list[list[Citation]]:
    """Citations that one passage shows, grouped (same document, quotes at most two reaches
    apart), each group by position in the document; groups in the order the answer cites them."""
    located = sorted(citations, key=lambda c: (c.doc_id, _span(c, texts.get(c.doc_id))[0]))
    groups: list[list[Citation]] = []
    for citation in located:
        start = _span(citation, texts.get(citation.doc_id))[0]
        last = groups[-1][-1] if groups else None
        if last is not None and last.doc_id == citation.doc_id and start - _span(last, texts.get(last.doc_id))[1] <= 2 * PASSAGE_REACH:
            groups[-1].append(citation)
        else:
            groups.append([citation])
    order = {int(m.group(1)): i for i, m in reversed(list(enumerate(_MARKER.finditer(answer_text))))}
    return sorted(groups, key=lambda g: min(order.get(c.number, len(order) + c.number) for c in g))


def _span(citation: Citation, text: str | None) -> tuple[int, int]:
    """Where the quote is in ``text`` now: its own offsets, or where it moved to, or (-1, -1)."""
    if text is None:
        return -1, -1
    if text[citation.start:citation.end] == citation.quote:
        return citation.start, citation.end
    start = text.find(citation.quote)
    return (start, start + len(citation.quote)) if start >= 0 else (-1, -1)


def _source_card(group: list[Citation], turn: int, text: str | None, min_relevance: float) -> str:
    first = group[0]
    numbers = " ".join(escape(f"[{c.number}]") for c in sorted(group, key=lambda c: c.number))
    pages = sorted({c.page for c in group if c.page is not None})
    page_text = (f", page {pages[0]}" if len(pages) == 1 else f", pages {pages[0]}–{pages[-1]}") if pages else ""
    best = max(c.score for c in group)
    bars, words = relevance(best, min_relevance)
    meter = "".join(f'<i class="{"on" if i < bars else "off"}"></i>' for i in range(3))
    quotes = "one quote" if len(group) == 1 else f"{len(group)} quotes"
    return (
        '<article class="source">'
        f'<div class="source-head"><span class="source-number">{numbers}</span> '
        f'<span class="source-title">{escape(first.title)}</span></div>'
        f'<div class="source-meta"><span class="source-doc">{escape(first.doc_id)}{escape(page_text)}</span> · '
        f'<span class="relevance" title="{escape(f"relevance score {best:.3f}; below {min_relevance:g} the corpus is said not to answer")}">'
        f'<span class="meter" aria-hidden="true">{meter}</span> {words}</span> · {quotes}</div>'
        f'<blockquote class="source-passage">{_highlighted_passage(group, turn, text)}</blockquote>'
        + _open_button(min(group, key=lambda c: c.number))
        + "</article>"
    )


def _open_button(citation: Citation) -> str:
    """The button that asks for the document view at ``citation`` (see :func:`open_request`)."""
    where = f"page {citation.page}" if citation.page is not None else "the quote"
    request = json.dumps({"doc_id": citation.doc_id, "number": citation.number, "quote": citation.quote,
                          "start": citation.start, "end": citation.end, "page": citation.page})
    return (
        f'<button type="button" class="open-source" data-open="{escape(request)}">'
        f"Open the document at {escape(where)}</button>"
    )


def open_request(value: str) -> dict:
    """The fields of an open button's request, checked: doc_id, number, quote, start, end, page."""
    request = json.loads(value)
    if not (isinstance(request.get("doc_id"), str) and isinstance(request.get("quote"), str)
            and all(isinstance(request.get(k), int) for k in ("number", "start", "end"))
            and isinstance(request.get("page"), (int, type(None)))):
        raise ValueError("malformed request to open a document")
    return request


def _mark(citation: Citation, turn: int, text: str) -> str:
    return (
        f'<mark id="{source_anchor(turn, citation.number)}" data-number="{citation.number}">'
        f'<sup class="quote-number">{citation.number}</sup>{escape(text)}</mark>'
    )


def _highlighted_passage(group: list[Citation], turn: int, text: str | None) -> str:
    """The group's quotes as numbered ``<mark>``s inside the text around them, cut at word boundaries."""
    spans = [(_span(c, text), c) for c in group]
    if text is None or any(start < 0 for (start, _), _ in spans):
        return "<br>".join(_mark(c, turn, c.quote) for c in group)  # the document changed or is gone
    spans.sort(key=lambda item: item[0])
    first, last = spans[0][0][0], max(end for (_, end), _ in spans)
    before_start = _word_boundary_after(text, max(0, first - PASSAGE_REACH), first)
    after_end = _word_boundary_before(text, min(len(text), last + PASSAGE_REACH), last)
    pieces, position = ["…" if before_start > 0 else ""], before_start
    for (start, end), citation in spans:
        start = max(start, position)  # overlapping quotes: the later one starts where the earlier ended
        if end <= start:
            pieces.append(_mark(citation, turn, ""))
            continue
        pieces += [escape(text[position:start]), _mark(citation, turn, text[start:end])]
        position = end
    pieces += [escape(text[position:after_end]), "…" if after_end < len(text) else ""]
    return "".join(pieces)


def _word_boundary_after(text: str, position: int, limit: int) -> int:
    if position == 0:
        return 0
    match = _SPACE.search(text, position, limit)
    return match.end() if match else limit


def _word_boundary_before(text: str, position: int, limit: int) -> int:
    if position == len(text):
        return position
    space = max(text.rfind(" ", limit, position), text.rfind("\n", limit, position))
    return space if space >= 0 else limit


def _related(passages: Sequence[Passage]) -> str:
    if not passages:
        return ""
    items = "".join(
        f'<li><span class="source-title">{escape(p.title)}</span> '
        f'<span class="source-meta">{escape(_place_of(p.doc_id, p.page))}</span>'
        f'<div class="related-text">{escape(_shorten(p.text, 400))}</div></li>'
        for p in passages
    )
    return (
        '<details class="related"><summary>Possibly related passages (not an answer)</summary>'
        "<p>These passages came closest to the question, but none of them answers it.</p>"
        f"<ul>{items}</ul></details>"
    )


def _unverified(text: str) -> str:
    return (
        '<details class="unverified"><summary>The language model\'s unverified text</summary>'
        "<p>Not an answer: no quote in the corpus supports it.</p>"
        f'<div class="unverified-text">{escape(text)}</div></details>'
    )


# ---------------------------------------------------------------- document view

DOCUMENT_VIEW_PLACEHOLDER = ""
# Characters of a long document shown around the quote in the document view.
DOCUMENT_REACH = 60_000


def render_document_view(
    title: str, doc_id: str, text: str, start: int, end: int, number: int, *,
    page: int | None = None, page_image: PageImage | None = None, source_place: str | None = None,
) -> str:
    """The cited document at the quote: for a PDF its page image with the quoted words
    highlighted over it, and the text with the quote marked (scrolled to by the page's script);
    ``source_place`` says where the quote is in the original file ("paragraph 12", "lines 4–6")."""
    place = source_place if source_place and page is None else None  # a page is named already
    head = (
        '<div class="document-head"><span class="source-title">'
        f"{escape(title)}</span> <span class=\"source-meta\">{escape(_place_of(doc_id, page))}"
        f"{escape(f', {place}') if place else ''} · quote {escape(f'[{number}]')}</span>"
        '<button type="button" class="close-document">Close</button></div>'
    )
    image = ""
    if page_image is not None:
        boxes = "".join(
            f'<div class="pdf-highlight" style="left:{x * 100:.3f}%;top:{y * 100:.3f}%;'
            f'width:{w * 100:.3f}%;height:{h * 100:.3f}%"></div>'
            for x, y, w, h in page_image.boxes
        )
        located = "" if page_image.boxes else (
            '<p class="document-note">The quoted words could not be located on the page image; '
            "the text below shows them.</p>")
        image = (
            f'<figure class="pdf-view"><figcaption>Page {page_image.page} of {page_image.pages}</figcaption>'
            f"{located}"
            f'<div class="pdf-scroll"><div class="pdf-page"><img alt="{escape(f"page {page_image.page} of {doc_id}")}" '
            f'src="data:image/png;base64,{page_image.png_base64}">{boxes}</div></div></figure>'
        )
    start = max(0, min(start, len(text)))
    end = max(start, min(end, len(text)))
    shown_from = _word_boundary_after(text, max(0, start - DOCUMENT_REACH), start)
    shown_to = _word_boundary_before(text, min(len(text), end + DOCUMENT_REACH), end)
    body = (
        ("…" if shown_from > 0 else "") + escape(text[shown_from:start])
        + f'<mark class="focus">{escape(text[start:end])}</mark>'
        + escape(text[end:shown_to]) + ("…" if shown_to < len(text) else "")
    )
    return f'<div class="document">{head}{image}<div class="document-text">{body}</div></div>'


# ---------------------------------------------------------------- export


def render_export(turns: Sequence[tuple[str, Answer]]) -> str:
    """The conversation as Markdown: each question, its answer, and every quote verbatim with its
    source, character offsets and page."""
    lines = ["# Conversation", ""]
    for question, answer in turns:
        lines += [f"## {question.strip()}", "", answer.text.strip(), ""]
        if answer.note:
            lines += [f"_{answer.note}_", ""]
        if answer.citations:
            lines += ["### Sources", ""]
        for c in answer.citations:
            page = f", page {c.page}" if c.page is not None else ""
            lines.append(f"[{c.number}] {c.title} — `{c.doc_id}`{page}, characters {c.start}–{c.end}")
            lines += [""] + _quoted(c.quote) + [""]
    return "\n".join(lines).rstrip() + "\n"


def _quoted(quote: str) -> list[str]:
    """A quote kept verbatim: a blockquote when on one line, else a fenced block."""
    if "\n" not in quote:
        return [f"> {quote}"]
    fence = "`" * max(3, max((len(m) for m in re.findall(r"`+", quote)), default=0) + 1)
    return [f"{fence}text", quote, fence]


# ---------------------------------------------------------------- documents tab


def render_documents(documents: Sequence[DocumentInfo]) -> str:
    if not documents:
        return '<p class="documents-empty">No documents are indexed yet.</p>'
    rows = "".join(
        f"<tr><td>{escape(d.title)}</td><td><code>{escape(d.doc_id)}</code></td><td>{d.chunks}</td>"
        f"<td>{d.pages if d.pages is not None else '–'}</td><td>{escape(_local_time(d.indexed_at))}</td></tr>"
        for d in documents
    )
    return (
        '<table class="documents"><thead><tr><th>Title</th><th>File</th><th>Chunks</th><th>Pages</th>'
        f"<th>Indexed</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def render_pager(first: int, last: int, matching: int, total: int, searching: bool) -> str:
    """Which documents the page shows, of how many."""
    if not matching:
        return f'<span class="pager">{"No document matches" if searching else "No documents"}</span>'
    of = f"{matching:,} matching of {total:,}" if searching else f"{total:,}"
    return f'<span class="pager">{first + 1:,}–{last:,} of {of}</span>'


def render_confirmation(doc_id: str) -> str:
    return (
        f'<p class="confirm">Move <code>{escape(doc_id)}</code> to the trash and out of the index? '
        "Its file is kept in the corpus folder's trash, and Undo brings it back.</p>"
    )


def render_status(documents: int, chunks: int, model: str, built_at: str, activity: str | None) -> str:
    busy = f'<div class="index-activity">{escape(activity)}…</div>' if activity else ""
    return (
        f'<div class="index-status">{_count(documents, "document")} · {_count(chunks, "chunk")} · '
        f"model <code>{escape(model)}</code> · last build {escape(built_at)}</div>{busy}"
    )


def render_no_index(reason: str, activity: str | None) -> str:
    busy = f'<div class="index-activity">{escape(activity)}…</div>' if activity else ""
    return f'<div class="index-status">{escape(reason)}</div>{busy}'


def render_report(done: Sequence[str], problems: Sequence[str]) -> str:
    """A short list of what an index action did and what it could not do, each line escaped."""
    items = [f'<li class="report-ok">{escape(line)}</li>' for line in done]
    items += [f'<li class="report-problem">{escape(line)}</li>' for line in problems]
    return f'<ul class="report">{"".join(items)}</ul>' if items else ""


def _count(number: int, noun: str) -> str:
    return f"<b>{number}</b> {noun}{'' if number == 1 else 's'}"


def _place(citation: Citation) -> str:
    return _place_of(citation.doc_id, citation.page)


def _place_of(doc_id: str, page: int | None) -> str:
    return doc_id + (f", page {page}" if page is not None else "")


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _local_time(epoch_seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(epoch_seconds))
