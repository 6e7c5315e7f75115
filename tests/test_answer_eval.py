"""`rag eval --answers`: a user's own questions scored against a real index."""

from __future__ import annotations

import json

import pytest

from rag.answer_eval import evaluate_answers, read_questions
from rag.cli import main
from rag.config import Settings
from rag.types import RagError

QUESTIONS = [
    {"question": "When did Colombia recall its ambassador to Israel?", "answers": ["first of November"]},
    {"question": "When did he arrive in Colombia?", "history": ["Who is Yair Klein?"], "answers": ["1988"]},
    {"question": "How do I bake sourdough bread?", "answerable": False},
    {"question": "What is the capital of Peru?", "answers": []},
]


@pytest.fixture
def questions_file(tmp_path):
    path = tmp_path / "questions.jsonl"
    path.write_text("\n".join(json.dumps(q) for q in QUESTIONS) + "\n")
    return path


def test_report_counts_answers_refusals_and_verified_quotes(questions_file, default_index):
    report = evaluate_answers(questions_file, Settings(index_dir=str(default_index)))
    assert (report.questions, report.answerable, report.unanswerable) == (4, 2, 2)
    assert report.answered_with_expected == 2 and report.refused == 2 and report.misses == []
    assert report.quotes >= 2 and report.quotes_verified == report.quotes
    assert report.shares == {"answered_with_expected": 1.0, "refused_when_unanswerable": 1.0,
                             "quotes_verified": 1.0}


def test_cli_prints_json(questions_file, default_index, capsys):
    assert main(["eval", "--answers", str(questions_file), "--index", str(default_index), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["shares"]["answered_with_expected"] == 1.0 and printed["questions"] == 4


def test_cli_report_into_a_file_has_no_progress_counter(questions_file, default_index, capsys):
    assert main(["eval", "--answers", str(questions_file), "--index", str(default_index)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("4 questions: 2 answerable, 2 not\n") and "\r" not in printed


def test_a_malformed_line_names_the_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"question": "fine?", "answers": ["x"]}\n{"answers": ["no question"]}\n')
    with pytest.raises(RagError, match=r"bad.jsonl, line 2"):
        read_questions(path)
    assert main(["eval"]) == 2
