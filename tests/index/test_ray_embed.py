"""Bulk embedding on a two-node Ray cluster on loopback (`rag index --ray`): the same index as a
plain build, and a build SIGKILLed half-way resumes from the documents it wrote."""

from __future__ import annotations

import importlib.util
import shutil
import signal
import subprocess
import sys

import pytest

from rag import build_index
from rag.config import load_settings
from rag.retriever import Retriever
from tests.index.servers import REPO, RayCluster
from tests.index.test_contract import ARTICLES, NEW_ARTICLE, places, write_corpus

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("ray") is None or importlib.util.find_spec("milvus_lite") is None,
    reason="pip install 'rag[ray,milvus]' for bulk embedding on Ray")


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    if shutil.which("unshare") is None or shutil.which("nsenter") is None:
        pytest.skip("the Ray cluster runs in its own network namespace: needs unshare and nsenter")
    cluster = RayCluster(tmp_path_factory.mktemp("ray"), cpus_per_node=1).start()
    yield cluster
    cluster.stop()


@pytest.mark.timeout(600)
def test_a_killed_ray_build_resumes_and_equals_a_plain_build(ray_cluster, tmp_path):
    corpus = write_corpus(tmp_path)
    (corpus / "ferry.txt").write_text(NEW_ARTICLE)
    index_dir = tmp_path / "index"
    env = dict(ray_cluster.environment(), RAG_INDEX_BACKEND="milvus", HF_HUB_OFFLINE="1")

    killed = subprocess.run(
        ray_cluster.command([sys.executable, str(REPO / "tests/index/ray_driver.py"), str(corpus),
                             str(index_dir), ray_cluster.address]),
        env=env, capture_output=True, text=True, timeout=400)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    first_run = killed.stdout.split()
    assert len(first_run) == 2

    resumed = subprocess.run(
        ray_cluster.command([sys.executable, "-m", "rag", "index", "--corpus", str(corpus),
                             "--index", str(index_dir), "--ray", ray_cluster.address]),
        env=env, capture_output=True, text=True, timeout=400)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming a killed build: 2 document(s) already written, 2 to embed" in resumed.stderr
    assert f"{len(ARTICLES) + 1} added" in resumed.stdout

    settings = load_settings(index_backend="milvus")
    plain_settings = load_settings()
    build_index(corpus, tmp_path / "plain", settings=plain_settings)
    on_ray, plain = Retriever(index_dir, settings), Retriever(tmp_path / "plain", plain_settings)
    assert len(on_ray.snapshot()) == len(plain.snapshot())
    assert {d.doc_id for d in on_ray.documents()} == {*ARTICLES, "ferry.txt"}
    for query in ("When did the Tarnvik volcano erupt?", "Who kept the lighthouse log?",
                  "last captain of the ferry"):
        got, expected = on_ray.search(query, k=4), plain.search(query, k=4)
        assert places(got) == places(expected)
        assert [p.score for p in got] == pytest.approx([p.score for p in expected], abs=1e-3)
