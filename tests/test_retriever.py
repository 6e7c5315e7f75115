"""Hybrid retrieval on real indexes built in temporary folders: each signal covers the other's blind spot."""

from __future__ import annotations

import pytest

from rag import build_index, retrieve
from rag.config import load_settings
from rag.retriever import CANDIDATES, _fuse, _Places
from rag.types import ChunkRecord

ARTICLES = {
    "bakery.md": "# The corner bakery\n\nThe bakery on Mill Street opened before dawn every day. Its "
    "founder, Ottilie Brzeczyszczykiewicz, baked rye loaves in a wood-fired oven. Customers queued "
    "for cinnamon rolls on Saturdays. Her flour came from the mill under contract 58213QX.",
    "cats.md": "# Living with felines\n\nFelines purr when they feel content and relaxed. A slow "
    "blink from a feline is a sign of trust. Kittens knead soft blankets with their paws.",
    "harbor.md": "# Harbor logistics\n\nThe container terminal expanded its berths in 2019. Electric "
    "cranes replaced the diesel ones to cut emissions. Shipping lines praised the faster turnaround.",
    "bread.md": "# A history of bread\n\nPeople have baked bread for thousands of years. Sourdough "
    "relies on wild yeast and lactic bacteria. Industrial bakeries made sliced loaves common.",
    "engines.md": "# Jet engines\n\nA turbofan engine compresses air, burns fuel and expels hot "
    "exhaust. The fan at the front moves most of the air around the core. Inspectors check the "
    "blades for cracks after every thousand flights.",
    "birds.md": "# Garden birds\n\nRobins sing at dawn to defend their territory. Blue tits nest in "
    "small holes in trees. Feeders with seeds attract finches in winter.",
    # Near in meaning to a surname and to a serial code, without containing either.
    "surnames.md": "# Polish surnames\n\nMany Polish family names end in -ski or -wicz. Clusters of "
    "consonants such as szcz make them hard for foreigners to spell and pronounce.",
    "serials.md": "# Serial numbers\n\nManufacturers stamp a serial number and a product code on "
    "every machine, mixing digits and letters so that each unit can be traced.",
}


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("hybrid")
    corpus = root / "corpus"
    corpus.mkdir()
    for name, text in ARTICLES.items():
        (corpus / name).write_text(text)
    build_index(corpus, root / "index")
    return root / "index"


def _top(query: str, index_dir, mode: str) -> str | None:
    passages = retrieve(query, 1, index_dir=index_dir, mode=mode)
    return passages[0].doc_id if passages else None


@pytest.mark.parametrize("rare_term", ["Brzeczyszczykiewicz", "58213QX"])
def test_hybrid_finds_an_exact_rare_term_that_dense_misses(index_dir, rare_term):
    assert _top(rare_term, index_dir, "dense") != "bakery.md"  # the premise: meaning alone misses it
    assert _top(rare_term, index_dir, "lexical") == "bakery.md"
    assert _top(rare_term, index_dir, "hybrid") == "bakery.md"


def test_hybrid_finds_a_paraphrase_that_bm25_misses(index_dir):
    query = "How do cats show they are happy?"  # no word in common with the cats article
    assert _top(query, index_dir, "lexical") != "cats.md"
    assert _top(query, index_dir, "dense") == "cats.md"
    assert _top(query, index_dir, "hybrid") == "cats.md"


def test_document_titles_count_for_keywords(index_dir):
    # "logistics" is only in the harbor article's title.
    assert _top("logistics", index_dir, "lexical") == "harbor.md"


def test_hybrid_is_the_default_mode(index_dir):
    assert load_settings().mode == "hybrid"
    assert retrieve("58213QX", 1, index_dir=index_dir)[0].doc_id == "bakery.md"


