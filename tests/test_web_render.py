"""The web page's HTML: quotes and markers become markup, nothing from a document ever does."""

from __future__ import annotations

import re
import string

import pytest

from rag.types import DocumentInfo
from rag.types import Answer, Citation
from rag.web_render import (
    escape,
    message_text,
    render_answer,
    render_documents,
    render_sources,
    render_user_message,
    source_anchor,
)

TRICKS = [
    '<script>alert("x")</script>',
    "<img src=x onerror=alert(1)>",
    "![beacon](http://example.com/b.png)",
    "[click](javascript:alert(1))",
    "**bold** _under_ `code` $x^2$ # heading",
    "&lt;already escaped&gt; &amp;",
]
DOCUMENT = "Intro line.\nThe keeper writes the log <script>alert(1)</script> at nine.\nClosing line."
QUOTE = "The keeper writes the log <script>alert(1)</script> at nine."


def citation(number=1, quote=QUOTE, start=DOCUMENT.index(QUOTE), page=None):
    return Citation(number, quote, "notes/log.md", "Log <b>book</b>", start, start + len(quote), page, 0.8123)


def markup_of(rendered: str) -> list[str]:
    """Every tag in ``rendered``: what a browser or a Markdown renderer would act on."""
    return re.findall(r"<[^>]*>", rendered)


@pytest.mark.parametrize("trick", TRICKS)
def test_escape_leaves_no_markup_and_no_markdown(trick):
    escaped = escape(trick)
    outside_references = re.sub(r"&#\d+;", "", escaped)
    assert not set(outside_references) & set(string.punctuation)
    assert message_text(escaped) == trick  # and the browser shows exactly the original text


def test_escape_keeps_line_breaks_visible():
    assert escape("a\nb\r\nc") == "a<br>b<br>c"


def test_answer_quotes_become_q_and_markers_link_to_their_source():
    text = f'According to *Log \\<b\\>book\\</b\\>*, "{QUOTE}" [1]'
    rendered = render_answer(text, [citation()], turn=4)
    assert markup_of(rendered) == [
        "<em>", "</em>", "<q>", "</q>",
        f'<a class="cite" href="#{source_anchor(4, 1)}" title="{markup_of_title(rendered)}">', "</a>",
    ]
    assert message_text(rendered) == f'According to Log <b>book</b>, "{QUOTE}" [1]'


def markup_of_title(rendered: str) -> str:
    return re.search(r'title="([^"]*)"', rendered).group(1)


def test_marker_tooltip_names_the_source_and_its_quote():
    rendered = render_answer(f'"{QUOTE}" [1]', [citation(page=3)], turn=0)
    assert message_text(markup_of_title(rendered)) == f"Log <b>book</b> (notes/log.md, page 3): “{QUOTE}”"


def test_markers_without_a_citation_and_unverified_quotes_stay_plain_text():
    rendered = render_answer('She said "<i>hi</i>" [2] and [1].', [citation()], turn=0)
    assert "<q>" not in rendered and "<i>" not in rendered
    assert markup_of(rendered).count("</a>") == 1
    assert message_text(rendered) == 'She said "<i>hi</i>" [2] and [1].'


def test_answer_note_is_shown_escaped():
    rendered = render_answer("No.", [], turn=0, note="model <down>")
    assert message_text(rendered).endswith("model <down>")
    assert "<down>" not in rendered


def test_user_messages_are_text():
    assert markup_of(render_user_message("<img src=x onerror=alert(1)> **hi**")) == []


def test_message_text_reads_gradio_content_parts():
    parts = [{"type": "text", "text": "a &#60;b&#62;"}, {"type": "file", "file": {}}]
    assert message_text(parts) == "a <b>"


def test_sources_highlight_the_quote_inside_its_passage():
    answer = Answer(f'"{QUOTE}" [1]', True, [citation(page=2)])
    rendered = render_sources(answer, 7, lambda doc_id: DOCUMENT)
    assert f'id="{source_anchor(7, 1)}"' in rendered
    highlighted = re.search(r"<mark>(.*?)</mark>", rendered).group(1)
    assert message_text(highlighted) == QUOTE
    passage = message_text(re.search(r'<blockquote class="source-passage">(.*?)</blockquote>', rendered).group(1))
    assert passage == DOCUMENT
    shown = message_text(rendered)
    for fact in ("[1]", "Log <b>book</b>", "notes/log.md", "page 2", "score 0.812"):
        assert fact in shown
    assert "<script>" not in rendered and "<b>book" not in rendered


def test_sources_passage_is_cut_at_words_with_ellipses():
    words = " ".join(f"word{i}" for i in range(400))
    quote = "word200 word201"
    start = words.index(quote)
    rendered = render_sources(Answer("", True, [citation(quote=quote, start=start)]), 0, lambda _: words)
    passage = message_text(re.search(r'source-passage">(.*?)</blockquote>', rendered).group(1))
    assert passage.startswith("…word") and passage.endswith("…")
    assert all(re.fullmatch(r"word\d+", w) for w in passage.strip("…").split())


def test_sources_survive_a_document_that_changed_or_vanished():
    moved = "New first line.\n" + DOCUMENT
    rendered = render_sources(Answer("", True, [citation()]), 0, lambda _: moved)
    assert message_text(re.search(r"<mark>(.*?)</mark>", rendered).group(1)) == QUOTE
    assert "New first line." in message_text(rendered)
    gone = render_sources(Answer("", True, [citation()]), 0, lambda _: None)
    assert message_text(re.search(r"<mark>(.*?)</mark>", gone).group(1)) == QUOTE


def test_no_answer_means_no_sources():
    rendered = render_sources(Answer("The corpus does not contain the answer.", False), 0, lambda _: DOCUMENT)
    assert "No sources" in rendered and "source-passage" not in rendered


def test_documents_table_escapes_titles_and_names():
    rows = [DocumentInfo("a<b>.md", "<script>x</script>", 3, None, 0.0), DocumentInfo("r.pdf", "R", 9, 4, 0.0)]
    rendered = render_documents(rows)
    assert "<script>" not in rendered and "a<b>" not in rendered
    assert "<script>x</script>" in message_text(rendered) and "a<b>.md" in message_text(rendered)
