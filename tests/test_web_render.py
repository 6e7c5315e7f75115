"""The web page's HTML: quotes and markers become markup, nothing from a document ever does."""

from __future__ import annotations

import html
import re
import string

import pytest

from rag.types import Answer, Citation, DocumentInfo, Passage
from rag.web_pdf import PageImage
from rag.web_render import (
    escape,
    message_text,
    open_request,
    relevance,
    render_answer,
    render_document_view,
    render_documents,
    render_export,
    render_pager,
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


def test_a_title_holding_the_quotes_words_stays_a_title():
    text = f'According to *Notes. {QUOTE}*, "{QUOTE}" [1]'
    rendered = render_answer(text, [citation()], turn=0)
    assert markup_of(rendered)[:4] == ["<em>", "</em>", "<q>", "</q>"]  # the title whole, then the quote
    assert message_text(rendered) == text.replace("*", "")


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
    assert message_text(marked(rendered)[0]) == "1" + QUOTE  # numbered inside
    passage = message_text(re.search(r'<blockquote class="source-passage">(.*?)</blockquote>', rendered).group(1))
    assert passage == DOCUMENT.replace(QUOTE, "1" + QUOTE)
    shown = message_text(rendered)
    for fact in ("[1]", "Log <b>book</b>", "notes/log.md, page 2", "fair match"):
        assert fact in shown
    assert escape("relevance score 0.812") in rendered  # the raw score, on hover
    assert "<script>" not in rendered and "<b>book" not in rendered


def marked(rendered: str) -> list[str]:
    return re.findall(r"<mark[^>]*>(.*?)</mark>", rendered)


def test_quotes_from_one_passage_share_one_card_in_marker_order():
    first, second = "Intro line.", "Closing line."
    other = Citation(3, "Elsewhere.", "other.txt", "Other", 0, 10, None, 0.7)
    citations = [citation(1, first, 0), citation(2, second, DOCUMENT.index(second)), other]
    answer = Answer(f'"Elsewhere." [3] then "{first}" [1] and "{second}" [2]', True, citations)
    texts = {"notes/log.md": DOCUMENT, "other.txt": "Elsewhere. More."}
    rendered = render_sources(answer, 0, texts.get)
    cards = re.findall(r"<article.*?</article>", rendered)
    assert len(cards) == 2 and "other.txt" in message_text(cards[0])  # cited first, shown first
    assert [message_text(m) for m in marked(cards[1])] == ["1" + first, "2" + second]
    assert "2 quotes" in message_text(cards[1]) and "[1] [2]" in message_text(cards[1])
    for number in (1, 2, 3):
        assert f'id="{source_anchor(0, number)}"' in rendered  # every marker's target is its quote


def test_relevance_is_in_words_relative_to_the_refusal_level():
    assert relevance(1.2, 0.69) == (3, "strong match")
    assert relevance(0.9, 0.69) == (2, "good match")
    assert relevance(0.7, 0.69) == (1, "fair match")


def test_open_button_carries_a_checked_request():
    rendered = render_sources(Answer("", True, [citation(page=2)]), 0, lambda _: DOCUMENT)
    value = html.unescape(re.search(r'data-open="([^"]*)"', rendered).group(1))
    request = open_request(value)
    assert request["quote"] == QUOTE and request["page"] == 2 and request["doc_id"] == "notes/log.md"
    with pytest.raises(ValueError):
        open_request('{"doc_id": 1}')


def test_document_view_marks_the_quote_and_boxes_it_on_the_page_image():
    start = DOCUMENT.index(QUOTE)
    image = PageImage(2, 3, "AAAA", ((0.1, 0.2, 0.5, 0.05),))
    rendered = render_document_view("Log", "r.pdf", DOCUMENT, start, start + len(QUOTE), 1, page=2, page_image=image)
    assert message_text(re.search(r'<mark class="focus">(.*?)</mark>', rendered).group(1)) == QUOTE
    assert "Page 2 of 3" in rendered and 'src="data:image/png;base64,AAAA"' in rendered
    assert 'style="left:10.000%;top:20.000%;width:50.000%;height:5.000%"' in rendered
    assert "<script>" not in rendered


def test_refusal_lists_related_passages_apart_from_any_answer():
    near = Passage("The keeper <i>sleeps</i> by day.", "log.md", "Log", 0.3, 0, 30)
    rendered = render_sources(Answer("The corpus does not contain the answer.", False, related=[near]), 0,
                              lambda _: None)
    assert "No sources" in rendered and "<mark" not in rendered
    related = re.search(r'<details class="related">(.*?)</details>', rendered).group(1)
    assert "not an answer" in message_text(related) and "The keeper <i>sleeps</i> by day." in message_text(related)


def test_export_keeps_every_quote_verbatim_with_its_place():
    multi_line = "Line one\nline `two`"
    answer = Answer(f'"{QUOTE}" [1] and "{multi_line}" [2]', True,
                    [citation(page=4), Citation(2, multi_line, "b.txt", "B", 5, 5 + len(multi_line), None, 0.9)])
    exported = render_export([("When is the log written?", answer)])
    assert "## When is the log written?" in exported
    assert f"> {QUOTE}" in exported and multi_line in exported
    assert f"`notes/log.md`, page 4, characters {citation().start}–{citation().end}" in exported


def test_pager_says_where_the_page_is():
    assert message_text(render_pager(25, 50, 100_000, 100_000, False)) == "26–50 of 100,000"
    assert message_text(render_pager(0, 3, 3, 10, True)) == "1–3 of 3 matching of 10"
    assert message_text(render_pager(0, 0, 0, 10, True)) == "No document matches"


def test_sources_passage_is_cut_at_words_with_ellipses():
    words = " ".join(f"word{i}" for i in range(400))
    quote = "word200 word201"
    start = words.index(quote)
    rendered = render_sources(Answer("", True, [citation(quote=quote, start=start)]), 0, lambda _: words)
    passage = re.search(r'source-passage">(.*?)</blockquote>', rendered).group(1)
    passage = message_text(re.sub(r'<sup class="quote-number">\d+</sup>', "", passage))
    assert passage.startswith("…word") and passage.endswith("…")
    assert all(re.fullmatch(r"word\d+", w) for w in passage.strip("…").split())


def test_sources_survive_a_document_that_changed_or_vanished():
    moved = "New first line.\n" + DOCUMENT
    rendered = render_sources(Answer("", True, [citation()]), 0, lambda _: moved)
    assert message_text(marked(rendered)[0]) == "1" + QUOTE
    assert "New first line." in message_text(rendered)
    gone = render_sources(Answer("", True, [citation()]), 0, lambda _: None)
    assert message_text(marked(gone)[0]) == "1" + QUOTE


def test_no_answer_means_no_sources():
    rendered = render_sources(Answer("The corpus does not contain the answer.", False), 0, lambda _: DOCUMENT)
    assert "No sources" in rendered and "source-passage" not in rendered


def test_documents_table_escapes_titles_and_names():
    rows = [DocumentInfo("a<b>.md", "<script>x</script>", 3, None, 0.0), DocumentInfo("r.pdf", "R", 9, 4, 0.0)]
    rendered = render_documents(rows)
    assert "<script>" not in rendered and "a<b>" not in rendered
    assert "<script>x</script>" in message_text(rendered) and "a<b>.md" in message_text(rendered)
