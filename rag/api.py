"""The one surface that the CLI, the web app and Python users call."""

from __future__ import annotations

import itertools
import re
import shutil
import time
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from . import answering
from .config import Settings, load_settings
from .embedding import embedder_for
from .guard import GuardedLoader
from .indexer import build_index, build_lock, build_locked
from .loaders import SUPPORTED_SUFFIXES, TRASH_FOLDER, file_hash, find_files, unsupported_reason
from .retriever import UNITS, get_retriever
from .types import Answer, Document, DocumentInfo, IndexStats, LoadError, Passage, RagError


def retrieve(
    query: str,
    k: int = 5,
    *,
    index_dir: str | Path | None = None,
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
    index_dir: str | Path | None = None,
    history: list[tuple[str, str]] | None = None,
    settings: Settings | None = None,
) -> Answer:
    """An answer quoting the corpus verbatim, or an honest "not in the corpus"."""
    settings = settings or load_settings()
    retriever = get_retriever(index_dir, settings)
    return answering.answer(question, retriever, settings, k=k, history=history)


def stream_answer(
    question: str,
    *,
    k: int | None = None,
    index_dir: str | Path | None = None,
    history: list[tuple[str, str]] | None = None,
    settings: Settings | None = None,
) -> Iterator[str | Answer]:
    """Text deltas as they are produced, then the verified :class:`Answer` last."""
    settings = settings or load_settings()
    retriever = get_retriever(index_dir, settings)
    return answering.stream_answer(question, retriever, settings, k=k, history=history)


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


def warm_up(index_dir: str | Path | None = None, *, settings: Settings | None = None) -> None:
    """Load the embedding model, and open the index if there is one, so the first question is fast.

    Best effort: a missing index or model is reported by the call that needs it, not here.
    """
    settings = settings or load_settings()
    try:
        embedder_for(settings)
        get_retriever(index_dir, settings).snapshot()
    except RagError:
        pass


def index_status(index_dir: str | Path | None = None, *, settings: Settings | None = None) -> IndexStatus:
    """Documents, chunks, model and last build of the active index (IndexNotFoundError if none)."""
    snapshot = get_retriever(index_dir, settings).snapshot()
    manifest = snapshot.manifest
    return IndexStatus(len(manifest["documents"]), len(snapshot), manifest["model"], manifest["built_at"])


def documents(index_dir: str | Path | None = None, *, settings: Settings | None = None) -> list[DocumentInfo]:
    """The indexed documents, by doc_id."""
    return get_retriever(index_dir, settings).documents()


@dataclass(frozen=True)
class DocumentPage:
    """One page of the document list: what a listing sends, whatever the corpus size."""

    documents: list[DocumentInfo]
    offset: int
    matching: int  # documents that match the search
    total: int  # documents in the index


def document_page(
    index_dir: str | Path | None = None, *, search: str = "", offset: int = 0, limit: int = 25,
    settings: Settings | None = None,
) -> DocumentPage:
    """Documents ``offset`` … ``offset + limit`` (by doc_id) whose title or file name contains
    ``search`` (case-insensitive); the offset is clamped to the last page."""
    listing = get_retriever(index_dir, settings).snapshot().document_page(search, offset, limit)
    return DocumentPage(listing.documents, listing.offset, listing.matching, listing.total)


def document(doc_id: str, *, index_dir: str | Path | None = None, settings: Settings | None = None) -> Document:
    """One indexed document with its full text: citations' start/end point into ``text``."""
    return get_retriever(index_dir, settings).document(doc_id)


def add_files(
    paths: list[str | Path],
    corpus_dir: str | Path | None = None,
    index_dir: str | Path | None = None,
    *,
    settings: Settings | None = None,
    progress: bool = False,
) -> AddResult:
    """Copy readable files into the corpus under safe, unused names, then index incrementally.

    Each file is parsed before it is copied, so a broken one is refused with its reason and leaves
    the corpus and the index as they were. A name already taken gets a numbered suffix instead of
    overwriting; a file whose bytes are already in the corpus is refused as a duplicate. The copy
    and the build happen under the build lock, and a failed build takes the copies back out.
    """
    settings = settings or load_settings()
    corpus_dir, index_dir = _folders(corpus_dir, index_dir, settings)
    if not corpus_dir.is_dir():
        raise RagError(f"corpus folder {corpus_dir} does not exist")
    result = AddResult()
    readable: list[tuple[Path, str]] = []
    with GuardedLoader(settings.parse_timeout_s, settings.parse_memory_mb, settings.max_file_mb,
                       settings.max_document_tokens) as reader:
        for path in map(Path, paths):
            name = safe_file_name(path.name)
            reason = _upload_problem(path, name, settings, reader)
            if reason:
                result.rejected.append((path.name, reason))
            else:
                readable.append((path, name))
    if not readable:
        return result
    with build_lock(Path(index_dir)):
        saved: list[Path] = []
        by_size: dict[int, list[tuple[str, Path]]] = {}
        for doc_id, existing in find_files(corpus_dir, max_file_mb=settings.max_file_mb)[0]:
            by_size.setdefault(existing.stat().st_size, []).append((doc_id, existing))
        for path, name in readable:
            same_size = by_size.setdefault(path.stat().st_size, [])
            content_hash = file_hash(path)
            duplicate = next((d for d, existing in same_size if file_hash(existing) == content_hash), None)
            if duplicate is not None:
                result.rejected.append((path.name, f"already in the corpus as {duplicate}"))
                continue
            destination = _copy_to_free_name(path, corpus_dir / name)
            same_size.append((destination.name, destination))
            saved.append(destination)
            result.added.append((path.name, destination.name))
        if not saved:
            return result
        try:
            result.stats = build_locked(corpus_dir, index_dir, settings=settings, progress=progress)
        except BaseException:
            for destination in saved:  # not indexed, so not added: the corpus stays as it was
                destination.unlink(missing_ok=True)
            raise
    return result


