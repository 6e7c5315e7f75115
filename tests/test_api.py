"""The Python API as users call it: retrieval on the default corpus and its error messages."""

from __future__ import annotations


import pytest

from rag import answer, build_index, load_settings, retrieve
from rag.types import Passage
from tests.conftest import SEED_QUESTIONS, write_pdf

ANSWERABLE = [q for q in SEED_QUESTIONS if q["answerable"]]


@pytest.mark.parametrize("item", ANSWERABLE, ids=[q["question"] for q in ANSWERABLE])
def test_evidence_is_in_the_top_three_passages(default_index, item):
    passages = retrieve(item["question"], 3, index_dir=default_index)
    for evidence in item["evidence"]:
        assert any(evidence in p.text for p in passages), evidence


def test_passages_are_sorted_and_point_into_their_document(default_index):
    from rag.store import open_snapshot

    passages = retrieve("When did Colombia recall its ambassador?", 5, index_dir=default_index)
    assert len(passages) >= 2 and all(isinstance(p, Passage) for p in passages)
    assert [p.score for p in passages] == sorted((p.score for p in passages), reverse=True)
    doc = open_snapshot(default_index).document(passages[0].doc_id)
    for p in passages:
        assert doc.text[p.start:p.end] == p.text
        assert p.title and p.page is None and -1.0 <= p.similarity <= 1.0
    assert "recalled its ambassador" in passages[0].text


@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid"])
def test_every_mode_answers(default_index, mode):
    passages = retrieve("Nimrod anti-aircraft system", 2, index_dir=default_index, mode=mode)
    assert "Nimrod" in passages[0].text


@pytest.mark.parametrize(
    "query, k, message",
    [("", 5, "non-empty"), ("   ", 5, "non-empty"), ("coal", 0, "positive"), ("coal", -2, "positive")],
)
def test_bad_arguments_raise_value_error(default_index, query, k, message):
    with pytest.raises(ValueError, match=message):
        retrieve(query, k, index_dir=default_index)


@pytest.mark.parametrize("k", [0, -1])
def test_answer_refuses_a_k_below_one_like_retrieve(default_index, k):
    with pytest.raises(ValueError, match="positive"):  # k=0 was silently read as the default 5
        answer("When did Colombia recall its ambassador?", k=k, index_dir=default_index)


def test_unknown_mode_is_rejected(default_index):
    with pytest.raises(ValueError, match="mode"):
        retrieve("coal", index_dir=default_index, mode="fuzzy")


def test_rebuild_by_another_writer_is_picked_up(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("Lighthouses\nThe Pharos of Alexandria was a lighthouse.")
    index_dir = tmp_path / "index"
    build_index(corpus, index_dir)
    assert retrieve("Pharos lighthouse", 1, index_dir=index_dir)[0].doc_id == "a.txt"

    (corpus / "b.txt").write_text("Glaciers\nThe Perito Moreno glacier is in Patagonia.")
    build_index(corpus, index_dir)
    assert retrieve("Perito Moreno glacier", 1, index_dir=index_dir)[0].doc_id == "b.txt"


def test_folders_default_to_the_settings_folders(tmp_path, monkeypatch):
    """A call that names no folder uses the settings' (or RAG_CORPUS_DIR / RAG_INDEX_DIR), not
    ./corpus and ./index of whatever directory the process runs in."""
    from rag.api import documents

    corpus = tmp_path / "articles"
    corpus.mkdir()
    (corpus / "a.txt").write_text("Lighthouses\nThe Pharos of Alexandria was a lighthouse.")
    monkeypatch.chdir(tmp_path)  # holds no ./corpus or ./index
    settings = load_settings(corpus_dir=str(corpus), index_dir=str(tmp_path / "built"))
    assert build_index(settings=settings).added == 1
    assert (tmp_path / "built").is_dir() and not (tmp_path / "index").exists()
    assert retrieve("Pharos lighthouse", 1, settings=settings)[0].doc_id == "a.txt"
    assert [d.doc_id for d in documents(settings=settings)] == ["a.txt"]
    assert answer("What was the Pharos of Alexandria?", settings=settings).citations[0].doc_id == "a.txt"
    monkeypatch.setenv("RAG_INDEX_DIR", str(tmp_path / "built"))
    assert retrieve("Pharos lighthouse", 1)[0].doc_id == "a.txt"


def test_pdf_passages_carry_their_page(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    write_pdf(corpus / "report.pdf", [
        "Annual report. The orchard planted four hundred apple trees this spring. "
        "Frost in April damaged the blossoms on the northern slope.",
        "Finances. The cooperative sold its cider to eleven villages in the valley. "
        "Revenue rose by a third compared with the previous year.",
    ], title="Orchard report")
    settings = load_settings(chunk_tokens=24, chunk_overlap_sentences=0)
    build_index(corpus, tmp_path / "index", settings=settings)
    hits = retrieve("How many villages bought the cider?", 3, index_dir=tmp_path / "index", settings=settings)
    assert hits[0].doc_id == "report.pdf" and hits[0].title == "Orchard report"
    assert "eleven villages" in hits[0].text and hits[0].page == 2
    frost = retrieve("frost damaged blossoms", 1, index_dir=tmp_path / "index", settings=settings)[0]
    assert "Frost in April" in frost.text and frost.page == 1
