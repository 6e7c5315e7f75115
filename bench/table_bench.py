"""The document table's cost per commit at N documents: main's (whole table in the version,
rewritten by every commit) beside this one (a shared base plus each version's changes), same run.

Synthetic entries (content hashes, segment names, sizes, mtimes as a build records them); what is
timed is the real code: open the base's table and read every entry (as the planner does), then
save the next version's table with one document changed, one removed and one added.

    python bench/table_bench.py --documents 100000 --rounds 5
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
MAIN_COMMIT = "7ff9210"  # main before the base + changes table


def main_manifest_module(work: Path):
    """main's manifest module, as package ``rag_before.index.manifest`` under ``work``."""
    package = work / "rag_before"
    if not package.exists():
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", MAIN_COMMIT, "rag"],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(work)], input=archive, check=True)
        (work / "rag").rename(package)
        (package / "__init__.py").write_text("")
    sys.path.insert(0, str(work))
    from rag_before.index import manifest
    return manifest


def entries(module, documents: int) -> dict:
    segments = [f"s-20261202T043300-1234-{n:08x}" for n in range(7)]
    return {f"folder/doc-{n}.txt": module.DocumentEntry(hashlib.sha256(str(n).encode()).hexdigest(),
                                                       segments[n % 7], 1000 + n, 1_733_000_000_000_000_000 + n)
            for n in range(documents)}


def one_round(module, write, index_dir: Path, version: int) -> dict:
    """Open the current table, read it all, save the next version's with three changes."""
    cpu, wall = time.process_time(), time.perf_counter()
    current = module.Manifest.read(index_dir / f"v-{version:08d}" / module.MANIFEST_FILE)
    table = current.documents
    known = {doc_id: entry.size for doc_id, entry in table.items()}  # the planner's pass
    read_cpu = time.process_time() - cpu
    changed = f"folder/doc-{version}.txt"
    changes = {changed: module.DocumentEntry("new" + str(version), "s-new", 1, 1),
               f"folder/doc-{len(known) - version}.txt": None,
               f"folder/added-{version}.txt": module.DocumentEntry("added", "s-new", 2, 2)}
    if hasattr(table, "updated"):
        documents = table.updated(changes)
    else:
        documents = {d: e for d, e in table.items()}
        for doc_id, entry in changes.items():
            documents.pop(doc_id, None) if entry is None else documents.__setitem__(doc_id, entry)
    target = index_dir / f"v-{version + 1:08d}"
    target.mkdir()
    module.Manifest(current.model, current.dimension, {}, 0, "now", documents, ()).save(target, write)
    return {"read_cpu_s": read_cpu, "cpu_s": time.process_time() - cpu, "wall_s": time.perf_counter() - wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    from rag.index import manifest as today
    from rag.index.writer import write_durably

    work = Path(tempfile.mkdtemp(prefix="rag-table-bench-"))
    before = main_manifest_module(work)
    dirs = {}
    for name, module in (("main", before), ("now", today)):
        dirs[name] = work / name
        (dirs[name] / "v-00000001").mkdir(parents=True)
        module.Manifest("m", 384, {}, 0, "now", entries(module, args.documents), ()).save(
            dirs[name] / "v-00000001", write_durably)
    print(f"{args.documents} documents; threads 1; cpu_count {os.cpu_count()}")
    for round_ in range(1, args.rounds + 1):  # the two take turns
        for name, module in (("main", before), ("now", today)):
            result = one_round(module, write_durably, dirs[name], round_)
            print(f"round {round_} {name:4}: open+read {result['read_cpu_s']:.3f} s CPU, with the save "
                  f"{result['cpu_s']:.3f} s CPU / {result['wall_s']:.3f} s wall; load {os.getloadavg()[0]:.2f}",
                  flush=True)


if __name__ == "__main__":
    main()
