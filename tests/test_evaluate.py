"""`rag eval` on a tiny BEIR-format folder, against metric values worked out by hand."""

from __future__ import annotations

import json
import math
import random

import pytest

from rag.cli import main
from rag.evaluate import load_beir, ndcg_at, recall_at, reciprocal_rank_at, score_run

CORPUS = [
    {"_id": "alpaca", "title": "Alpacas", "text": "Alpacas are kept for their soft fleece."},
    {"_id": "quokka", "title": "Quokkas", "text": "The quokka lives on Rottnest Island off Perth."},
    {"_id": "wombat", "title": "Wombats", "text": "The wombat digs long burrows with strong claws."},
    {"_id": "lakes", "title": "Island lakes", "text": "Rottnest Island has several salt lakes."},
]
QUERIES = [
    {"_id": "q1", "text": "alpaca fleece"},
    {"_id": "q2", "text": "quokka Rottnest Island"},
    {"_id": "q3", "text": "wombat burrows"},
    {"_id": "q4", "text": "salt lakes"},
]
# q1: two relevant documents, one of them not in the corpus; q2: the relevant document is second
# (the quokka article shares three terms, the lakes one two); q3 has only a judgement of 0, so it
# is not scored; q4 is judged in another split.
TEST_QRELS = "query-id\tcorpus-id\tscore\nq1\talpaca\t1\nq1\tmissing\t1\nq2\tlakes\t1\nq3\twombat\t0\n"
TRAIN_QRELS = "query-id\tcorpus-id\tscore\nq4\tlakes\t1\n"


@pytest.fixture
def beir_dir(tmp_path):
    folder = tmp_path / "tiny"
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text("\n".join(json.dumps(d) for d in CORPUS) + "\n")
    (folder / "queries.jsonl").write_text("\n".join(json.dumps(q) for q in QUERIES) + "\n")
    (folder / "qrels" / "test.tsv").write_text(TEST_QRELS)
    (folder / "qrels" / "train.tsv").write_text(TRAIN_QRELS)
    return folder


def test_split_selects_judged_queries(beir_dir):
    data = load_beir(beir_dir, "test")
    assert set(data.queries) == {"q1", "q2"}
    assert len(data.corpus) == 4
    assert set(load_beir(beir_dir, "train").queries) == {"q4"}


def test_rag_eval_reports_hand_computed_metrics(beir_dir, capsys):
    assert main(["eval", "--beir", str(beir_dir), "--split", "test", "--mode", "lexical", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)

    # q1: relevant at rank 1, the other relevant document never found.
    q1 = {"ndcg@10": 1 / (1 + 1 / math.log2(3)), "recall@10": 0.5, "recall@100": 0.5, "mrr@10": 1.0}
    # q2: its only relevant document at rank 2.
    q2 = {"ndcg@10": 1 / math.log2(3), "recall@10": 1.0, "recall@100": 1.0, "mrr@10": 0.5}
    for name in q1:
        assert report["metrics"][name] == pytest.approx((q1[name] + q2[name]) / 2), name
    assert (report["queries"], report["documents"], report["split"]) == (2, 4, "test")
    assert report["index_seconds"] > 0
    assert 0 < report["latency_ms"]["p50"] <= report["latency_ms"]["p95"]


def test_rag_eval_prints_a_readable_report(beir_dir, capsys):
    assert main(["eval", "--beir", str(beir_dir), "--split", "train"]) == 0
    out = capsys.readouterr().out
    assert "1 queries, 4 documents" in out and "mode hybrid" in out
    assert "ndcg@10     1.0000" in out


def test_missing_split_names_the_splits_there(beir_dir, capsys):
    assert main(["eval", "--beir", str(beir_dir), "--split", "dev"]) == 2
    assert "splits here: test, train" in capsys.readouterr().err


def test_metrics_match_by_hand():
    judged = {"a": 2, "b": 1, "c": 0}
    ranking = ["x", "b", "a", "c"]
    ideal = 2 + 1 / math.log2(3)
    assert ndcg_at(ranking, judged, 10) == pytest.approx((1 / math.log2(3) + 2 / 2) / ideal)
    assert ndcg_at(ranking, judged, 2) == pytest.approx((1 / math.log2(3)) / ideal)
    assert recall_at(ranking, judged, 2) == 0.5
    assert reciprocal_rank_at(ranking, judged, 10) == 0.5
    assert reciprocal_rank_at(ranking, judged, 1) == 0.0


def test_metrics_agree_with_ranx():
    ranx = pytest.importorskip("ranx")
    rng = random.Random(7)
    documents = [f"d{i}" for i in range(300)]
    qrels = {
        f"q{n}": {d: rng.choice([1, 1, 2, 3]) for d in rng.sample(documents, rng.randint(1, 8))}
        for n in range(40)
    }
    run = {q: rng.sample(documents, 150) for q in qrels}
    ours = score_run(run, qrels)
    scored = {q: {d: float(len(r) - i) for i, d in enumerate(r)} for q, r in run.items()}
    theirs = ranx.evaluate(ranx.Qrels(qrels), ranx.Run(scored), list(ours))
    assert ours == pytest.approx(theirs, abs=1e-9)
