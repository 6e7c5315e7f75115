"""rag.verify: only the documents' exact text may be shown as a quote, numbered 1..n."""

from __future__ import annotations

import logging
import re

import pytest

from rag.types import Citation, Document
from rag.verify import _tidy, is_verbatim, locate_quote, reconcile

TEXT = (
    "Colombia signed trade agreements in 1988. Exports reached $139 million by 2022.\n"
    "The army uses the Nimrod system [3] and  Galil rifles.\n"
    'He said "enough" and left.'
)
DOC = Document("a.txt", "Ties", TEXT, "hash")
PDF = Document("b.pdf", "Report", "Page one text.\n\nPage two text.", "hash2", page_starts=(0, 16))
DOCUMENTS = {d.doc_id: d for d in (DOC, PDF)}


def cite(number: int, quote: str, doc: Document = DOC, start: int | None = None) -> Citation:
    start = doc.text.find(quote) if start is None else start
    return Citation(number, quote, doc.doc_id, doc.title, start, start + len(quote), None, 0.5)


def run(text: str, *candidates: Citation) -> tuple[str, list[Citation]]:
    return reconcile(text, candidates, DOCUMENTS.__getitem__)


def markers(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"\[(\d+)\]", text)]


def test_is_verbatim_compares_the_exact_span():
    assert is_verbatim(DOC, "Colombia signed", 0, 15)
    assert not is_verbatim(DOC, "Colombia signed", 1, 16)
    assert not is_verbatim(DOC, "colombia signed", 0, 15)
    assert not is_verbatim(DOC, "", 0, 0)
    assert not is_verbatim(DOC, TEXT, 0, len(TEXT) + 1)


def test_locate_quote_exact_and_with_other_whitespace_and_quote_marks():
    assert locate_quote("the Nimrod system", TEXT) == (TEXT.find("the Nimrod"), TEXT.find(" [3]"))
    span = locate_quote("[3] and Galil rifles.\nHe said “enough”", TEXT)
    assert span is not None
    found = TEXT[span[0] : span[1]]
    assert found == '[3] and  Galil rifles.\nHe said "enough"'  # the document's text, not the search's
    assert locate_quote("Nimrod missiles", TEXT) is None
    assert locate_quote("   ", TEXT) is None


def test_verified_citations_are_renumbered_in_order_of_first_use():
    text, citations = run(
        'First "Exports reached $139 million by 2022." [7] then "Colombia signed trade agreements in 1988." [2]',
        cite(2, "Colombia signed trade agreements in 1988."),
        cite(7, "Exports reached $139 million by 2022."),
    )
    assert markers(text) == [1, 2]
    assert [c.number for c in citations] == [1, 2]
    assert citations[0].quote.startswith("Exports")


def test_a_failing_quote_is_dropped_with_its_claim_and_logged(caplog):
    wrong = Citation(2, "Colombia signed a treaty with Mars.", "a.txt", "Ties", 0, 35, None, 0.1)
    with caplog.at_level(logging.WARNING, logger="rag.verify"):
        text, citations = run(
            'It says "Colombia signed a treaty with Mars." [2] Also "the Nimrod system" [1].',
            cite(1, "the Nimrod system"), wrong,
        )
    assert "Mars" not in text
    assert text == 'Also "the Nimrod system" [1].'
    assert [c.quote for c in citations] == ["the Nimrod system"]
    assert "failed verification" in caplog.text or "not the text" in caplog.text


def test_wrong_offsets_fail_even_when_the_words_exist_elsewhere():
    moved = cite(1, "Colombia signed", start=5)
    text, citations = run('"Colombia signed" [1]', moved)
    assert citations == [] and text == ""


def test_markers_without_a_verified_citation_are_removed():
    text, citations = run('"the Nimrod system" [1] [4], and more [9].', cite(1, "the Nimrod system"))
    assert text == '"the Nimrod system" [1], and more.'
    assert len(citations) == 1


def test_unused_candidates_are_left_out_and_the_same_span_keeps_one_number():
    quote = "the Nimrod system"
    text, citations = run(
        f'"{quote}" [3] and again "{quote}" [5].',
        cite(3, quote), cite(5, quote), cite(8, "Galil rifles."),
    )
    assert markers(text) == [1, 1]
    assert [(c.number, c.quote) for c in citations] == [(1, quote)]


def test_brackets_and_quote_marks_inside_a_quote_are_part_of_it():
    quote = "The army uses the Nimrod system [3] and  Galil rifles."
    text, citations = run(f'"{quote}" [1]', cite(1, quote))
    assert text == f'"{quote}" [1]'  # its "[3]" is the document's, its double space is kept
    quoted = 'He said "enough" and left.'
    text, citations = run(f'"{quoted}" [2]', cite(2, quoted))
    assert text == f'"{quoted}" [1]' and citations[0].quote == quoted


def test_quoted_text_that_is_no_verified_quote_is_never_shown():
    text, citations = run(
        'The army "uses lasers" here. Fine: "the Nimrod system" [1].', cite(1, "the Nimrod system")
    )
    assert "lasers" not in text
    assert '"the Nimrod system" [1]' in text


def test_page_comes_from_the_document():
    _, citations = run('"Page two text." [1]', cite(1, "Page two text.", PDF))
    assert citations[0].page == 2


def test_unknown_document_fails_verification():
    ghost = Citation(1, "x", "missing.txt", "", 0, 1, None, 0.0)
    assert run('"x" [1]', ghost) == ("", [])


def test_every_marker_has_a_citation_and_every_citation_is_used():
    text, citations = run(
        '"Colombia signed trade agreements in 1988." [4] [2] "Galil rifles." [4] [6]',
        cite(4, "Colombia signed trade agreements in 1988."), cite(6, "Galil rifles."),
    )
    assert sorted(set(markers(text))) == [c.number for c in citations] == [1, 2]


@pytest.mark.parametrize("invented", [
    "‘the pact was signed in 1977’", "«the pact was signed in 1977»", "'the pact was signed in 1977'",
    "„the pact was signed in 1977“", "\n> the pact was signed in 1977\n",
])
def test_every_quotation_style_counts_as_a_quote(invented):
    document = Document("d.txt", "D", "The pact was signed in 1988 by both sides.", "h")
    good = Citation(1, "The pact was signed in 1988 by both sides.", "d.txt", "D", 0, 42, None, 1.0)
    text, citations = reconcile(f'It says "{good.quote}" [1]. It also says {invented} here.',
                                [good], lambda doc_id: document)
    assert "1977" not in text and [c.quote for c in citations] == [good.quote]


def test_apostrophes_are_not_quotes_and_labels_may_hold_quotation_marks():
    document = Document("d.txt", 'The "Quiet" Harbour', "Colombia's pact was signed in 1988.", "h")
    good = Citation(1, document.text, "d.txt", document.title, 0, len(document.text), None, 1.0)
    draft = f'According to *The "Quiet" Harbour*, "{good.quote}" [1] and Israel’s reply.'
    text, citations = reconcile(draft, [good], lambda doc_id: document, literal=['*The "Quiet" Harbour*'])
    assert text == draft and citations


def test_tidying_leaves_every_quote_as_written_and_the_longest_where_two_start_together():
    text = 'Both  say "x  y" [1]  , and "x  y z" [2]   too .'
    assert _tidy(text, ["x  y", "x  y z"]) == 'Both say "x  y" [1], and "x  y z" [2] too.'
    assert _tidy("  plain   text .  ", []) == "plain text."