def test_bm25_follows_added_changed_and_deleted_documents(tmp_path):
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    corpus.mkdir()
    (corpus / "a.txt").write_text("Alpacas\nAlpacas are kept for their soft fleece.")
    build_index(corpus, index)
    assert retrieve("quokka", 5, index_dir=index, mode="lexical") == []

    (corpus / "b.txt").write_text("Quokkas\nThe quokka lives on Rottnest Island.")
    build_index(corpus, index)
    assert [p.doc_id for p in retrieve("quokka", 5, index_dir=index, mode="lexical")] == ["b.txt"]

    (corpus / "b.txt").write_text("Wombats\nThe wombat digs long burrows.")
    build_index(corpus, index)
    assert retrieve("quokka", 5, index_dir=index, mode="lexical") == []
    assert [p.doc_id for p in retrieve("burrows", 5, index_dir=index, mode="lexical")] == ["b.txt"]

    (corpus / "b.txt").unlink()
    build_index(corpus, index)
    assert retrieve("burrows", 5, index_dir=index, mode="lexical") == []
    assert [p.doc_id for p in retrieve("fleece", 5, index_dir=index, mode="lexical")] == ["a.txt"]


def test_overlapping_chunks_are_merged_into_one_passage(tmp_path):
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    corpus.mkdir()
    sentences = [
        "Glaciers in the Alps have lost half their volume since 1900.",
        "Meltwater from the Rhone glacier feeds Lake Geneva every summer.",
        "Scientists cover parts of the Rhone glacier with white blankets to slow the melt.",
        "Tourists visit an ice grotto carved into the glacier each year.",
    ]
    text = "Alpine glaciers\n" + " ".join(sentences)
    (corpus / "glaciers.txt").write_text(text)
    (corpus / "other.txt").write_text("Deserts\nThe Sahara is the largest hot desert on Earth.")
    settings = load_settings(chunk_tokens=40, chunk_overlap_sentences=1)
    build_index(corpus, index, settings=settings)

    passages = retrieve("Rhone glacier meltwater blankets", 5, index_dir=index, settings=settings)
    glacier = [p for p in passages if p.doc_id == "glaciers.txt"]
    assert len(glacier) == 1, "overlapping chunks of one place came back as separate passages"
    merged = glacier[0]
    assert text[merged.start:merged.end] == merged.text
    assert sentences[1] in merged.text and sentences[2] in merged.text


def test_places_of_one_document_widen_but_never_overlap():
    """Placing in score order among many places of one document: a chunk widens the one place it
    overlaps (to the document's text over both), a place holds two chunks at most, and a chunk
    overlapping two places is dropped rather than joining them."""
    text = "".join(f"s{i:03d} " for i in range(100))

    def chunk(chunk_id, start, end):
        return ChunkRecord(chunk_id, "doc", "Doc", text[start:end], start, end, None)

    places = _Places(k=12)
    for n in range(10):  # places [0, 8), [12, 20), [24, 32), ... [108, 116)
        assert places.add(chunk(n, 12 * n, 12 * n + 8), 1.0 - n / 100)
    assert places.add(chunk(20, 44, 52), 0.5)  # overlaps [48, 56) only: widens it to [44, 56)
    assert places.add(chunk(21, 54, 58), 0.4)  # overlaps [44, 56), which holds two chunks already
    assert places.add(chunk(22, 30, 40), 0.3)  # overlaps [24, 32) and [36, 44): dropped
    spans = [(r.start, r.end) for r, *_ in places.chosen]
    assert spans == [(12 * n, 12 * n + 8) if n != 4 else (44, 56) for n in range(10)]
    assert all(r.text == text[r.start:r.end] for r, *_ in places.chosen)
    assert places.add(chunk(23, 200, 204), 0.2) and places.add(chunk(24, 300, 304), 0.1)
    assert not places.add(chunk(25, 400, 404), 0.05)  # a thirteenth place: the walk is over


