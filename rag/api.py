"""The one surface that the CLI, the web app and Python users call."""

from __future__ import annotations

import itertools
import re
import shutil
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from . import answerer
from .config import Settings, load_settings
from .embedding import embedder_for
from .guard import GuardedLoader
from .indexer import build_index
from .loaders import SUPPORTED_SUFFIXES, file_hash, find_files
from .retriever import UNITS, get_retriever
from .types import Answer, Document, DocumentInfo, IndexStats, LoadError, Passage, RagError


def retrieve(
    query: str,
    k: int = 5,
    *,
    index_dir: str | Path = "index",
    mode: str | None = None,
    unit: str = "passage",
    settings: Settings | None = None,
) -> list[Passage]:
    """The ``k`` best passages for ``query``, best first (mode: hybrid, dense or lexical).

    ``unit="document"``: the ``k`` best documents instead, each as its best passage (its score
    is the document's), so ``k`` counts documents, not chunks of a few documents.
    """
    retriever = get_retriever(index_dir, settings)
    if unit == "document":
        return retriever.search_documents(query, k, mode=mode)
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {', '.join(UNITS)}, got {unit!r}")
    return retriever.search(query, k, mode=mode)


def answer(
    question: str,
    *,
    k: int | None = None,
    index_dir: str | Path = "index",
    history: list[tuple[str, str]] | None = None,
    settings: Settings | None = None,
) -> Answer:
    """An answer quoting the corpus verbatim, or an honest "not in the corpus"."""
    settings = settings or load_settings()
    retriever = get_retriever(index_dir, settings)
    return answerer.answer(question, retriever, settings, k=k, history=history)


def stream_answer(
    question: str,
    *,
    k: int | None = None,
    index_dir: str | Path = "index",
    history: list[tuple[str, str]] | None = None,
    settings: Settings | None = None,
) -> Iterator[str | Answer]:
    """Text deltas as they are produced, then the verified :class:`Answer` last."""
    settings = settings or load_settings()
    retriever = get_retriever(index_dir, settings)
    return answerer.stream_answer(question, retriever, settings, k=k, history=history)


# ---------------------------------------------------------------- managing the corpus and index


@dataclass(frozen=True)
class IndexStatus:
    """What a reader wants to know about the active index."""

    documents: int
    chunks: int
    model: str
    built_at: str  # UTC, ISO 8601, of the build that produced the active version


@dataclass
class AddResult:
    """Outcome of :func:`add_files`: what was saved under which name, what was refused and why."""

    added: list[tuple[str, str]] = field(default_factory=list)  # (uploaded name, doc_id)
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (uploaded name, reason)
    stats: IndexStats | None = None  # None when nothing was added, so no build ran


def warm_up(index_dir: str | Path = "index", *, settings: Settings | None = None) -> None:
    """Load the embedding model, and open the index if there is one, so the first question is fast.

    Best effort: a missing index or model is reported by the call that needs it, not here.
    """
    settings = settings or load_settings()
    try:
        embedder_for(settings)
        get_retriever(index_dir, settings).snapshot()
    except RagError:
        pass


def index_status(index_dir: str | Path = "index", *, settings: Settings | None = None) -> IndexStatus:
    """Documents, chunks, model and last build of the active index (IndexNotFoundError if none)."""
    snapshot = get_retriever(index_dir, settings).snapshot()
    manifest = snapshot.manifest
    return IndexStatus(len(manifest["documents"]), len(snapshot), manifest["model"], manifest["built_at"])


def documents(index_dir: str | Path = "index", *, settings: Settings | None = None) -> list[DocumentInfo]:
    """The indexed documents, by doc_id."""
    return get_retriever(index_dir, settings).documents()


def document(doc_id: str, *, index_dir: str | Path = "index", settings: Settings | None = None) -> Document:
    """One indexed document with its full text: citations' start/end point into ``text``."""
    return get_retriever(index_dir, settings).document(doc_id)


