"""rag.answering.relevance and the vocabulary behind it: typos are not new words."""

from __future__ import annotations

from rag.answering.relevance import correct_spelling, features, probability, unknown_share
from rag.answering.evidence import Evidence
from rag.text import Vocabulary, within_one_edit
from rag.types import Passage

VOCABULARY = Vocabulary([
    "Colombia recalled its ambassador to Israel decades ago.",
    "The programme built eleven mini-grids; the cooperative employs 23 staff.",
])


def test_within_one_edit_counts_one_insertion_deletion_substitution_or_swap():
    assert within_one_edit("embassador", "ambassador")
    assert within_one_edit("staf", "staff") and within_one_edit("colombia", "colmobia")
    assert not within_one_edit("colombia", "columbus") and not within_one_edit("cat", "dogs")


def test_vocabulary_matches_a_misspelt_word_to_the_corpus_word():
    assert VOCABULARY.match("Embassador") == "ambassador"
    assert VOCABULARY.match("grids") == "grids"  # a part of "mini-grids"
    assert VOCABULARY.match("penguins") is None
    assert VOCABULARY.match("1989") is None  # numbers are never corrected
    assert "recalls" in VOCABULARY  # same stem


def test_spelling_is_corrected_but_real_words_and_short_words_stay():
    assert correct_spelling("When did Columbia recall its embassador?", VOCABULARY) == \
        "When did colombia recall its ambassador?"
    assert correct_spelling("Who decides the price?", VOCABULARY) == "Who decides the price?"
    assert correct_spelling("How many staf?", VOCABULARY) == "How many staff?"


def test_rare_unknown_words_weigh_more_than_everyday_ones():
    everyday = unknown_share("Who leads Colombia now?", VOCABULARY)
    subject = unknown_share("What does a blockchain do for Colombia?", VOCABULARY)
    assert subject > everyday
    assert unknown_share("Colombia ambassador", VOCABULARY) == 0.0


def _evidence(cosine: float, covered: set[str]) -> list[Evidence]:
    overlap = len(covered) / 3
    best = Evidence("d", "D", 0, 10, "Colombia recalled its ambassador.", cosine + overlap / 2, cosine,
                    overlap, frozenset(covered), None, 0)
    rest = [Evidence("d", "D", 20, 30, "Other.", 0.1, 0.1, 0.0, frozenset(), None, 0)] * 3
    return [best, *rest]


def test_probability_rises_with_the_evidence():
    close = [Passage("x", "d", "D", 1.0, 0, 1, similarity=0.7)]
    far = [Passage("x", "d", "D", 1.0, 0, 1, similarity=0.2)]
    strong = features("When did Colombia recall its ambassador?", _evidence(0.8, {"colombia", "recal", "ambassador"}),
                      close, VOCABULARY)
    weak = features("What does a blockchain cost in Colombia?", _evidence(0.2, {"colombia"}), far, VOCABULARY)
    assert probability(strong) > 0.5 > probability(weak)
