"""A Ray build that is SIGKILLed after it wrote two documents (run inside the cluster's network
namespace by test_ray_embed.py): python ray_driver.py CORPUS INDEX ADDRESS."""

import os
import signal
import sys

from rag.config import load_settings
from rag.ray_embed import build_index_on_ray

written = []


def die_after_two(doc_id: str) -> None:
    written.append(doc_id)
    print(doc_id, flush=True)
    if len(written) == 2:
        os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    corpus, index_dir, address = sys.argv[1:]
    build_index_on_ray(corpus, index_dir, address, settings=load_settings(), on_written=die_after_two)
