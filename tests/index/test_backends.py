"""Choosing the backend from configuration, and what a Milvus server is taken to support."""

from __future__ import annotations

import pytest

from rag.config import load_settings
from rag.index.backends import current_version, milvus_uri
from rag.index.milvus import ServerInfo


def test_the_backend_comes_from_the_environment_and_is_validated(monkeypatch, tmp_path):
    monkeypatch.setenv("RAG_INDEX_BACKEND", "milvus")
    settings = load_settings()
    assert settings.index_backend == "milvus"
    assert milvus_uri(settings, tmp_path) == str(tmp_path / "milvus.db")
    assert milvus_uri(settings.with_overrides(milvus_uri="http://127.0.0.1:19530"), tmp_path) == \
        "http://127.0.0.1:19530"
    monkeypatch.setenv("RAG_INDEX_BACKEND", "elastic")
    with pytest.raises(ValueError, match="RAG_INDEX_BACKEND"):
        load_settings()
    monkeypatch.delenv("RAG_INDEX_BACKEND")
    with pytest.raises(ValueError, match="RAG_MILVUS_COLLECTION"):
        load_settings(milvus_collection="no-dashes")


def test_no_index_yet_on_either_backend(tmp_path):
    assert current_version(load_settings(), tmp_path) is None
    pytest.importorskip("milvus_lite", reason="pip install 'rag[milvus]' for milvus-lite")
    assert current_version(load_settings(index_backend="milvus"), tmp_path / "lite") is None


@pytest.mark.parametrize("version, lite, bm25, aliases", [
    ("v2.3.5-lite", False, False, True),   # the pip `milvus` standalone server calls itself lite
    ("v2.4.15", False, False, True),
    ("v2.5.4", False, True, True),
    ("v2.6.0", False, True, True),
    ("2.5-lite", True, True, False),        # milvus-lite: the 2.5 core, no aliases
])
def test_features_follow_the_server_version(version, lite, bm25, aliases):
    server = ServerInfo("http://127.0.0.1:19530", version, lite)
    assert (server.bm25, server.aliases) == (bm25, aliases)
    if not bm25:
        assert "Milvus >= 2.5" in server.no_bm25_message()

