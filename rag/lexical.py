"""BM25 over chunk texts, stored as term-frequency postings so that an index can grow by segments.

bm25s bakes each term's IDF and each document's length normalisation into its stored scores, so
one changed document would mean re-scoring every chunk. Here a segment stores only what does not
depend on the rest of the index (per chunk: term frequencies and length); a query computes BM25
(the Lucene variant bm25s uses) from the statistics of the live chunks of all segments together.
Scores are therefore exactly those of one index built over the live chunks, however the index was
split into segments or which chunks were deleted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .text import NearWords, correction, index_tokens

#: Anserini's BM25 parameters, not bm25s's 1.5 / 0.75: on 128-token chunks a lower k1 (term
#: counts saturate sooner) and b (less length penalty) rank better, alone and fused, on both sets
#: measured (bench/README.md, "Retrieval that generalises").
K1 = 0.9
B = 0.4
_IDS_FILE = "chunk_ids.npy"
_TERMS_FILE = "terms.txt"
_ARRAYS = ("indptr", "rows", "tf", "lengths")


class LexicalScores:
    """One query's BM25 score for every chunk: the best ones, or any chunk's by id."""

    def __init__(self, chunk_ids: np.ndarray, scores: np.ndarray):
        self._chunk_ids = chunk_ids  # ascending
        self._scores = scores

    def top(self, k: int) -> list[tuple[int, float]]:
        """(chunk_id, score) best first; only chunks sharing at least one term with the query."""
        k = min(k, len(self._scores))
        if k < 1:
            return []
        rows = np.argpartition(-self._scores, k - 1)[:k]
        rows = rows[np.argsort(-self._scores[rows], kind="stable")]
        rows = rows[self._scores[rows] > 0]
        return list(zip(self._chunk_ids[rows].tolist(), self._scores[rows].tolist()))

    def of(self, chunk_ids: list[int]) -> list[float]:
        """Scores of the given chunks (0 for ids the index does not hold)."""
        if not len(self._chunk_ids):
            return [0.0] * len(chunk_ids)
        ids = np.asarray(chunk_ids, dtype=np.int64)
        rows = np.minimum(np.searchsorted(self._chunk_ids, ids), len(self._chunk_ids) - 1)
        found = self._chunk_ids[rows] == ids
        return np.where(found, self._scores[rows], 0.0).tolist()


def _ascending(chunk_ids) -> np.ndarray:
    """Ids as an array; ascending order is what lets scores be looked up by id in O(log n)."""
    ids = np.asarray(chunk_ids, dtype=np.int64)
    if np.any(np.diff(ids) <= 0):
        raise ValueError("chunk ids must be unique and ascending")
    return ids


def mapped(path: Path) -> np.ndarray:
    """A stored array, memory-mapped (an empty one cannot be, and needs no memory anyway), as a
    plain ndarray view: numpy's memmap subclass makes every slice and element read several
    times slower, and queries take many small ones (postings, rows)."""
    array = np.load(path, mmap_mode="r")
    return array.view(np.ndarray) if array.size else np.load(path)


class _Postings:
    """One segment's term frequencies: for term t, rows[indptr[t]:indptr[t+1]] hold it tf times."""

    def __init__(self, terms: list[str], indptr, rows, tf, lengths):
        self.terms = terms
        self.indptr, self.rows, self.tf, self.lengths = indptr, rows, tf, lengths
        self._term_ids: dict[str, int] | None = None
        self._near_words: NearWords | None = None

    @property
    def term_ids(self) -> dict[str, int]:
        """Built on first use, once per stored segment (shared by every version listing it)."""
        if self._term_ids is None:
            self._term_ids = {term: i for i, term in enumerate(self.terms)}
        return self._term_ids

    def near_words(self) -> NearWords:
        """The spelling matcher over this part's terms (of four letters or more), built once per
        stored segment."""
        if self._near_words is None:
            self._near_words = NearWords(self.terms, 4)
        return self._near_words

    @classmethod
    def from_tokens(cls, tokens: list[list[str]]) -> "_Postings":
        vocabulary: dict[str, int] = {}
        term_of_token = np.fromiter(
            (vocabulary.setdefault(t, len(vocabulary)) for doc in tokens for t in doc), dtype=np.int64)
        lengths = np.fromiter((len(doc) for doc in tokens), dtype=np.int32, count=len(tokens))
        row_of_token = np.repeat(np.arange(len(tokens), dtype=np.int64), lengths)
        return cls._from_pairs(list(vocabulary), term_of_token, row_of_token, None, lengths)

    @classmethod
    def _from_pairs(cls, terms, term_ids, rows, counts, lengths) -> "_Postings":
        """Postings from (term, row) pairs, each counted once or ``counts`` times."""
        keys = term_ids * max(1, len(lengths)) + rows
        if counts is None:
            keys, tf = np.unique(keys, return_counts=True)
        else:
            order = np.argsort(keys, kind="stable")
            keys, tf = keys[order], counts[order]
        term_of = keys // max(1, len(lengths))
        indptr = np.zeros(len(terms) + 1, dtype=np.int64)
        np.cumsum(np.bincount(term_of, minlength=len(terms)), out=indptr[1:])
        return cls(terms, indptr, (keys % max(1, len(lengths))).astype(np.int32),
                   tf.astype(np.int32), lengths.astype(np.int32))

    def postings(self, term: str) -> tuple[np.ndarray, np.ndarray]:
        t = self.term_ids.get(term)
        if t is None:
            return np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int32)
        return self.rows[self.indptr[t]:self.indptr[t + 1]], self.tf[self.indptr[t]:self.indptr[t + 1]]

    def save(self, directory: Path) -> None:
        (directory / _TERMS_FILE).write_text("\n".join(self.terms), encoding="utf-8")
        for name in _ARRAYS:
            np.save(directory / f"{name}.npy", getattr(self, name))

    @classmethod
    def load(cls, directory: Path) -> "_Postings":
        text = (directory / _TERMS_FILE).read_text(encoding="utf-8")
        arrays = [mapped(directory / f"{name}.npy") for name in _ARRAYS]
        return cls(text.split("\n") if text else [], *arrays)


