"""The labelled question sets that calibrate_refusal.py fits on and answer_bench.py measures.

Each set is a list of :class:`Case` over one index. ``answers`` are strings of which one must be
inside a quote of a good answer (SQuAD, paraphrase sets, seed questions); SciFact claims name
their relevant abstracts instead (``relevant``). Fit sets and held-out sets never share a
question; no question of the second, third and fourth paraphrase sets or the seed questions is
used for fitting (the second, seen once question by question, was tried as a fit set and left out:
bench/README.md, "Answers").

SQuAD: 8 of the 16 articles are indexed (the 6 with adversarial questions, Oxygen and
Prime_number); questions about the other 8 are out of the corpus. Articles are split between
fitting and held-out, so the held-out SQuAD questions are about articles the fit never asked about.
"""

from __future__ import annotations

import json
import os
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scifact_subset import load_subset, write_corpus  # noqa: E402

from rag import build_index  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SQUAD = SHARED / "eval" / "squad-dev"
WORK = Path(os.environ.get("RAG_BENCH_DIR", "/tmp/rag-bench"))
PARAPHRASE = REPO / "bench" / "data" / "paraphrase"
CALIBRATION_CLAIMS = 100  # the first 100 of each SciFact group fit; answer_bench.py uses the next 50

SQUAD_INDEXED = ["1973_oil_crisis", "European_Union_law", "Harvard_University", "Imperialism",
                 "Scottish_Parliament", "Steam_engine", "Oxygen", "Prime_number"]
SQUAD_FIT = {"inside": ["1973_oil_crisis", "European_Union_law", "Harvard_University", "Oxygen"],
             "outside": ["Apollo_program", "Civil_disobedience", "Ctenophora", "Fresno,_California"]}
SQUAD_HELD_OUT = {"inside": ["Imperialism", "Scottish_Parliament", "Steam_engine", "Prime_number"],
                  "outside": ["Jacksonville,_Florida", "Newcastle_upon_Tyne", "United_Methodist_Church",
                              "Victoria_and_Albert_Museum"]}

OFF_TOPIC = [
    "How do I reset my wifi router?", "What is the capital of Australia?",
    "Who won the football world cup in 2014?", "How long should I boil an egg?",
    "What is the speed of light?", "How do I write a cover letter?",
    "Which planet is the largest in the solar system?", "What is a good name for a cat?",
    "How do I install Python on Windows?", "Who painted the Mona Lisa?",
    "What time zone is Tokyo in?", "How many calories are in a banana?",
    "What is the plot of Hamlet?", "How do airplanes stay in the air?",
    "What is the exchange rate of the euro?", "How do I grow tomatoes on a balcony?",
    "When did the Berlin Wall fall?", "What does a blockchain do?",
    "Which mountain is the highest in Africa?", "How do I make pancakes?",
]


@dataclass
class Case:
    question: str
    index: Path
    answerable: bool
    kind: str  # answerable, absent (out of the corpus), adversarial, on-topic-unanswered, off-topic
    answers: list[str] = field(default_factory=list)
    relevant: set[str] = field(default_factory=set)
    history: list[tuple[str, str]] = field(default_factory=list)


def build_indexes(settings) -> dict[str, Path]:
    """Every index the sets need, built (incrementally) under WORK."""
    indexes = {"default": WORK / "default-index", "scifact": WORK / "scifact-index",
               "squad": WORK / "squad-index", "paraphrase": WORK / "paraphrase-index",
               "paraphrase-2": WORK / "paraphrase-2-index", "paraphrase-3": WORK / "paraphrase-3-index",
               "paraphrase-4": WORK / "paraphrase-4-index"}
    build_index(REPO / "corpus", indexes["default"], settings=settings)
    build_index(write_corpus(load_subset(), WORK / "scifact-corpus"), indexes["scifact"], settings=settings)
    squad_corpus = WORK / "squad-corpus"
    squad_corpus.mkdir(parents=True, exist_ok=True)
    for name in SQUAD_INDEXED:
        target = squad_corpus / f"{name}.txt"
        if not target.exists():
            target.write_text((SQUAD / "articles" / f"{name}.txt").read_text())
    build_index(squad_corpus, indexes["squad"], settings=settings)
    build_index(PARAPHRASE / "corpus", indexes["paraphrase"], settings=settings)
    build_index(PARAPHRASE / "second" / "corpus", indexes["paraphrase-2"], settings=settings)
    build_index(PARAPHRASE / "third" / "corpus", indexes["paraphrase-3"], settings=settings)
    build_index(PARAPHRASE / "fourth" / "corpus", indexes["paraphrase-4"], settings=settings)
    return indexes


