"""Optional generative engine: any OpenAI-compatible ``/chat/completions`` endpoint, streamed.

Nothing here runs unless ``llm_base_url`` is set. The model is asked to quote the numbered passages
verbatim with ``[n]`` markers; :func:`draft_from_reply` turns its reply into a draft whose quotes are
the documents' exact text (or marked for dropping), which :func:`rag.verify.reconcile` then checks.
Only the standard library is used, so the optional engine costs no dependency.
"""

from __future__ import annotations

import json
import logging
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace

from .config import Settings
from .types import Citation, Document, Passage
from .verify import locate_quote

log = logging.getLogger(__name__)

_MAX_TOKENS = 400
_HISTORY_TURNS = 3
_SYSTEM_PROMPT = (
    "You answer questions using only the numbered passages the user gives you. "
    "Quote the passages word for word inside double quotation marks and put the passage number "
    'in square brackets right after each quote, like this: "exact words from the passage" [2]. '
    "Use one to three short quotes and a few plain words to connect them. Never put anything in "
    "quotation marks that is not copied exactly from a passage. If the passages do not answer the "
    "question, say that they do not."
)
# A quoted string with the markers that follow it, or a marker group on its own.
_QUOTE_OR_MARKERS = re.compile(
    r"(?P<quote>\"[^\"\n]+\"|“[^”\n]+”)(?P<gap>[ \t]*[.,;:]?[ \t]*)"
    r"(?P<markers>(?:\[\d+(?:\s*,\s*\d+)*\][ \t]*)*)"
    r"|(?P<stray>\[\d+(?:\s*,\s*\d+)*\])"
)


class LLMUnavailable(Exception):
    """The endpoint could not give an answer: unreachable, timed out, or replied with an error."""


def is_configured(settings: Settings) -> bool:
    return bool(settings.llm_base_url.strip())


def build_messages(
    question: str, passages: Sequence[Passage], history: Sequence[tuple[str, str]] = ()
) -> list[dict[str, str]]:
    """Chat messages: instructions, the last few turns, then the numbered passages and question."""
    numbered = "\n\n".join(
        f"[{number}] ({passage.title})\n{passage.text}" for number, passage in enumerate(passages, 1)
    )
    messages = [{"role": "system", "content": _SYSTEM_PROMPT}]
    for previous_question, previous_answer in list(history)[-_HISTORY_TURNS:]:
        messages += [
            {"role": "user", "content": previous_question},
            {"role": "assistant", "content": previous_answer},
        ]
    messages.append({"role": "user", "content": f"Passages:\n\n{numbered}\n\nQuestion: {question}"})
    return messages


def stream_reply(messages: list[dict[str, str]], settings: Settings) -> Iterator[str]:
    """The reply's text deltas as the endpoint streams them (SSE); raises LLMUnavailable.

    ``llm_timeout`` bounds both each wait for data and the whole reply.
    """
    url = settings.llm_base_url.rstrip("/") + "/chat/completions"
    body = {
        "model": settings.llm_model or "default",
        "messages": messages,
        "stream": True,
        "temperature": 0,
        "max_tokens": _MAX_TOKENS,
    }
    headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
    if settings.llm_api_key:
        headers["Authorization"] = f"Bearer {settings.llm_api_key}"
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    deadline = time.monotonic() + settings.llm_timeout
    try:
        with urllib.request.urlopen(request, timeout=settings.llm_timeout) as response:
            if response.headers.get_content_type() == "text/event-stream":
                yield from _read_events(response, deadline, settings.llm_timeout)
            else:  # a server that ignores "stream" answers with one JSON body
                yield _message_content(json.loads(response.read()))
    except urllib.error.HTTPError as e:
        detail = e.read(300).decode("utf-8", "replace").strip()
        raise LLMUnavailable(f"{url} answered HTTP {e.code}: {detail or e.reason}") from e
    except urllib.error.URLError as e:
        raise LLMUnavailable(f"cannot reach {url}: {e.reason}") from e
    except TimeoutError as e:
        raise LLMUnavailable(f"{url} did not answer within {settings.llm_timeout:g} s") from e
    except (OSError, ValueError) as e:  # connection reset, malformed JSON…
        raise LLMUnavailable(f"bad reply from {url}: {e}") from e