def remove_document(
    doc_id: str,
    corpus_dir: str | Path | None = None,
    index_dir: str | Path | None = None,
    *,
    settings: Settings | None = None,
    progress: bool = False,
) -> IndexStats:
    """Move a document's file from the corpus to its trash folder and drop it from the index.

    The move and the build happen under the build lock; if the build fails, the file goes back.
    :func:`restore_document` brings it back. The trash is ``TRASH_FOLDER`` inside the corpus
    folder, hidden, so the indexer never reads it.
    """
    settings = settings or load_settings()
    corpus_dir, index_dir = _folders(corpus_dir, index_dir, settings)
    path = _corpus_file(corpus_dir, doc_id)
    with build_lock(Path(index_dir)):
        if not path.is_file():
            raise RagError(f"{doc_id!r} is not a file in the corpus folder {corpus_dir}")
        removal = f"{time.strftime('%Y%m%d-%H%M%S')}.{time.time_ns() % 10**9:09d}"  # sorts by time
        trashed = corpus_dir / TRASH_FOLDER / removal / doc_id
        trashed.parent.mkdir(parents=True, exist_ok=True)
        path.rename(trashed)
        try:
            return build_locked(corpus_dir, index_dir, settings=settings, progress=progress)
        except BaseException:
            trashed.rename(path)
            raise


def trashed_documents(corpus_dir: str | Path | None = None) -> list[tuple[str, Path]]:
    """(doc_id, file) of every removed document still in the trash, most recently removed first."""
    trash = Path(corpus_dir if corpus_dir is not None else load_settings().corpus_dir) / TRASH_FOLDER
    if not trash.is_dir():
        return []
    return [
        (file.relative_to(removal).as_posix(), file)
        for removal in sorted(trash.iterdir(), reverse=True) if removal.is_dir()
        for file in sorted(removal.rglob("*")) if file.is_file()
    ]


def restore_document(
    doc_id: str,
    corpus_dir: str | Path | None = None,
    index_dir: str | Path | None = None,
    *,
    settings: Settings | None = None,
    progress: bool = False,
) -> IndexStats:
    """Move the most recently removed copy of ``doc_id`` back into the corpus and index it again.

    Refused if a file of that name is in the corpus now (nothing is overwritten); if the build
    fails, the file goes back to the trash.
    """
    settings = settings or load_settings()
    corpus_dir, index_dir = _folders(corpus_dir, index_dir, settings)
    path = _corpus_file(corpus_dir, doc_id)
    with build_lock(Path(index_dir)):
        trashed = next((file for name, file in trashed_documents(corpus_dir) if name == doc_id), None)
        if trashed is None:
            raise RagError(f"{doc_id!r} is not in the trash of {corpus_dir}")
        if path.exists():
            raise RagError(f"{doc_id!r} is in the corpus already; move it away to restore the removed copy")
        path.parent.mkdir(parents=True, exist_ok=True)
        trashed.rename(path)
        try:
            stats = build_locked(corpus_dir, index_dir, settings=settings, progress=progress)
        except BaseException:
            path.rename(trashed)
            raise
    for folder in (trashed.parent, *trashed.parent.parents):  # the emptied removal folder goes
        if folder == corpus_dir / TRASH_FOLDER or not folder.is_relative_to(corpus_dir / TRASH_FOLDER):
            break
        try:
            folder.rmdir()
        except OSError:
            break
    return stats


def _folders(corpus_dir: str | Path | None, index_dir: str | Path | None,
             settings: Settings) -> tuple[Path, Path]:
    """The folders a call names, else the settings' (``RAG_CORPUS_DIR`` / ``RAG_INDEX_DIR``)."""
    return (Path(corpus_dir if corpus_dir is not None else settings.corpus_dir),
            Path(index_dir if index_dir is not None else settings.index_dir))


def _corpus_file(corpus_dir: Path, doc_id: str) -> Path:
    """The corpus file named by ``doc_id``; refused if the name leads outside or into the trash."""
    path = corpus_dir / doc_id
    inside = path.resolve().is_relative_to(corpus_dir.resolve())
    if not doc_id or not inside or path.resolve() == corpus_dir.resolve() or doc_id.split("/")[0] == TRASH_FOLDER:
        raise RagError(f"{doc_id!r} is not a file in the corpus folder {corpus_dir}")
    return path


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


def _upload_problem(path: Path, name: str, settings: Settings, reader: GuardedLoader) -> str | None:
    """Why ``path`` must not join the corpus, or None (it is parsed the way the indexer will)."""
    suffix = Path(name).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        allowed = ", ".join(sorted(SUPPORTED_SUFFIXES))
        return f"{unsupported_reason(Path(name))} (allowed: {allowed})"
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