def add_files(
    paths: list[str | Path],
    corpus_dir: str | Path = "corpus",
    index_dir: str | Path = "index",
    *,
    settings: Settings | None = None,
    progress: bool = False,
) -> AddResult:
    """Copy readable files into the corpus under safe, unused names, then index incrementally.

    Each file is parsed before it is copied, so a broken one is refused with its reason and leaves
    the corpus and the index as they were. A name already taken gets a numbered suffix instead of
    overwriting; a file whose bytes are already in the corpus is refused as a duplicate.
    """
    settings = settings or load_settings()
    corpus_dir = Path(corpus_dir)
    if not corpus_dir.is_dir():
        raise RagError(f"corpus folder {corpus_dir} does not exist")
    result = AddResult()
    saved: list[Path] = []
    with GuardedLoader(settings.parse_timeout_s, settings.parse_memory_mb) as reader:
        for path in map(Path, paths):
            name = safe_file_name(path.name)
            reason = _upload_problem(path, name, corpus_dir, settings, reader)
            if reason:
                result.rejected.append((path.name, reason))
                continue
            destination = _copy_to_free_name(path, corpus_dir / name)
            saved.append(destination)
            result.added.append((path.name, destination.name))
    if not saved:
        return result
    try:
        result.stats = build_index(corpus_dir, index_dir, settings=settings, progress=progress)
    except BaseException:
        for destination in saved:  # not indexed, so not added: the corpus stays as it was
            destination.unlink(missing_ok=True)
        raise
    return result


def remove_document(
    doc_id: str,
    corpus_dir: str | Path = "corpus",
    index_dir: str | Path = "index",
    *,
    settings: Settings | None = None,
    progress: bool = False,
) -> IndexStats:
    """Delete a document's file from the corpus and drop it from the index.

    If the index cannot be updated (another build holds it), the file is put back.
    """
    settings = settings or load_settings()
    corpus_dir = Path(corpus_dir)
    path = corpus_dir / doc_id
    if not path.resolve().is_relative_to(corpus_dir.resolve()) or not path.is_file():
        raise RagError(f"{doc_id!r} is not a file in the corpus folder {corpus_dir}")
    content = path.read_bytes()
    path.unlink()
    try:
        return build_index(corpus_dir, index_dir, settings=settings, progress=progress)
    except BaseException:
        path.write_bytes(content)
        raise


_UNSAFE_NAME_CHARACTERS = re.compile(r"[^\w.()\- ]+")
_MAX_NAME_CHARS = 100


def safe_file_name(name: str) -> str:
    """A plain file name for the corpus root: no folders, no hidden files, nothing a shell minds."""
    name = unicodedata.normalize("NFKC", name).replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE_NAME_CHARACTERS.sub("_", name).strip(" .")
    stem, dot, suffix = name.rpartition(".")
    if not dot:
        stem, suffix = name, ""
    stem = stem[: _MAX_NAME_CHARS].strip(" .") or "document"
    return f"{stem}.{suffix.lower()}" if suffix else stem


def _upload_problem(
    path: Path, name: str, corpus_dir: Path, settings: Settings, reader: GuardedLoader
) -> str | None:
    """Why ``path`` must not join the corpus, or None (it is parsed the way the indexer will)."""
    suffix = Path(name).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        allowed = ", ".join(sorted(SUPPORTED_SUFFIXES))
        return f"unsupported file type '{suffix or '(none)'}' (allowed: {allowed})"
    try:
        size = path.stat().st_size
    except OSError as e:
        return f"unreadable: {e.strerror or e}"
    if size > settings.max_file_mb * 1024 * 1024:
        return f"file too large ({size / 1048576:.1f} MB > {settings.max_file_mb:g} MB limit)"
    try:
        reader.load(path, name)
    except LoadError as e:
        return str(e)
    content_hash = file_hash(path)
    for doc_id, existing in find_files(corpus_dir, max_file_mb=settings.max_file_mb)[0]:
        if existing.stat().st_size == size and file_hash(existing) == content_hash:
            return f"already in the corpus as {doc_id}"
    return None


def _copy_to_free_name(source: Path, wanted: Path) -> Path:
    """Copy to ``wanted``, or to ``name-2.ext``, ``name-3.ext``… if taken; never overwrites."""
    numbered = (wanted.with_name(f"{wanted.stem}-{n}{wanted.suffix}") for n in itertools.count(2))
    for destination in itertools.chain([wanted], numbered):
        try:
            with open(destination, "xb") as target, open(source, "rb") as data:
                shutil.copyfileobj(data, target)
        except FileExistsError:
            continue
        return destination
