"""Cold start of the `rag` command: `rag --help`, a no-op `rag index` and `rag ask`, each a fresh
process, for one or more source trees side by side (e.g. the commit before a change and after).

    git archive <commit> | tar -x -C /tmp/before
    python bench/cli_bench.py --tree before=/tmp/before --tree after=. [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

QUESTION = "When did Colombia recall its ambassador to Israel?"


def _timed(tree: Path, args: list[str], cwd: Path) -> tuple[float, float]:
    """Wall-clock and CPU seconds (user + system) of one fresh `rag` process: on a loaded machine
    the wall clock mostly measures the wait for a core, the CPU time what the command costs."""
    env = dict(os.environ, PYTHONPATH=str(tree.resolve()), HF_HUB_OFFLINE="1")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "rag", *args], cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{tree}: rag {' '.join(args)} failed:\n{done.stderr}")
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", action="append", required=True, metavar="NAME=DIR")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    trees = dict(t.split("=", 1) for t in args.tree)
    commands = {"rag --help": ["--help"], "rag index (nothing changed)": ["index"], "rag ask": ["ask", QUESTION]}
    times = {(name, command): [] for name in trees for command in commands}
    with tempfile.TemporaryDirectory(prefix="rag-cli-bench-") as tmp:
        work = {}
        for name, tree in trees.items():  # one corpus and index per tree: formats may differ
            work[name] = Path(tmp) / name
            shutil.copytree(Path(tree) / "corpus", work[name] / "corpus")
            _timed(Path(tree), ["index"], work[name])
        load_before = os.getloadavg()[0]
        for _ in range(args.repeats):  # interleaved, so both trees see the same load
            for command, argv in commands.items():
                for name, tree in trees.items():
                    times[(name, command)].append(_timed(Path(tree), argv, work[name]))
    print(f"median of {args.repeats} cold runs each, interleaved; load average {load_before:.2f} before, "
          f"{os.getloadavg()[0]:.2f} after; {os.cpu_count()} CPUs")
    print("| command | " + " | ".join(f"{n}: wall / CPU" for n in trees) + " |")
    print("|---|" + "---:|" * len(trees))
    for command in commands:
        cells = []
        for name in trees:
            wall, cpu = zip(*times[(name, command)])
            cells.append(f"{statistics.median(wall):.2f} / {statistics.median(cpu):.2f} s")
        print(f"| {command} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
