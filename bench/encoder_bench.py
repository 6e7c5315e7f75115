"""The encoder on SciFact: torch against OpenVINO, float32 against bfloat16 (and int8), and what a
build costs beyond its encoder.

``speed`` encodes the chunks of the first ``--docs`` SciFact abstracts, as the indexer builds them
(title, sentence spans), through ``Embedder.embed_documents_and_spans`` — the build's own call —
for every variant, interleaved in rounds in one process, and reports chunks/s, abstracts/s, the
speed-up over torch float32 and how far the vectors move (cosine to torch float32). With NNCF
installed it also quantises the OpenVINO model to int8 (static, calibrated on the shipped corpus,
not on SciFact) and measures that.

``build`` times ``build_index(full=True)`` of the same abstracts with the default backend, and the
bare encoder of that backend on the very same chunk texts (no pipeline: tokenise, forward, mean
pool), alternating in rounds, and reports the ratio of the best of each (goal ≤ 1.15).

``subset`` writes the first ``--docs`` abstracts with their queries and judgements as a BEIR folder,
for ``bench/retrieval_bench.py --beir DIR`` when the full run does not fit.

    python bench/encoder_bench.py speed [--docs 100] [--threads 1] [--rounds 2]
    python bench/encoder_bench.py build [--docs 300] [--threads 1] [--rounds 2]
    python bench/encoder_bench.py subset --docs 500 --out /tmp/scifact-500
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from rag import openvino_model  # noqa: E402
from rag.chunking import split_sentences  # noqa: E402
from rag.config import load_settings  # noqa: E402
from rag.embedding import Embedder, embedder_for  # noqa: E402
from rag.indexer import _chunk_for, build_index, embedding_text  # noqa: E402
from rag.types import Document  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SCIFACT = ROOT.parent / "shared" / "beir" / "scifact"


def _load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def _abstracts(docs: int) -> list[dict]:
    with (SCIFACT / "corpus.jsonl").open() as f:
        return [json.loads(line) for line, _ in zip(f, range(docs))]


def _chunks(embedder: Embedder, docs: int) -> tuple[list[str], list[list[tuple[int, int]]]]:
    """The texts and sentence spans the indexer embeds for these abstracts."""
    settings = load_settings()
    texts, spans = [], []
    for d in _abstracts(docs):
        title, chunks = _chunk_for(embedder, settings, Document(d["_id"], d["title"], d["text"], ""))
        for c in chunks:
            text = embedding_text(title, c.text)
            shift = len(text) - len(c.text)
            texts.append(text)
            spans.append([(shift + a, shift + b) for a, b in split_sentences(c.text)])
    return texts, spans


def _int8(embedder: Embedder) -> Embedder:
    """``embedder`` with its OpenVINO model quantised to int8 by NNCF (static: activations
    calibrated on the shipped corpus's sentences)."""
    import nncf
    import openvino as ov

    text = " ".join(p.read_text() for p in sorted((ROOT / "corpus").iterdir()))
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", text) if len(s) > 20]
    samples = [" ".join(sentences[i:i + 4]) for i in range(0, len(sentences), 2)]
    calibration = [embedder._tokenizer.batch([s]).inputs for s in samples]
    quantised = nncf.quantize(embedder._openvino.model, nncf.Dataset(calibration),
                              model_type=nncf.ModelType.TRANSFORMER, subset_size=len(calibration))
    for query in (False, True):
        vectors = embedder._token_vectors(query)
        vectors.compiled = ov.Core().compile_model(quantised, "CPU", {"INFERENCE_NUM_THREADS": embedder.threads})
        vectors.output = vectors.compiled.output("last_hidden_state")
    return embedder


def speed(args) -> None:
    variants = {"torch float32": dict(backend="torch", precision="float32"),
                "torch bfloat16 (autocast)": dict(backend="torch", precision="bfloat16")}
    if openvino_model.installed():
        variants["OpenVINO float32"] = dict(backend="openvino", precision="float32")
        variants["OpenVINO auto (bfloat16 here)"] = dict(backend="openvino", precision="auto")
    embedders = {name: Embedder(threads=args.threads, query_threads=args.threads, **options)
                 for name, options in variants.items()}
    if openvino_model.installed() and args.int8:
        embedders["OpenVINO int8 (NNCF, static)"] = _int8(
            Embedder(threads=args.threads, query_threads=args.threads, backend="openvino"))
    texts, spans = _chunks(embedders["torch float32"], args.docs)
    for embedder in embedders.values():
        embedder.embed_documents_and_spans(texts[:8], spans[:8])
    seconds = {name: [] for name in embedders}
    vectors = {}
    load_before = _load()
    for _ in range(args.rounds):
        for name, embedder in embedders.items():
            started = time.perf_counter()
            vectors[name], _ = embedder.embed_documents_and_spans(texts, spans)
            seconds[name].append(time.perf_counter() - started)
    print(f"{len(texts)} chunks of {args.docs} SciFact abstracts; {args.threads} thread(s); best of "
          f"{args.rounds} interleaved rounds; load average {load_before} before, {_load()} after")
    print("| encoder | chunks/s | abstracts/s | speed-up over torch float32 | min / mean cosine to torch float32 |")
    print("|---|---:|---:|---:|---|")
    base = min(seconds["torch float32"])
    for name in embedders:
        best = min(seconds[name])
        cosine = np.sum(vectors[name] * vectors["torch float32"], axis=1)
        print(f"| {name} | {len(texts) / best:.1f} | {args.docs / best:.2f} | {base / best:.2f} | "
              f"{cosine.min():.5f} / {cosine.mean():.5f} |")


def bare_encode(embedder: Embedder, texts: list[str]) -> np.ndarray:
    """The backend without rag around it: tokenise, one forward pass, mean pool, normalise;
    batches longest first, as the build does. Vectors in the order of ``texts``."""
    import torch

    order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
    vectors = np.zeros((len(texts), embedder.dimension), dtype=np.float32)
    for first in range(0, len(order), embedder.batch_size):
        rows = order[first:first + embedder.batch_size]
        batch = [texts[i] for i in rows]
        if embedder.backend == "openvino":
            tokenized = embedder._tokenizer.batch(batch)
            tokens = embedder._token_vectors(False)(tokenized.inputs)
            mask = tokenized.mask[..., None]
            pooled = (tokens * mask).sum(1) / mask.sum(1)
            vectors[rows] = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
        else:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=embedder.bfloat16):
                vectors[rows] = embedder._model.encode(batch, batch_size=len(batch), normalize_embeddings=True)
    return vectors


