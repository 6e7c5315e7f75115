"""Calibrate ``min_relevance``: the evidence score below which the answer is "not in the corpus".

Labelled data, none of it the seed questions:
  * SciFact claims whose cited abstracts are in a subset corpus (answer present) and claims whose
    abstracts were left out of it (same field, answer absent) — see scifact_subset.py;
  * bench/dev_questions.jsonl against the default corpus: questions written for its article
    (answerable, follow-ups included) and unanswerable ones, on its subject and off it;
  * general off-topic questions against both corpora (answer absent).
The threshold, together with the weight of term overlap in the evidence score
(answerer.LEXICAL_WEIGHT), maximises balanced accuracy (mean of the share of answerable questions
answered and the share of unanswerable ones refused) over all of it, each source weighing equally.

    RAG_THREADS=1 HF_HUB_OFFLINE=1 python bench/calibrate_refusal.py [--standalone-sentences]

``--standalone-sentences`` scores evidence as rag did before indexes stored sentence vectors: each
candidate sentence embedded on its own at question time (the best 4 by term overlap).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scifact_subset import load_subset, write_corpus  # noqa: E402

from rag import answerer, build_index, load_settings  # noqa: E402
from rag.answerer import find_evidence, resolve_follow_up  # noqa: E402
from rag.retriever import Retriever, get_retriever  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
WORK = Path(os.environ.get("RAG_BENCH_DIR", "/tmp/rag-bench"))
CALIBRATION_CLAIMS = 100  # the first 100 of each SciFact group; answer_bench.py uses the next 50
# The weight of term overlap beside embedding cosine is calibrated with the threshold.
LEXICAL_WEIGHTS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7)

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


def relevance(question: str, retriever, settings, history=()) -> float:
    query = resolve_follow_up(question, list(history))
    _, evidence = find_evidence(query, retriever, settings)
    return evidence[0].score if evidence else -math.inf


def best_threshold(groups: dict[str, tuple[list[float], list[float]]]) -> tuple[float, float]:
    """(threshold, balanced accuracy), each group's balanced accuracy weighing equally."""
    scores = sorted({s for pos, neg in groups.values() for s in pos + neg if s > -math.inf})
    candidates = [(a + b) / 2 for a, b in zip(scores, scores[1:])]

    def accuracy(t: float) -> float:
        parts = []
        for pos, neg in groups.values():
            rates = [sum(s >= t for s in pos) / len(pos)] if pos else []
            rates += [sum(s < t for s in neg) / len(neg)] if neg else []
            parts.append(sum(rates) / len(rates))
        return sum(parts) / len(parts)

    # Candidates lie midway between neighbouring scores; on a tie the lowest wins (answer more).
    best = max(candidates, key=accuracy)
    return best, accuracy(best)


def score_groups(subset, scifact, default, settings) -> dict[str, tuple[list[float], list[float]]]:
    dev = [json.loads(line) for line in (REPO / "bench" / "dev_questions.jsonl").open()]
    return {
        "SciFact claims": (
            [relevance(c.text, scifact, settings) for c in subset.answerable[:CALIBRATION_CLAIMS]],
            [relevance(c.text, scifact, settings) for c in subset.absent[:CALIBRATION_CLAIMS]],
        ),
        "dev questions, default corpus": (
            [relevance(q["question"], default, settings, [(h, "") for h in q.get("history", [])])
             for q in dev if q["answerable"]],
            [relevance(q["question"], default, settings) for q in dev if not q["answerable"]],
        ),
        "off-topic questions, both corpora": (
            [],
            [relevance(q, r, settings) for q in OFF_TOPIC for r in (scifact, default)],
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--standalone-sentences", action="store_true")
    if parser.parse_args().standalone_sentences:
        Retriever.sentence_vectors = lambda self, places: {}
    settings = load_settings(min_relevance=-math.inf)
    subset = load_subset()
    scifact_index = WORK / "scifact-index"
    build_index(write_corpus(subset, WORK / "scifact-corpus"), scifact_index, full=True, settings=settings)
    default_index = WORK / "default-index"
    build_index(REPO / "corpus", default_index, full=True, settings=settings)
    scifact = get_retriever(scifact_index, settings)
    default = get_retriever(default_index, settings)

    print(f"threads={settings.threads} load average={os.getloadavg()[0]:.2f}")
    calibrated = {}
    for weight in LEXICAL_WEIGHTS:
        answerer.LEXICAL_WEIGHT = weight
        groups = score_groups(subset, scifact, default, settings)
        calibrated[weight] = (groups, *best_threshold(groups))
        print(f"LEXICAL_WEIGHT {weight}: min_relevance {calibrated[weight][1]:.2f}, "
              f"balanced accuracy {calibrated[weight][2]:.3f}", flush=True)
    weight = max(calibrated, key=lambda w: calibrated[w][2])
    groups, threshold, accuracy = calibrated[weight]
    print(f"\nLEXICAL_WEIGHT {weight}:")
    print("threshold  " + "  ".join(f"{name[:24]:>24}" for name in groups))
    for t in [x / 20 for x in range(6, 17)]:
        cells = []
        for pos, neg in groups.values():
            answered = f"{sum(s >= t for s in pos) / len(pos):.2f} answered" if pos else ""
            refused = f"{sum(s < t for s in neg) / len(neg):.2f} refused" if neg else ""
            cells.append(f"{answered:>12}{refused:>12}")
        print(f"{t:9.2f}  " + "  ".join(cells))
    for name, (pos, neg) in groups.items():
        answered = f"{sum(s >= threshold for s in pos)}/{len(pos)} answered" if pos else ""
        refused = f"{sum(s < threshold for s in neg)}/{len(neg)} refused" if neg else ""
        spread = lambda xs: f"[{min(xs):.2f} … median {sorted(xs)[len(xs) // 2]:.2f} … {max(xs):.2f}]"
        print(f"{name}: {answered} {spread(pos) if pos else ''}  {refused} {spread(neg) if neg else ''}")
    print(f"LEXICAL_WEIGHT = {weight}, min_relevance = {threshold:.2f} (balanced accuracy {accuracy:.3f})")


if __name__ == "__main__":
    main()
