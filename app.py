"""The web chat: ``python app.py [--corpus DIR] [--index DIR] [--host H] [--port P]``, same as ``rag serve``."""

import sys

from rag.cli import main

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