def cpu_seconds() -> float:
    """User + system CPU of every thread of this process and of the children it waited for
    (the build's file-parsing process): unlike the wall clock, barely moved by neighbours."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def build(args) -> None:
    settings = load_settings(threads=args.threads)
    embedder = embedder_for(settings)
    with tempfile.TemporaryDirectory(prefix="rag-encoder-bench-") as tmp:
        corpus = Path(tmp) / "corpus"
        corpus.mkdir()
        for d in _abstracts(args.docs):
            (corpus / f"{d['_id']}.md").write_text(f"# {d['title']}\n\n{d['text']}\n")
        build_index(corpus, Path(tmp) / "warm", settings=settings)  # loads and warms the model
        texts, _ = _chunks(embedder, args.docs)
        load_before = _load()
        pipeline, bare = [], []  # (wall, CPU) per round
        for _ in range(args.rounds):  # alternating, so both see the same load; best of each
            started, cpu = time.perf_counter(), cpu_seconds()
            stats = build_index(corpus, Path(tmp) / "index", full=True, settings=settings)
            pipeline.append((time.perf_counter() - started, cpu_seconds() - cpu))
            started, cpu = time.perf_counter(), cpu_seconds()
            bare_encode(embedder, texts)
            bare.append((time.perf_counter() - started, cpu_seconds() - cpu))
    (wall, cpu), (bare_wall, bare_cpu) = min(pipeline, key=lambda t: t[1]), min(bare, key=lambda t: t[1])
    precision = "bfloat16" if embedder.bfloat16 else "float32"
    print(f"{args.docs} SciFact abstracts → {stats.chunks} chunks; backend {embedder.backend} in {precision}; "
          f"{embedder.threads} thread(s); best of {args.rounds} alternating rounds by CPU time; "
          f"load average {load_before} before, {_load()} after")
    print("| | rag build_index | bare encoder, same chunks and backend | ratio (goal ≤ 1.15) |")
    print("|---|---:|---:|---:|")
    print(f"| CPU | {cpu:.1f} s ({stats.chunks / cpu:.1f} chunks/s) | {bare_cpu:.1f} s "
          f"({len(texts) / bare_cpu:.1f} chunks/s) | {cpu / bare_cpu:.2f} |")
    print(f"| wall | {wall:.1f} s | {bare_wall:.1f} s | {wall / bare_wall:.2f} |")


def subset(args) -> None:
    """The first ``docs`` abstracts, and the queries judged on them, as a BEIR folder."""
    docs = _abstracts(args.docs)
    kept = {d["_id"] for d in docs}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "qrels").mkdir(exist_ok=True)
    with (args.out / "corpus.jsonl").open("w") as f:
        f.writelines(json.dumps(d) + "\n" for d in docs)
    lines = (SCIFACT / "qrels" / f"{args.split}.tsv").read_text().splitlines()
    judged = [line for line in lines[1:] if line.split("\t")[1] in kept]
    (args.out / "qrels" / f"{args.split}.tsv").write_text("\n".join([lines[0], *judged]) + "\n")
    queries = {line.split("\t")[0] for line in judged}
    with (SCIFACT / "queries.jsonl").open() as source, (args.out / "queries.jsonl").open("w") as f:
        f.writelines(line for line in source if json.loads(line)["_id"] in queries)
    print(f"{len(docs)} abstracts, {len(queries)} queries → {args.out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("speed")
    run.add_argument("--docs", type=int, default=100)
    run.add_argument("--threads", type=int, default=1)
    run.add_argument("--rounds", type=int, default=2)
    run.add_argument("--no-int8", dest="int8", action="store_false", help="skip the NNCF int8 variant")
    run.set_defaults(run=speed)
    timed = commands.add_parser("build")
    timed.add_argument("--docs", type=int, default=300)
    timed.add_argument("--threads", type=int, default=1)
    timed.add_argument("--rounds", type=int, default=2)
    timed.set_defaults(run=build)
    sub = commands.add_parser("subset")
    sub.add_argument("--docs", type=int, default=500)
    sub.add_argument("--split", default="train")
    sub.add_argument("--out", type=Path, required=True)
    sub.set_defaults(run=subset)
    args = parser.parse_args()
    if args.command == "speed" and args.int8:
        args.int8 = _has_nncf()
    args.run(args)


def _has_nncf() -> bool:
    import importlib.util

    return importlib.util.find_spec("nncf") is not None


if __name__ == "__main__":
    main()
