"""`rag eval --answers FILE.jsonl`: how well the answers hold up on a user's own questions.

Each line of the file is one question::

    {"question": "When did Colombia recall its ambassador?", "answers": ["first of November"]}
    {"question": "How much coal went to China?", "answerable": false}
    {"question": "When did he arrive?", "history": ["Who is Yair Klein?"], "answers": ["1988"]}

``answers`` are strings of which one should appear inside a quote of a good answer; a question
with ``"answerable": false`` (or no answers) should be refused. The report gives the share of
answerable questions answered with an expected string inside a quote, the share of unanswerable
ones refused, and the share of quotes that are exactly their document's text at their offsets.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .config import Settings
from .retriever import get_retriever
from .types import Answer, RagError


@dataclass(frozen=True)
class Question:
    question: str
    answers: list[str]
    history: list[str] = field(default_factory=list)

    @property
    def answerable(self) -> bool:
        return bool(self.answers)


@dataclass
class AnswerReport:
    questions: int = 0
    answerable: int = 0
    answered_with_expected: int = 0  # found, and an expected string inside one of its quotes
    answered_otherwise: int = 0  # found, but no expected string in any quote
    falsely_refused: int = 0
    unanswerable: int = 0
    refused: int = 0
    quotes: int = 0
    quotes_verified: int = 0
    misses: list[dict] = field(default_factory=list)  # what went wrong, question by question

    @property
    def shares(self) -> dict[str, float | None]:
        def share(part: int, whole: int) -> float | None:
            return part / whole if whole else None

        return {
            "answered_with_expected": share(self.answered_with_expected, self.answerable),
            "refused_when_unanswerable": share(self.refused, self.unanswerable),
            "quotes_verified": share(self.quotes_verified, self.quotes),
        }


def read_questions(path: str | Path) -> list[Question]:
    """The questions of a JSONL file; a malformed line is an error naming the file and line."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise RagError(f"cannot read {path}: {e.strerror or e}") from e
    questions = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            question = item["question"]
            answers = [] if item.get("answerable") is False else list(item.get("answers") or [])
            history = list(item.get("history") or [])
            if not isinstance(question, str) or not question.strip():
                raise ValueError("question must be a non-empty string")
            if not all(isinstance(a, str) and a for a in answers + history):
                raise ValueError("answers and history must be lists of non-empty strings")
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise RagError(f"{path}, line {number}: not a question ({e})") from e
        questions.append(Question(question, answers, history))
    if not questions:
        raise RagError(f"{path} holds no questions")
    return questions


def holds_expected(result: Answer, answers: list[str]) -> bool:
    """True when the answer was given and one of its quotes contains an expected string (line
    breaks and runs of spaces count as one space)."""
    quotes = [" ".join(c.quote.split()) for c in result.citations]
    return result.found and any(" ".join(a.split()) in q for a in answers for q in quotes)


def evaluate_answers(path: str | Path, settings: Settings, *, progress: bool = False) -> AnswerReport:
    """Answer every question of ``path`` from the index in ``settings.index_dir`` and score it."""
    from .answering import answer

    questions = read_questions(path)
    retriever = get_retriever(settings.index_dir, settings)
    report = AnswerReport()
    for number, item in enumerate(questions, 1):
        result = answer(item.question, retriever, settings, history=[(h, "") for h in item.history])
        snapshot = retriever.snapshot()
        report.questions += 1
        for citation in result.citations:
            report.quotes += 1
            text = snapshot.document(citation.doc_id).text
            report.quotes_verified += text[citation.start : citation.end] == citation.quote
        if item.answerable:
            report.answerable += 1
            if holds_expected(result, item.answers):
                report.answered_with_expected += 1
            elif result.found:
                report.answered_otherwise += 1
                report.misses.append({"question": item.question, "problem": "answered without the expected text",
                                      "quotes": [c.quote for c in result.citations]})
            else:
                report.falsely_refused += 1
                report.misses.append({"question": item.question, "problem": "refused"})
        else:
            report.unanswerable += 1
            if not result.found:
                report.refused += 1
            else:
                report.misses.append({"question": item.question, "problem": "answered, should refuse",
                                      "quotes": [c.quote for c in result.citations]})
        if progress:
            print(f"\r{number}/{len(questions)} questions", end="", flush=True)
    if progress:
        print(flush=True)
    return report
