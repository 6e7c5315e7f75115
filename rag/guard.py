"""Parse files in a child process with a time and memory limit.

A malformed PDF can make a parser spin or balloon (a stream that decompresses to gigabytes); in
a child process that is a skipped file with a reason instead of a hung or killed build. The child
is a fresh interpreter (not a fork), so it neither inherits torch's threads nor re-runs the
caller's script.
"""

from __future__ import annotations

import os
import pickle
import resource
import select
import subprocess
import sys
from pathlib import Path

from .loaders import load_document
from .types import Document, LoadError


def serve(memory_limit_mb: int) -> None:
    """The child's loop: read (path, doc_id, hash) requests on stdin, answer on stdout."""
    if memory_limit_mb > 0:
        limit = memory_limit_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    requests, replies = sys.stdin.buffer, sys.stdout.buffer
    while True:
        try:
            request = pickle.load(requests)
        except EOFError:
            return
        try:
            reply = load_document(*request)
        except LoadError as e:
            reply = e
        except MemoryError:
            reply = LoadError(f"needs more than the {memory_limit_mb} MB allowed to read it")
        except Exception as e:  # a parser bug must not take the build down
            reply = LoadError(f"cannot be read: {type(e).__name__}: {e}")
        pickle.dump(reply, replies)
        replies.flush()


def _child_environment() -> dict[str, str]:
    """This process's environment, with this copy of rag importable whatever sys.path tricks
    put it there."""
    package_root = str(Path(__file__).resolve().parent.parent)
    paths = [package_root, *filter(None, [os.environ.get("PYTHONPATH")])]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(paths))


class GuardedLoader:
    """``load(path, doc_id, hash)`` like ``loaders.load_document``, but bounded in time and memory.

    One worker process is reused across files and replaced when it has to be killed.
    """

    def __init__(self, timeout_s: float, memory_limit_mb: int):
        self.timeout_s = timeout_s
        self.memory_limit_mb = memory_limit_mb
        self._worker: subprocess.Popen | None = None

    def __enter__(self) -> "GuardedLoader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def load(self, path: Path, doc_id: str, content_hash: str | None = None) -> Document:
        worker = self._ensure_worker()
        try:
            pickle.dump((Path(path), doc_id, content_hash), worker.stdin)
            worker.stdin.flush()
        except BrokenPipeError:
            self._stop_worker()
            raise LoadError("the reader process died; try again") from None
        ready, _, _ = select.select([worker.stdout], [], [], self.timeout_s)
        if not ready:
            self._stop_worker()
            raise LoadError(f"reading took longer than {self.timeout_s:g} s (limit: RAG_PARSE_TIMEOUT_S)")
        try:
            reply = pickle.load(worker.stdout)
        except (EOFError, pickle.UnpicklingError):
            self._stop_worker()
            raise LoadError(
                f"the reader crashed on it (memory limit {self.memory_limit_mb} MB: RAG_PARSE_MEMORY_MB)"
            ) from None
        if isinstance(reply, LoadError):
            raise reply
        return reply

    def _ensure_worker(self) -> subprocess.Popen:
        if self._worker is None or self._worker.poll() is not None:
            self._stop_worker()
            self._worker = subprocess.Popen(
                [sys.executable, "-c", f"from rag.guard import serve; serve({self.memory_limit_mb})"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=_child_environment(),
            )
        return self._worker

    def _stop_worker(self) -> None:
        if self._worker is not None:
            self._worker.kill()
            self._worker.wait()
            self._worker.stdin.close()
            self._worker.stdout.close()
            self._worker = None

    def close(self) -> None:
        if self._worker is not None and self._worker.poll() is None:
            self._worker.stdin.close()
            try:
                self._worker.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self._stop_worker()

