"""HTML for the web chat, built so that no text from a document, a model or a user becomes markup.

All text passes through :func:`escape`, which writes every ASCII punctuation character as a numeric
character reference: the browser shows the same characters, but neither the chat's Markdown
renderer nor the HTML parser can see a tag, a link, an image, emphasis or a formula in them. The
only markup on the page is the markup written here.
"""

from __future__ import annotations

import html
import re
import string
import time
from collections.abc import Callable, Sequence

from .types import DocumentInfo
from .types import Answer, Citation

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
        for match in re.finditer("|".join(map(re.escape, quotes)), text):
            start, end = match.span()
            if start > position and text[start - 1] in _OPENING_QUOTES and text[end:end + 1] in _CLOSING_QUOTES:
                start, end = start - 1, end + 1  # the <q> element draws the quotation marks
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


def render_sources(answer: Answer, turn: int, document_text: Callable[[str], str | None]) -> str:
    """Each citation with its quote highlighted in the passage around it; or why there are none.

    ``document_text(doc_id)`` returns the cited document's text, or None if it is gone from the
    index (then the quote is shown alone).
    """
    if not answer.citations:
        note = f"<p>{escape(answer.note)}</p>" if answer.note else ""
        return (
            '<div class="no-sources"><h3>No sources</h3><p>The corpus does not answer this question, '
            f"so there is nothing to quote.</p>{note}</div>"
        )
    cards = [_source_card(c, turn, document_text(c.doc_id)) for c in answer.citations]
    return '<div class="sources"><h3>Sources</h3>' + "".join(cards) + "</div>"


def render_sources_error(message: str) -> str:
    return f'<div class="no-sources"><h3>No sources</h3><p>{escape(message)}</p></div>'


def _source_card(citation: Citation, turn: int, text: str | None) -> str:
    return (
        f'<article class="source" id="{source_anchor(turn, citation.number)}">'
        f'<div class="source-head"><span class="source-number">{escape(f"[{citation.number}]")}</span> '
        f'<span class="source-title">{escape(citation.title)}</span></div>'
        f'<div class="source-meta"><span class="source-doc">{escape(citation.doc_id)}</span>'
        f"{escape(f', page {citation.page}') if citation.page is not None else ''}"
        f' · score {citation.score:.3f}</div>'
        f'<blockquote class="source-passage">{_highlighted_passage(citation, text)}</blockquote>'
        "</article>"
    )


def _highlighted_passage(citation: Citation, text: str | None) -> str:
    """The quote as ``<mark>`` inside the text around it, cut at word boundaries."""
    start, end = citation.start, citation.end
    if text is None or text[start:end] != citation.quote:
        start = text.find(citation.quote) if text else -1  # the document changed since the answer
        if start < 0:
            return f"<mark>{escape(citation.quote)}</mark>"
        end = start + len(citation.quote)
    before_start = _word_boundary_after(text, max(0, start - PASSAGE_REACH), start)
    after_end = _word_boundary_before(text, min(len(text), end + PASSAGE_REACH), end)
    return (
        ("…" if before_start > 0 else "")
        + escape(text[before_start:start])
        + f"<mark>{escape(text[start:end])}</mark>"
        + escape(text[end:after_end])
        + ("…" if after_end < len(text) else "")
    )


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
    return citation.doc_id + (f", page {citation.page}" if citation.page is not None else "")


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _local_time(epoch_seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(epoch_seconds))
