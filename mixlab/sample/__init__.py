"""The embedded sample corpus: :data:`DATA` (``mixlab/sample/data``), read at runtime by ``data_root: "@sample"``.

The data are real files in real formats (SlimPajama JSONL, The Stack parquet, notebooks, CommitPack JSONL,
a StackExchange ``Posts.xml``) drawn from Debian, PyPI and npm packages; ``SOURCES.md`` gives the origin and
license of each part. They are built by ``python -m mixlab.builders.sample`` (a tool outside the runtime import
graph); ``python -m mixlab.builders.scale`` writes varied N-fold copies for benchmarks.
"""

from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
