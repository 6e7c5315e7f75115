"""Parse files in a sandboxed child process: a skipped file with a reason, never a hung, killed or
leaked build.

A malformed file can make a parser spin or balloon (a stream or zip member that inflates to
gigabytes), and a parser bug should not see secrets. So the child is a fresh interpreter (not a
fork, so it neither inherits torch's threads nor re-runs the caller's script) that

- gets a scrubbed environment (no ``RAG_LLM_API_KEY``, ``RAG_AUTH`` or anything else of ours),
- runs under limits on address space, CPU time (per file), size of files it writes and number of
  open files, beside the wall-clock timeout the parent keeps,
- has no network where the machine allows it (a network namespace of its own, with no devices),
- answers in JSON lines on a private pipe (never pickle: the parent runs no code the child sends;
  a library printing to stdout cannot corrupt the replies).
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import resource
import select
import signal
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

from .chunking import too_long_reason
from .loaders import load_document
from .types import Document, LoadError, SourceMap

# Environment variables the child keeps: locale and paths a Python interpreter needs, no secrets.
_KEPT_ENVIRONMENT = ("PATH", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "HOME",
                     "SYSTEMROOT", "PYTHONHASHSEED")
_MAX_OPEN_FILES = 64
_MAX_WRITTEN_BYTES = 16 << 20  # parsers need no scratch files; a runaway writer is cut off here
_CLONE_NEWNET, _CLONE_NEWUSER = 0x40000000, 0x10000000
_WORD = re.compile(r"\S+")


def serve(reply_fd: int, memory_limit_mb: int, cpu_limit_s: float, max_text_mb: float = 0,
          max_tokens: int = 0) -> None:
    """The child's loop: read JSON requests on stdin, answer with JSON lines on ``reply_fd``.

    A text longer than ``max_text_mb`` million characters, or of more than ``max_tokens`` words
    (each word is at least one token), is refused here, so that chunking and embedding in the
    parent stay bounded whatever a compressed file unpacks to; the chunker enforces the exact
    token limit."""
    replies = os.fdopen(reply_fd, "w", encoding="utf-8")
    _apply_limits(memory_limit_mb)
    for line in sys.stdin:
        request = json.loads(line)
        _limit_cpu_time(cpu_limit_s)
        try:
            document = load_document(Path(request["path"]), request["doc_id"], request.get("hash"))
            if max_text_mb > 0 and len(document.text) > max_text_mb * 1_000_000:
                raise LoadError(
                    f"its text is too long to index ({len(document.text) / 1e6:.1f} million characters "
                    f"> {max_text_mb:g} million, RAG_MAX_FILE_MB)")
            if max_tokens > 0 and _has_more_words(document.text, max_tokens):
                raise LoadError(too_long_reason(max_tokens))
            reply = {"document": dict(asdict(document), source_map=document.source_map.to_json())}
        except LoadError as e:
            reply = {"error": str(e)}
        except MemoryError:
            reply = {"error": f"needs more than the {memory_limit_mb} MB allowed to read it"}
        except RecursionError:
            reply = {"error": "cannot be read: nested too deeply"}
        except Exception as e:  # a parser bug must not take the build down
            reply = {"error": f"cannot be read: {type(e).__name__}: {e}"}
        replies.write(json.dumps(reply, ensure_ascii=False) + "\n")
        replies.flush()


def _has_more_words(text: str, limit: int) -> bool:
    """Whether ``text`` has more than ``limit`` words, counting no further than that."""
    for count, _ in enumerate(_WORD.finditer(text), 1):
        if count > limit:
            return True
    return False


def _apply_limits(memory_limit_mb: int) -> None:
    if memory_limit_mb > 0:
        limit = memory_limit_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an over-long write fails, it does not kill
    resource.setrlimit(resource.RLIMIT_FSIZE, (_MAX_WRITTEN_BYTES, _MAX_WRITTEN_BYTES))
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    files = _MAX_OPEN_FILES if hard == resource.RLIM_INFINITY else min(_MAX_OPEN_FILES, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (files, files))


def _limit_cpu_time(cpu_limit_s: float) -> None:
    """Allow this request ``cpu_limit_s`` more CPU seconds than used so far; over it, the kernel
    kills the child (SIGXCPU) and the parent reports the file."""
    if cpu_limit_s <= 0:
        return
    usage = resource.getrusage(resource.RUSAGE_SELF)
    soft = int(usage.ru_utime + usage.ru_stime + cpu_limit_s) + 1
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def isolate_network() -> bool:
    """Move this process into a network namespace of its own (no interfaces but a downed
    loopback): as root directly, elsewhere inside a new user namespace where the kernel allows.
    Returns whether it worked; must run before any thread starts."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return False
    for flags in (_CLONE_NEWNET, _CLONE_NEWUSER | _CLONE_NEWNET):
        if libc.unshare(flags) == 0:
            return True
    return False


