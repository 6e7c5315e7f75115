"""Index backends for the contract suite: the local one, milvus-lite 2.5.1 and Milvus 2.3.5."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import pytest

from rag.config import Settings, load_settings

from tests.index.servers import MilvusStandalone, milvus_standalone_missing

BACKENDS = ("local", "milvus-lite", "milvus-standalone")
_prefixes = itertools.count()


@dataclass
class Backend:
    """One backend under test: fresh settings and index folders for each index a test builds."""

    name: str
    uri: str
    root: Path
    standalone: MilvusStandalone | None = None

    @property
    def has_bm25(self) -> bool:
        return self.name != "milvus-standalone"

    def settings(self, **overrides) -> Settings:
        """Settings for a new, empty index (its own collection prefix on Milvus)."""
        backend = {} if self.name == "local" else {
            "index_backend": "milvus", "milvus_uri": self.uri,
            "milvus_collection": f"t{next(_prefixes)}"}
        mode = {} if self.has_bm25 else {"mode": "dense"}  # Milvus 2.3 has no BM25
        return load_settings(**{**backend, **mode, **overrides})

    def index_dir(self) -> Path:
        path = self.root / f"index-{next(_prefixes)}"
        path.mkdir(parents=True)
        return path


@pytest.fixture(scope="session")
def milvus_lite_uri(tmp_path_factory) -> str:
    pytest.importorskip("milvus_lite", reason="pip install 'rag[milvus]' for milvus-lite")
    return str(tmp_path_factory.mktemp("milvus-lite") / "milvus.db")


@pytest.fixture(scope="session")
def milvus_standalone(tmp_path_factory):
    missing = milvus_standalone_missing()
    if missing:
        pytest.skip(missing)
    server = MilvusStandalone(tmp_path_factory.mktemp("milvus-standalone") / "data").start()
    yield server
    server.stop()


@pytest.fixture(params=BACKENDS)
def backend(request, tmp_path) -> Backend:
    if request.param == "local":
        return Backend("local", "", tmp_path)
    if request.param == "milvus-lite":
        return Backend("milvus-lite", request.getfixturevalue("milvus_lite_uri"), tmp_path)
    server = request.getfixturevalue("milvus_standalone")
    return Backend("milvus-standalone", server.uri, tmp_path, server)

