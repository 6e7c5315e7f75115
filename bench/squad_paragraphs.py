"""squad-dev as BEIR-style paragraph retrieval: every paragraph a document, every SQuAD v1.1
question a query judged relevant to the one paragraph it was written on.

The questions file names each question's article but not its paragraph. SQuAD lists questions
in paragraph order, and the questions of one paragraph were stored together (their ids share the
first 18 hex digits, an ObjectId's time and random parts), so each such group is assigned to the
first paragraph, from the previous group's on, that holds an answer of every question in it. On
squad-dev every group finds one, and each lands on the same paragraph as the group before it or
the next one: the alignment is exact, not a guess by answer string. Adversarial (v2.0) questions
have no answer paragraph and are left out.

    python bench/squad_paragraphs.py OUT_DIR   # writes OUT_DIR/{corpus,queries}.jsonl, qrels/test.tsv
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

SQUAD_DEV = Path(__file__).resolve().parents[2] / "shared" / "eval" / "squad-dev"


def _articles(squad: Path) -> dict[str, tuple[str, list[str]]]:
    """Article name → (title, paragraphs): title on the first line, paragraphs by blank lines."""
    articles = {}
    for path in sorted((squad / "articles").glob("*.txt")):
        title, _, body = path.read_text(encoding="utf-8").partition("\n\n")
        articles[path.stem] = (title.strip(), [p.strip() for p in body.split("\n\n") if p.strip()])
    return articles


def build(out: Path, squad: Path = SQUAD_DEV) -> Path:
    """Write the BEIR folder (split ``test``) and return it."""
    articles = _articles(squad)
    rows = [json.loads(line) for line in (squad / "questions.jsonl").open(encoding="utf-8")]
    questions = [q for q in rows if q["kind"] == "squad-v1.1"]
    qrels: list[tuple[str, str]] = []
    position: dict[str, int] = {}
    for (article, _), group in itertools.groupby(questions, key=lambda q: (q["article"], q["id"][:18])):
        group = list(group)
        paragraphs = articles[article][1]
        start = position.get(article, 0)
        found = next(
            (i for i in range(start, len(paragraphs))
             if all(any(a in paragraphs[i] for a in q["answers"]) for q in group)),
            None,
        )
        if found is None:
            raise ValueError(f"{article}: no paragraph from {start} on answers questions {group[0]['id']}…")
        position[article] = found
        qrels += [(q["id"], f"{article}-{found}") for q in group]
    (out / "qrels").mkdir(parents=True, exist_ok=True)
    with open(out / "corpus.jsonl", "w", encoding="utf-8") as f:
        for article, (title, paragraphs) in articles.items():
            for i, text in enumerate(paragraphs):
                f.write(json.dumps({"_id": f"{article}-{i}", "title": title, "text": text}) + "\n")
    with open(out / "queries.jsonl", "w", encoding="utf-8") as f:
        for q in questions:
            f.write(json.dumps({"_id": q["id"], "text": q["question"]}) + "\n")
    with open(out / "qrels" / "test.tsv", "w", encoding="utf-8") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        f.writelines(f"{q}\t{d}\t1\n" for q, d in qrels)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--squad", type=Path, default=SQUAD_DEV)
    print(build(parser.parse_args().out, parser.parse_args().squad))