def child_environment() -> dict[str, str]:
    """The scrubbed environment the child runs with."""
    kept = {name: os.environ[name] for name in _KEPT_ENVIRONMENT if name in os.environ}
    return dict(kept, PYTHONDONTWRITEBYTECODE="1")


def _child_code(reply_fd: int, memory_limit_mb: int, cpu_limit_s: float, max_text_mb: float,
                max_tokens: int) -> str:
    package_root = str(Path(__file__).resolve().parent.parent)
    return (
        "import sys\n"
        f"sys.path.insert(0, {package_root!r})\n"  # this copy of rag, whatever put it on our path
        "from rag.guard import isolate_network, serve\n"
        "isolate_network()\n"
        f"serve({reply_fd}, {memory_limit_mb}, {cpu_limit_s!r}, {max_text_mb!r}, {max_tokens!r})\n"
    )


def _document(fields: dict) -> Document:
    return Document(
        doc_id=fields["doc_id"], title=fields["title"], text=fields["text"],
        content_hash=fields["content_hash"], page_starts=tuple(fields["page_starts"]),
        sections=tuple((start, heading) for start, heading in fields["sections"]),
        source_map=SourceMap.from_json(fields["source_map"]),
    )


class GuardedLoader:
    """``load(path, doc_id, hash)`` like ``loaders.load_document``, but sandboxed and bounded.

    One worker process is reused across files and replaced when it has to be killed. A document
    whose text is over ``max_text_mb`` million characters or ``max_tokens`` words (0: no limit)
    is refused with its reason. Each file may use ``cpu_limit_s`` seconds of CPU time (default:
    the wall-clock ``timeout_s``, which a loaded machine reaches first).
    """

    def __init__(self, timeout_s: float, memory_limit_mb: int, max_text_mb: float = 0, max_tokens: int = 0,
                 *, cpu_limit_s: float | None = None):
        self.timeout_s = timeout_s
        self.cpu_limit_s = timeout_s if cpu_limit_s is None else cpu_limit_s
        self.memory_limit_mb = memory_limit_mb
        self.max_text_mb = max_text_mb
        self.max_tokens = max_tokens
        self._worker: subprocess.Popen | None = None
        self._replies = None

    def __enter__(self) -> "GuardedLoader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def load(self, path: Path, doc_id: str, content_hash: str | None = None) -> Document:
        worker = self._ensure_worker()
        request = {"path": str(Path(path).absolute()), "doc_id": doc_id, "hash": content_hash}
        try:
            worker.stdin.write((json.dumps(request) + "\n").encode())
            worker.stdin.flush()
        except BrokenPipeError:
            self._stop_worker()
            raise LoadError("the reader process died; try again") from None
        ready, _, _ = select.select([self._replies], [], [], self.timeout_s)
        if not ready:
            self._stop_worker()
            raise LoadError(f"reading took longer than {self.timeout_s:g} s (limit: RAG_PARSE_TIMEOUT_S)")
        line = self._replies.readline()
        if not line:
            reason = self._death_reason()
            self._stop_worker()
            raise LoadError(reason)
        reply = json.loads(line)
        if "error" in reply:
            raise LoadError(reply["error"])
        return _document(reply["document"])

    def _death_reason(self) -> str:
        try:
            code = self._worker.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None
        if code == -signal.SIGXCPU or code == -signal.SIGKILL:
            return f"reading used more than {self.cpu_limit_s:g} s of CPU time (limit: RAG_PARSE_TIMEOUT_S)"
        return f"the reader crashed on it (memory limit {self.memory_limit_mb} MB: RAG_PARSE_MEMORY_MB)"

    def _ensure_worker(self) -> subprocess.Popen:
        if self._worker is None or self._worker.poll() is not None:
            self._stop_worker()
            reply_read, reply_write = os.pipe()
            try:
                self._worker = subprocess.Popen(
                    [sys.executable, "-E", "-c", _child_code(reply_write, self.memory_limit_mb, self.cpu_limit_s, self.max_text_mb,
                                                         self.max_tokens)],
                    stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                    env=child_environment(),
                    pass_fds=(reply_write,),
                )
            finally:
                os.close(reply_write)
            self._replies = os.fdopen(reply_read, "rb")
        return self._worker

    def _stop_worker(self) -> None:
        if self._worker is not None:
            self._worker.kill()
            self._worker.wait()
            if not self._worker.stdin.closed:
                self._worker.stdin.close()
            self._worker = None
        if self._replies is not None:
            self._replies.close()
            self._replies = None

    def close(self) -> None:
        if self._worker is not None and self._worker.poll() is None:
            self._worker.stdin.close()
            try:
                self._worker.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self._stop_worker()
