"""Which backend holds the index, chosen by configuration (``RAG_INDEX_BACKEND``): every caller
opens readers and writers here and codes against :mod:`rag.index.base` only."""

from __future__ import annotations

from pathlib import Path

from ..config import Settings
from .base import IndexReader, IndexWriter


def milvus_uri(settings: Settings, index_dir: str | Path) -> str:
    """The configured Milvus, or milvus-lite in the index folder."""
    return settings.milvus_uri or str(Path(index_dir) / "milvus.db")


def current_version(settings: Settings, index_dir: str | Path) -> str | None:
    """Name of the current version (changes with every commit), None if there is no index."""
    if settings.index_backend == "milvus":
        from . import milvus

        return milvus.current_version(milvus_uri(settings, index_dir), settings.milvus_collection)
    from ..store import read_current

    return read_current(Path(index_dir))


def open_reader(settings: Settings, index_dir: str | Path, *, verify: bool = True) -> IndexReader:
    """The current version, pinned: it reads the same version however many builds commit.
    ``verify`` False (a build, which reads little of its base): the local backend checks file
    sizes but not checksums; Milvus checks nothing either way."""
    if settings.index_backend == "milvus":
        from . import milvus

        return milvus.open_reader(milvus_uri(settings, index_dir), settings.milvus_collection)
    from ..store import open_snapshot

    return open_snapshot(Path(index_dir), verify=verify)


def open_writer(
    settings: Settings, index_dir: str | Path, base: IndexReader | None, dimension: int,
    *, resume: bool = False, resumable: dict | None = None,
) -> IndexWriter:
    """A writer of the next version from ``base``. Each backend resumes a killed build its own
    way: ``resume`` asks Milvus to carry on in the collections a killed build on the same base
    left behind; ``resumable`` (the build's description, see rag.indexer) has the local writer
    record its sealed segments in a pending version, which rag.indexer resumes from. Each
    argument is passed only to the backend it concerns."""
    if settings.index_backend == "milvus":
        from .milvus import MilvusWriter

        return MilvusWriter(milvus_uri(settings, index_dir), settings.milvus_collection, base,
                            dimension, resume=resume)
    from .writer import VersionWriter

    return VersionWriter(Path(index_dir), base, dimension, resumable=resumable)