def _read_events(response, deadline: float, timeout: float) -> Iterator[str]:
    for raw_line in response:
        if time.monotonic() > deadline:
            raise TimeoutError(f"reply not finished within {timeout:g} s")
        line = raw_line.decode("utf-8").strip()
        if not line.startswith("data:"):
            continue  # blank separators, comments, event names
        data = line[len("data:"):].strip()
        if data == "[DONE]":
            return
        event = json.loads(data)
        if "error" in event:
            raise ValueError(f"endpoint error: {event['error']}")
        choices = event.get("choices") or [{}]
        delta = (choices[0].get("delta") or {}).get("content")
        if delta:
            yield delta


def _message_content(reply: dict) -> str:
    try:
        return reply["choices"][0]["message"]["content"] or ""
    except (KeyError, IndexError, TypeError) as e:
        raise ValueError(f"no message in reply: {str(reply)[:200]}") from e


def draft_from_reply(
    reply: str, passages: Sequence[Passage], document_for: Callable[[str], Document]
) -> tuple[str, list[Citation]]:
    """The reply as a draft for :func:`rag.verify.reconcile`, with one candidate per quote.

    A quote is looked for in the passages its markers name, then in their documents, then in the
    other passages; found, it is rewritten to the document's exact text. A quote found nowhere
    stays as the model wrote it, under a candidate that cannot verify, so its claim is dropped.
    Markers that follow no quote carry no evidence and are removed.
    """
    candidates: list[Citation] = []
    pieces: list[str] = []
    position = 0
    for match in _QUOTE_OR_MARKERS.finditer(reply):
        before = reply[position : match.start()]
        position = match.end()
        if match.group("stray"):
            log.info("dropped marker %s that follows no quote", match.group("stray"))
            pieces.append(before.rstrip(" \t"))
            continue
        pieces.append(before)
        wrote = match.group("quote")[1:-1]
        named = [int(n) for n in re.findall(r"\d+", match.group("markers"))]
        number = len(candidates) + 1
        candidate = _locate(wrote, named, passages, document_for)
        if candidate is None:
            log.info("quote not found in the passages: %r", wrote)
            cited = passages[named[0] - 1] if named and 1 <= named[0] <= len(passages) else passages[0]
            candidate = Citation(number, wrote, cited.doc_id, cited.title, -1, -1, None, 0.0)
        candidates.append(replace(candidate, number=number))
        trailing = match.group("markers")[len(match.group("markers").rstrip()):]
        pieces.append(f'"{candidates[-1].quote}"{match.group("gap").rstrip()} [{number}]{trailing}')
    pieces.append(reply[position:])
    return "".join(pieces), candidates


def _locate(
    wrote: str, named: list[int], passages: Sequence[Passage], document_for: Callable[[str], Document]
) -> Citation | None:
    cited = [passages[n - 1] for n in named if 1 <= n <= len(passages)]
    others = [p for p in passages if p not in cited]
    # Models often add or drop the full stop that ends what they quote.
    variants = dict.fromkeys([wrote.strip(), wrote.strip().rstrip(".,;:!? ")])
    for quote in filter(None, variants):
        for passage in cited:
            span = locate_quote(quote, passage.text)
            if span:
                return _citation(document_for(passage.doc_id), passage, passage.start + span[0],
                                 passage.start + span[1])
        for passage in cited:
            document = document_for(passage.doc_id)
            span = locate_quote(quote, document.text)
            if span:
                return _citation(document, passage, *span)
        for passage in others:
            span = locate_quote(quote, passage.text)
            if span:
                return _citation(document_for(passage.doc_id), passage, passage.start + span[0],
                                 passage.start + span[1])
    return None


def _citation(document: Document, passage: Passage, start: int, end: int) -> Citation:
    return Citation(0, document.text[start:end], document.doc_id, document.title, start, end,
                    document.page_at(start), passage.similarity)
