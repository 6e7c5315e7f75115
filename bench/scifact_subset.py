"""A SciFact subset with known answers, for calibrating and measuring the answerer.

Claims with evidence are split in three: the *answerable* ones have their cited abstracts in the
subset corpus; the *absent* ones do not (their abstracts are left out), so for them the corpus
does not hold the answer even though it is on the same subject. Random other abstracts fill the
corpus. Each abstract is written as ``<id>.md`` (title as heading), so doc_id ``<id>.md``.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

SCIFACT = Path(__file__).resolve().parents[2] / "shared" / "beir" / "scifact"


@dataclass
class Claim:
    query_id: str
    text: str
    relevant: set[str]  # doc_ids in the subset corpus


@dataclass
class Subset:
    answerable: list[Claim]
    absent: list[Claim]
    doc_ids: list[str]


def load_subset(answerable: int = 220, absent: int = 150, fillers: int = 150, seed: int = 0,
                scifact: Path = SCIFACT) -> Subset:
    queries = [json.loads(line) for line in (scifact / "queries.jsonl").open()]
    relevant: dict[str, set[str]] = {}
    for line in (scifact / "qrels" / "train.tsv").read_text().splitlines()[1:]:
        query_id, doc_id, _ = line.split("\t")
        relevant.setdefault(query_id, set()).add(doc_id)
    with_evidence = [q for q in queries if q["metadata"] and q["_id"] in relevant]
    rng = random.Random(seed)
    rng.shuffle(with_evidence)
    inside = with_evidence[:answerable]
    outside = with_evidence[answerable : answerable + absent]
    corpus_ids = {d for q in inside for d in relevant[q["_id"]]}
    excluded = {d for q in outside for d in relevant[q["_id"]]}
    corpus_ids -= excluded  # a claim in both groups cannot be both answerable and absent
    all_ids = [json.loads(line)["_id"] for line in (scifact / "corpus.jsonl").open()]
    others = [d for d in all_ids if d not in corpus_ids and d not in excluded]
    corpus_ids |= set(rng.sample(others, fillers))

    def claim(q: dict) -> Claim:
        return Claim(q["_id"], q["text"], {f"{d}.md" for d in relevant[q["_id"]] & corpus_ids})

    return Subset(
        answerable=[c for c in map(claim, inside) if c.relevant],
        absent=[claim(q) for q in outside],
        doc_ids=sorted(corpus_ids),
    )


def write_corpus(subset: Subset, corpus_dir: Path, scifact: Path = SCIFACT) -> Path:
    """The subset's abstracts as Markdown files in ``corpus_dir`` (rewritten only when missing)."""
    corpus_dir.mkdir(parents=True, exist_ok=True)
    wanted = set(subset.doc_ids)
    for line in (scifact / "corpus.jsonl").open():
        doc = json.loads(line)
        path = corpus_dir / f"{doc['_id']}.md"
        if doc["_id"] in wanted and not path.exists():
            path.write_text(f"# {doc['title']}\n\n{doc['text']}\n")
    return corpus_dir
