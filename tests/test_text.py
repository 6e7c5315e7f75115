"""rag.text's spelling matcher: one symmetric-delete index serving answers (surface words, one
edit) and BM25 (index terms), asked across the parts an index is made of."""

from __future__ import annotations

from rag.text import NearWords, Vocabulary, WordCounts, correction, respelling

TEXTS = ["Colombia recalled its ambassador to Israel decades ago.",
         "The programme built eleven mini-grids; the cooperative employs 23 staff.",
         "The ambassador of Colombia met the cooperative."]


def test_near_words_finds_every_word_one_typo_away():
    near = NearWords(["ambassador", "cooperative", "staff", "ago"], shortest=4)
    assert near.near("embassador") == {"ambassador"}  # a letter changed
    assert near.near("coperative") == {"cooperative"}  # dropped
    assert near.near("stafff") == {"staff"} and near.near("satff") == {"staff"}  # added, swapped
    assert near.near("agoo") == set()  # "ago" is shorter than the matcher indexes


def test_respelling_prefers_the_most_frequent_live_word():
    parts = [NearWords(["lantern", "lanterns"], 4), NearWords(["lanterne"], 4)]
    counts = {"lantern": 1, "lanterns": 3, "lanterne": 2}
    assert respelling("lanternz", parts, lambda w: counts.get(w, 0), shortest=5, one_edit=True) == "lanterns"
    counts["lanterns"] = 0  # only in deleted documents now
    assert respelling("lanternz", parts, lambda w: counts.get(w, 0), shortest=5, one_edit=True) == "lanterne"
    assert respelling("lamp", parts, lambda w: counts.get(w, 0), shortest=5, one_edit=True) is None


def test_bm25_correction_keeps_symmetric_delete_and_five_letters():
    matchers = [NearWords(["abcx", "turbofan"], 4)]
    frequency = {"abcx": 1, "turbofan": 2}.get
    assert correction("turbofna", matchers, lambda w: frequency(w, 0)) == "turbofan"
    assert correction("abyc", matchers, lambda w: frequency(w, 0)) is None  # four letters: left alone
    # Both sides dropping a letter pairs words two edits apart: the BM25 side keeps them (as it
    # always did), the answer side does not.
    assert correction("abycx", [NearWords(["abcxz"], 4)], lambda w: 1) == "abcxz"
    assert respelling("abycx", [NearWords(["abcxz"], 4)], lambda w: 1, shortest=4, one_edit=True) is None


def test_a_vocabulary_of_parts_less_removed_documents_is_that_of_the_live_texts():
    live = Vocabulary([TEXTS[0], TEXTS[2]])
    split = Vocabulary(parts=[WordCounts(TEXTS[:2]), WordCounts(TEXTS[2:])], removed=WordCounts([TEXTS[1]]))
    for word in ("Embassador", "colombia", "grids", "mini-grids", "staf", "recalls", "cooperativ", "programme",
                 "eleven", "23", "penguins"):
        assert (split.match(word), word in split) == (live.match(word), word in live), word
    assert split.match("staf") is None and split.match("grids") is None  # only in the removed text
    assert split.count("colombia") == 2 and split.count("ambassador") == 2
