"""The index layer: what a reader and a writer of one index version can do, whatever the backend."""