def _squad(index: Path, articles: dict[str, list[str]], answerable: int, adversarial: int,
           absent: int, seed: int) -> list[Case]:
    questions = [json.loads(line) for line in (SQUAD / "questions.jsonl").open()]
    rng = random.Random(seed)

    def pick(kind: str, group: str, count: int) -> list[dict]:
        pool = [q for q in questions if q["kind"] == kind and q["article"] in articles[group]]
        return rng.sample(pool, min(count, len(pool)))

    cases = [Case(q["question"], index, True, "answerable", q["answers"])
             for q in pick("squad-v1.1", "inside", answerable)]
    cases += [Case(q["question"], index, False, "adversarial")
              for q in pick("squad-v2.0-adversarial", "inside", adversarial)]
    cases += [Case(q["question"], index, False, "absent") for q in pick("squad-v1.1", "outside", absent)]
    return cases


def _scifact(index: Path, start: int, count: int) -> list[Case]:
    subset = load_subset()
    cases = [Case(c.text, index, True, "answerable", relevant=c.relevant)
             for c in subset.answerable[start : start + count]]
    cases += [Case(c.text, index, False, "absent") for c in subset.absent[start : start + count]]
    return cases


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _paraphrase(index: Path, questions: Path) -> list[Case]:
    return [Case(q["question"], index, bool(q["answers"]), "answerable" if q["answers"] else q["kind"],
                 q["answers"]) for q in _jsonl(questions)]


def fit_sets(indexes: dict[str, Path]) -> dict[str, list[Case]]:
    dev = _jsonl(REPO / "bench" / "dev_questions.jsonl")
    default = [Case(q["question"], indexes["default"], q["answerable"],
                    "answerable" if q["answerable"] else "on-topic-unanswered", q.get("evidence", []),
                    history=[(h, "") for h in q.get("history", [])]) for q in dev]
    default += [Case(q, indexes[name], False, "off-topic") for q in OFF_TOPIC for name in ("default", "scifact")]
    return {
        "SciFact claims (fit)": _scifact(indexes["scifact"], 0, CALIBRATION_CLAIMS),
        # No adversarial questions in the fit: telling them apart needs a reading model, and
        # chasing them would refuse paraphrased answerable questions (measured on held-out only).
        "SQuAD (fit articles)": _squad(indexes["squad"], SQUAD_FIT, 150, 0, 150, seed=1),
        "dev questions + off-topic": default,
        # Held out in its first session, then read question by question while working on the
        # answerer: fitted on since, and judged by the two sets written after it.
        "first paraphrase set": _paraphrase(indexes["paraphrase"], PARAPHRASE / "questions.jsonl"),
    }


def held_out_sets(indexes: dict[str, Path]) -> dict[str, list[Case]]:
    seed = [Case(q["question"], indexes["default"], q["answerable"],
                 "answerable" if q["answerable"] else "on-topic-unanswered", q["evidence"])
            for q in _jsonl(REPO / "tests" / "data" / "seed_questions.jsonl")]
    return {
        # Its per-question results were printed once; fitting on it did not help the others.
        "second paraphrase set (seen once)": _paraphrase(indexes["paraphrase-2"],
                                                         PARAPHRASE / "second" / "questions.jsonl"),
        # Written before the changes of the sessions that judge by them; only totals printed.
        "third paraphrase set (unseen)": _paraphrase(indexes["paraphrase-3"],
                                                     PARAPHRASE / "third" / "questions.jsonl"),
        "fourth paraphrase set (unseen)": _paraphrase(indexes["paraphrase-4"],
                                                      PARAPHRASE / "fourth" / "questions.jsonl"),
        "SQuAD (held-out articles)": _squad(indexes["squad"], SQUAD_HELD_OUT, 200, 150, 200, seed=2),
        "SciFact claims (held-out)": _scifact(indexes["scifact"], CALIBRATION_CLAIMS, 50),
        "seed questions": seed,
    }
