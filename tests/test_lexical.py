"""BM25 index: stemming, titles, persistence, and scores by id agreeing with the ranked list."""

from __future__ import annotations

import numpy as np
import pytest

from rag.lexical import LexicalIndex

TEXTS = [
    "Harbor logistics\nThe container terminal expanded its berths.",
    "Garden birds\nRobins are singing at dawn to defend their territory.",
    "Jet engines\nA turbofan engine burns fuel; the fan moves air around the core.",
]
IDS = [3, 8, 21]  # stable ids with gaps, as left by deleted documents


@pytest.fixture
def index():
    return LexicalIndex.build(IDS, TEXTS)


def test_stemming_matches_other_forms_of_a_word(index):
    assert index.search("robin sings", 5)[0][0] == 8
    assert index.search("engine", 5)[0][0] == 21


def test_stopwords_and_unknown_words_match_nothing(index):
    assert index.search("the and of", 5) == []
    assert index.search("zeppelin", 5) == []


def test_scores_by_id_agree_with_the_ranking(index):
    scores = index.scores("turbofan engine at the harbor")
    ranked = scores.top(10)
    assert [chunk_id for chunk_id, _ in ranked] == [21, 3]
    assert scores.of([21, 3, 8]) == pytest.approx([ranked[0][1], ranked[1][1], 0.0])
    assert scores.of([999, 0]) == [0.0, 0.0]


def test_save_and_load_round_trip(index, tmp_path):
    index.save(tmp_path / "lexical")
    loaded = LexicalIndex.load(tmp_path / "lexical")
    assert len(loaded) == 3
    assert loaded.search("territory", 5) == index.search("territory", 5)


def test_empty_index(tmp_path):
    empty = LexicalIndex.build([], [])
    empty.save(tmp_path / "lexical")
    loaded = LexicalIndex.load(tmp_path / "lexical")
    assert len(loaded) == 0
    assert loaded.search("anything", 5) == []
    assert loaded.scores("anything").of([1]) == [0.0]


def test_ids_must_ascend():
    with pytest.raises(ValueError):
        LexicalIndex.build([5, 2], ["a b", "c d"])


def _same_ranking(a: list[tuple[int, float]], b: list[tuple[int, float]]) -> bool:
    """The same chunks in the same order, with scores equal up to float rounding."""
    return [c for c, _ in a] == [c for c, _ in b] and [s for _, s in a] == pytest.approx([s for _, s in b])


def test_parts_score_as_one_index_over_their_live_rows():
    """BM25 statistics are those of every live row together, however the rows are split."""
    texts = TEXTS + ["Harbor cranes\nCranes unload the container ships at the harbor.",
                     "Robins again\nA robin defends its territory at dawn."]
    first = LexicalIndex.build([1, 2, 3], texts[:3])
    second = LexicalIndex.build([7, 9], texts[3:])
    live = np.array([True, False, True])  # the second row deleted
    split = LexicalIndex.combined([(first, live), (second, None)])
    whole = LexicalIndex.build([1, 3, 7, 9], [texts[0], texts[2], texts[3], texts[4]])
    for query in ("harbor container", "robin territory dawn", "turbofan"):
        assert _same_ranking(split.search(query, 5), whole.search(query, 5))
    assert split.scores("robin").of([2]) == [0.0]
    assert split.vocabulary() == whole.vocabulary()
    merged = LexicalIndex.merged([(first, live), (second, np.ones(2, dtype=bool))])
    assert _same_ranking(merged.search("harbor container", 5), whole.search("harbor container", 5))
    assert len(split) == len(merged) == 4


def test_vocabulary_counts_the_chunks_using_each_term(index):
    vocabulary = index.vocabulary()
    assert vocabulary["engin"] == 1 and vocabulary["territori"] == 1
    extra = LexicalIndex.build([1, 2], ["fans and engines", "an engine"])
    assert extra.vocabulary()["engin"] == 2
    assert LexicalIndex.build([], []).vocabulary() == {}


def test_a_misspelt_query_term_matches_the_word_the_chunks_use(index):
    assert index.search("turbofna", 5)[0][0] == 21  # two letters swapped
    assert index.search("teritory", 5)[0][0] == 8  # a letter dropped
    assert index.search("turbofan", 5) == index.scores("turbofan", spelling=False).top(5)
    assert index.scores("turbofna", spelling=False).top(5) == []


def test_short_words_are_not_respelt(index):
    assert index.search("fam", 5) == []  # "fan" is one letter away, but three letters are too few


def test_scores_are_lucene_bm25_with_k1_and_b_of_the_module():
    """Per query term: idf · tf / (tf + k1 · (1 − b + b · length / average length))."""
    import math

    from rag.lexical import B, K1

    texts = ["engine engine engine", "engine fuel", "fuel air birds robins"]
    scores = LexicalIndex.build([0, 1, 2], texts).scores("engine", spelling=False).of([0, 1, 2])
    lengths, average = [3, 2, 4], 3.0
    idf = math.log(1 + (3 - 2 + 0.5) / (2 + 0.5))
    expected = [idf * tf / (tf + K1 * (1 - B + B * n / average)) for tf, n in zip([3, 1, 0], lengths)]
    assert scores == pytest.approx(expected, rel=1e-5)


def test_a_misspelling_is_corrected_to_a_live_term_of_any_segment():
    """Corrections come from every segment's terms, counted over live chunks only: a word left
    only in deleted chunks is no correction, and the more frequent live neighbour wins."""
    first = LexicalIndex.build([1, 2], ["the lantern glows", "a lanterns shop"])
    second = LexicalIndex.build([5, 6, 7], ["lanterne festival", "lanterne parade", "harbour"])
    split = LexicalIndex.combined([(first, np.array([True, True])), (second, None)])
    whole = LexicalIndex.build([1, 2, 5, 6, 7], ["the lantern glows", "a lanterns shop",
                                                 "lanterne festival", "lanterne parade", "harbour"])
    for query in ("lantrn", "lanterns", "lanternee", "harbor"):
        assert _same_ranking(split.search(query, 5), whole.search(query, 5))
    deleted = LexicalIndex.combined([(LexicalIndex.build([1], ["turbofan engines"]), np.array([False])),
                                     (LexicalIndex.build([4], ["garden birds"]), None)])
    assert deleted.search("turbofna", 5) == []
    assert "turbofan" not in deleted.vocabulary()