class _LiveFrequency(Mapping):
    """The live document frequency of terms, looked up one term at a time (and remembered): what
    :func:`rag.text.correction` needs, without building the version's whole vocabulary."""

    def __init__(self, index: "LexicalIndex"):
        self._index = index
        self._known: dict[str, int] = {}

    def __getitem__(self, term: str) -> int:
        frequency = self._known.get(term)
        if frequency is None:
            frequency = self._known[term] = self._index.frequency(term)
        if not frequency:
            raise KeyError(term)
        return frequency

    def __contains__(self, term) -> bool:
        return isinstance(term, str) and bool(self.get(term))

    def __iter__(self):
        return iter(self._index.vocabulary())

    def __len__(self) -> int:
        return len(self._index.vocabulary())


class LexicalIndex:
    """Keyword scores for chunks, addressed by the same stable ids as the vector index.

    Made of parts (one per stored segment), each with the chunk ids of its rows and which of
    them are live; a query scores the live rows of all parts with their joint statistics."""

    def __init__(self, parts: list[tuple[_Postings, np.ndarray, np.ndarray | None]]):
        self._parts = parts
        ids = np.concatenate([ids for _, ids, _ in parts]) if parts else np.zeros(0, np.int64)
        offsets = np.cumsum([0] + [len(ids) for _, ids, _ in parts]).tolist()
        # Where each part's rows sit among all ids: a slice when the parts are in id order (as
        # an index's segments are), else positions found by sorting.
        self._positions: list[slice | np.ndarray]
        if np.all(ids[1:] > ids[:-1]):
            self._chunk_ids = ids
            self._positions = [slice(a, b) for a, b in zip(offsets[:-1], offsets[1:])]
        else:
            order = np.argsort(ids, kind="stable")
            self._chunk_ids = _ascending(ids[order])
            position = np.empty(len(ids), dtype=np.int64)
            position[order] = np.arange(len(ids))
            self._positions = [position[a:b] for a, b in zip(offsets[:-1], offsets[1:])]
        live_lengths = [p.lengths if live is None else np.asarray(p.lengths)[live] for p, _, live in parts]
        self._live_count = sum(len(lengths) for lengths in live_lengths)
        total_length = sum(float(np.sum(lengths, dtype=np.int64)) for lengths in live_lengths)
        average_length = total_length / self._live_count if self._live_count else 1.0
        # Each row's length normalisation, once per version; infinite for a deleted row, whose
        # term frequencies then add nothing.
        self._norms = []
        for postings, _, live in parts:
            norm = (K1 * ((1 - B) + B * np.asarray(postings.lengths) / average_length)).astype(np.float32)
            if live is not None:
                norm[~live] = np.inf
            self._norms.append(norm)
        self._vocabulary: dict[str, int] | None = None
        self._frequency = _LiveFrequency(self)

    @classmethod
    def build(cls, chunk_ids: list[int], texts: list[str]) -> "LexicalIndex":
        """One part over ``texts`` (the i-th text is chunk ``chunk_ids[i]``)."""
        ids = _ascending(chunk_ids)
        return cls([(_Postings.from_tokens(index_tokens(texts) if texts else []), ids, None)])

    @classmethod
    def combined(cls, parts: list[tuple["LexicalIndex", np.ndarray | None]]) -> "LexicalIndex":
        """Several single-part indexes scored together; ``live`` masks each one's rows (None: all)."""
        return cls([(index._single()[0], index._single()[1], live) for index, live in parts])

    @classmethod
    def merged(cls, parts: list[tuple["LexicalIndex", np.ndarray]]) -> "LexicalIndex":
        """One new part holding the rows that each ``keep`` mask selects, in order: a compaction
        that copies postings instead of tokenising the texts again."""
        terms: dict[str, int] = {}
        term_ids, rows, counts, lengths, ids = [], [], [], [], []
        offset = 0
        for index, keep in parts:
            postings, chunk_ids = index._single()
            new_row = np.full(len(chunk_ids), -1, dtype=np.int64)
            new_row[keep] = offset + np.arange(int(np.count_nonzero(keep)))
            remap = np.fromiter((terms.setdefault(t, len(terms)) for t in postings.terms),
                                dtype=np.int64, count=len(postings.terms))
            term_of = np.repeat(remap, np.diff(postings.indptr))
            moved = new_row[np.asarray(postings.rows)]
            kept = moved >= 0
            term_ids.append(term_of[kept])
            rows.append(moved[kept])
            counts.append(np.asarray(postings.tf)[kept])
            lengths.append(np.asarray(postings.lengths)[keep])
            ids.append(np.asarray(chunk_ids)[keep])
            offset += int(np.count_nonzero(keep))
        postings = _Postings._from_pairs(
            list(terms), np.concatenate(term_ids), np.concatenate(rows), np.concatenate(counts),
            np.concatenate(lengths))
        return cls([(postings, _ascending(np.concatenate(ids)), None)])

    def _single(self) -> tuple[_Postings, np.ndarray]:
        if len(self._parts) != 1 or self._parts[0][2] is not None:
            raise ValueError("only a single-part index without deletions is stored or combined")
        return self._parts[0][0], self._parts[0][1]

    def save(self, directory: Path) -> None:
        postings, chunk_ids = self._single()
        directory.mkdir(parents=True, exist_ok=True)
        postings.save(directory)
        np.save(directory / _IDS_FILE, chunk_ids)

    @classmethod
    def load(cls, directory: Path) -> "LexicalIndex":
        """Memory-mapped: only the postings of a query's terms are read."""
        chunk_ids = mapped(directory / _IDS_FILE)
        return cls([(_Postings.load(directory), chunk_ids, None)])

    def __len__(self) -> int:
        return self._live_count

    def vocabulary(self) -> dict[str, int]:
        """Every term of the live chunks with its document frequency (chunks holding it)."""
        if self._vocabulary is None:
            vocabulary: dict[str, int] = {}
            for postings, _, live in self._parts:
                if live is None:
                    frequencies = np.diff(postings.indptr)
                else:
                    held = np.concatenate([[0], np.cumsum(live[np.asarray(postings.rows)])])
                    frequencies = held[postings.indptr[1:]] - held[postings.indptr[:-1]]
                for term, frequency in zip(postings.terms, frequencies.tolist()):
                    if frequency:
                        vocabulary[term] = vocabulary.get(term, 0) + frequency
            self._vocabulary = vocabulary
        return self._vocabulary

    def scores(self, query: str, spelling: bool = True) -> LexicalScores:
        """Score every chunk once; hybrid search needs both the top list and other chunks' scores.

        ``spelling``: a query term the chunks never use is read as the most frequent one they do
        use one typo away, if any (measured: bench/README.md, fusion sweep)."""
        terms = index_tokens([query])[0]
        if spelling:
            terms = [t if t in self._frequency else self._correction(t) or t for t in terms]
        return self.scores_of_terms(terms)

    def frequency(self, term: str) -> int:
        """Live chunks holding ``term``: computed from its postings alone, so that neither a
        version's opening nor its first query costs the size of the vocabulary."""
        frequency = 0
        for postings, _, live in self._parts:
            rows, _ = postings.postings(term)
            frequency += len(rows) if live is None else int(np.count_nonzero(live[rows]))
        return frequency

    def scores_of_terms(self, terms: list[str]) -> LexicalScores:
        """BM25 of a bag of index terms (a repeated term counts again, as in bm25s)."""
        scores = np.zeros(len(self._chunk_ids), dtype=np.float32)
        for term in terms:
            found, frequency = [], 0
            for (postings, _, live), position, norm in zip(self._parts, self._positions, self._norms):
                rows, tf = postings.postings(term)
                if len(rows):
                    frequency += len(rows) if live is None else int(np.count_nonzero(live[rows]))
                    found.append((position, norm, rows, tf))
            if not frequency:
                continue
            idf = math.log(1 + (self._live_count - frequency + 0.5) / (frequency + 0.5))
            for position, norm, rows, tf in found:
                tf = tf.astype(np.float32)
                weight = norm[rows]
                weight += tf
                np.divide(tf, weight, out=weight)
                weight *= np.float32(idf)
                if isinstance(position, slice):
                    scores[position][rows] += weight
                else:
                    scores[position[rows]] += weight
        return LexicalScores(self._chunk_ids, scores)

    def _correction(self, term: str) -> str | None:
        """From each segment's own matcher, counted over the live chunks of all of them."""
        return correction(term, [postings.near_words() for postings, _, _ in self._parts],
                          lambda known: self._frequency.get(known, 0))

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        """(chunk_id, BM25 score) best first; only chunks sharing at least one term with the query."""
        return self.scores(query).top(k)
