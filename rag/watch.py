"""Keep an index in step with its corpus folder: rebuild incrementally after files settle."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

from .config import Settings, load_settings
from .indexer import build_index
from .types import IndexStats, RagError

Signature = frozenset[tuple[str, int, int]]


def corpus_signature(corpus_dir: Path) -> Signature:
    """Path, size and modification time of every file: cheap to take, changes with any edit."""
    entries = set()
    for folder, _, names in os.walk(corpus_dir):
        for name in names:
            path = os.path.join(folder, name)
            try:
                info = os.lstat(path)
            except FileNotFoundError:
                continue
            entries.add((os.path.relpath(path, corpus_dir), info.st_size, info.st_mtime_ns))
    return frozenset(entries)


def watch(
    corpus_dir: str | Path = "corpus",
    index_dir: str | Path = "index",
    *,
    settings: Settings | None = None,
    interval_s: float = 1.0,
    debounce_s: float = 2.0,
    on_build: Callable[[IndexStats], None] | None = None,
    on_error: Callable[[Exception], None] | None = None,
    stop: threading.Event | None = None,
    build: Callable[[], IndexStats] | None = None,
) -> None:
    """Build now, then again whenever the folder changed and has been quiet for ``debounce_s``.

    Runs until ``stop`` is set (or forever); a failed build is reported and retried on the next
    change, never fatal. ``build`` replaces the plain incremental build, for a caller that must
    serialise it with builds of its own (the web app).
    """
    settings = settings or load_settings()
    corpus_dir, stop = Path(corpus_dir), stop or threading.Event()
    build = build or (lambda: build_index(corpus_dir, index_dir, settings=settings))
    built: Signature | None = None
    while not stop.is_set():
        seen = corpus_signature(corpus_dir)
        if seen != built:
            # Debounce: wait until a copy or a burst of edits has finished.
            while not stop.wait(debounce_s) and (latest := corpus_signature(corpus_dir)) != seen:
                seen = latest
            if stop.is_set():
                return
            try:
                stats = build()
            except RagError as e:
                if on_error:
                    on_error(e)
            else:
                if on_build:
                    on_build(stats)
            built = seen
        stop.wait(interval_s)