def test_fused_scores_do_not_depend_on_the_number_of_candidates():
    def dense_of(ids):
        return [1.0 - i / 1000 for i in ids]

    def lexical_of(ids):
        return [10.0 + i / 10 for i in ids]

    chunks = list(range(2 * CANDIDATES))
    dense = list(zip(chunks, dense_of(chunks)))  # best first: chunk 0
    lexical = list(zip(chunks[::-1], lexical_of(chunks[::-1])))  # best first: the last chunk
    deep = dict(_fuse(dense, dense_of, lexical, lexical_of, 0.5))
    shallow = dict(_fuse(dense[:CANDIDATES], dense_of, lexical[:CANDIDATES], lexical_of, 0.5))
    assert len(deep) == 2 * CANDIDATES and len(shallow) == 2 * CANDIDATES
    for chunk_id, score in shallow.items():
        assert deep[chunk_id] == pytest.approx(score)


def test_a_copy_of_a_passage_in_another_document_is_shown_once(tmp_path):
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    corpus.mkdir()
    text = "Lighthouses\nThe Fastnet lighthouse stands on a rock off the coast of Ireland."
    (corpus / "lighthouse.txt").write_text(text)
    (corpus / "lighthouse copy.txt").write_text(text)
    (corpus / "other.txt").write_text("Rivers\nThe Shannon is the longest river in Ireland.")
    build_index(corpus, index)

    doc_ids = [p.doc_id for p in retrieve("Fastnet lighthouse", 3, index_dir=index)]
    assert len(doc_ids) == 2 and "other.txt" in doc_ids
    assert ("lighthouse.txt" in doc_ids) != ("lighthouse copy.txt" in doc_ids)


def test_fused_scores_are_bounded_when_the_keyword_top_is_bunched():
    # BM25's top 100 all score about the same; the best embedding match has none of the words.
    lexical = [(i, 10.0 - i / 1000) for i in range(CANDIDATES)]
    dense = [(999, 0.9)] + [(i, 0.3) for i in range(CANDIDATES - 1)]

    def dense_of(ids):
        return [0.9 if i == 999 else 0.3 for i in ids]

    def lexical_of(ids):
        return [0.0 if i == 999 else 10.0 - i / 1000 for i in ids]

    scores = dict(_fuse(dense, dense_of, lexical, lexical_of, 0.6))
    assert all(0.0 <= s <= 1.0 for s in scores.values())
    assert scores[999] == pytest.approx(0.6)  # its dense part whole, its keyword part 0, not below
    # Deeper lists change nobody's score: the floor is the scorer's lowest, not a rank's score.
    deeper = dict(_fuse(dense, dense_of, lexical + [(500, 0.5)], lexical_of, 0.6))
    assert all(deeper[c] == pytest.approx(s) for c, s in scores.items())


def test_documents_as_results_count_documents_and_carry_their_best_passage(index_dir):
    query = "bread baked in an oven"
    documents = retrieve(query, 4, index_dir=index_dir, unit="document")
    assert len(documents) == 4 and len({p.doc_id for p in documents}) == 4
    assert [p.score for p in documents] == sorted((p.score for p in documents), reverse=True)
    passages = retrieve(query, 20, index_dir=index_dir)
    best = {}
    for p in passages:
        best.setdefault(p.doc_id, p)
    for document in documents:
        assert document.score == pytest.approx(best[document.doc_id].score)
        assert document.text in best[document.doc_id].text


def test_documents_as_results_reach_k_documents_past_a_document_of_many_chunks(tmp_path):
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    corpus.mkdir()
    long_text = " ".join(f"Volcano note {n}: the crater of the volcano erupted lava again." for n in range(40))
    (corpus / "volcano.txt").write_text("Volcano diary\n" + long_text)
    for n in range(3):
        (corpus / f"short{n}.txt").write_text(f"Note {n}\nA short note about volcano number {n}.")
    settings = load_settings(chunk_tokens=40, chunk_overlap_sentences=0)
    build_index(corpus, index, settings=settings)
    documents = retrieve("volcano crater lava", 4, index_dir=index, unit="document", settings=settings)
    assert sorted(p.doc_id for p in documents) == ["short0.txt", "short1.txt", "short2.txt", "volcano.txt"]


def test_an_unknown_result_unit_is_refused(index_dir):
    with pytest.raises(ValueError, match="unit"):
        retrieve("bread", 3, index_dir=index_dir, unit="chapter")
