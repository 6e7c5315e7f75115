"""Follow-up questions made self-contained, without letting a new subject inherit an old answer.

Only a question that points back ("when did that happen?", "and his group?", "what about …?")
gets the earlier subject's words; any other question stands alone, however short. The caller
still checks the question's own words against the corpus, so "What about penguins?" after a
question about otters is refused rather than answered with the otter quote.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..text import content_terms, fold, is_content, stem, words

#: Only the most recent turns can be pointed back to; older ones are never read.
MAX_HISTORY_TURNS = 8

# Words that point back at the conversation rather than name their subject.
_REFERRING_WORDS = frozenset(
    "it its it's that this those these they them their theirs he him his she her hers there then "
    "such same former latter".split()
)
_CONTINUATIONS = ("and ", "but ", "so ", "what about", "how about", "also ", "then ")
# A question naming this many subject words of its own does not need the earlier subject.
_SELF_CONTAINED_TERMS = 5


@dataclass(frozen=True)
class Query:
    """What to search for: the question itself, or a follow-up with its subject added."""

    text: str
    question: str
    follow_up: bool  # True when ``text`` carries words from earlier turns

    @property
    def own_terms(self) -> set[str]:
        """Content terms the question itself names (not the ones it inherited)."""
        return content_terms(self.question)


def points_back(question: str) -> bool:
    """True when the question refers to something said before rather than naming it."""
    folded = fold(question).lstrip()
    return folded.startswith(_CONTINUATIONS) or any(fold(w) in _REFERRING_WORDS for w in words(question))


def resolve_follow_up(question: str, history: Sequence[tuple[str, str]] | None) -> Query:
    """The question as a :class:`Query`: a follow-up gets the subject words of the turn it points
    back to (itself resolved the same way, so a chain keeps its subject).

    Resolved oldest to newest over the last :data:`MAX_HISTORY_TURNS` questions, iteratively, so
    a history of any length costs the same and cannot overflow the stack.
    """
    subject = ""
    for earlier, _ in list(history or [])[-MAX_HISTORY_TURNS:]:
        subject = _with_subject(earlier, subject)
    text = _with_subject(question, subject)
    return Query(text, question, text != question)


def _with_subject(question: str, subject: str) -> str:
    """``question`` with ``subject``'s words it lacks, when it points back; else as it is."""
    own = content_terms(question)
    if not subject or not points_back(question) or len(own) >= _SELF_CONTAINED_TERMS:
        return question
    inherited = [w for w in words(subject) if is_content(w) and stem(w) not in own]
    if not inherited:
        return question
    return f"{question} ({' '.join(dict.fromkeys(inherited))})"
