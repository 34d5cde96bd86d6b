"""Curate SlimPajama text: drop the code sets (GitHub, StackExchange), drop documents that are mostly code.

A recipe's source, with the recipe's input path and filters (what ``mixlab curate`` runs)::

    python pipelines/text.py --recipe recipes/base.yaml --source text --output out/curated/text

Local, embedded sample, default options::

    python pipelines/text.py --input mixlab/sample/data/slimpajama/train --output out/curated/slimpajama

Local, the real dataset streamed through fsspec (``hf://``), stripping code blocks from prose::

    python pipelines/text.py --input 'hf://datasets/cerebras/SlimPajama-627B/train/chunk*/*.jsonl.zst' \\
        --output s3://bucket/curated/slimpajama --tasks 256 --workers 16 --filters '{"code_mode": "strip"}'

Slurm (one array job, 64 tasks at a time) / Ray::

    python pipelines/text.py --input 'hf://datasets/cerebras/SlimPajama-627B/train/chunk*/*.jsonl.zst' \\
        --output /scratch/curated/slimpajama --executor slurm --partition cpu --time 12:00:00 \\
        --tasks 1024 --workers 64
    python pipelines/text.py --input ... --output ... --executor ray --tasks 1024 --workers 64

Reruns with the same ``--logging-dir`` (default ``<output>_logs``) and ``--tasks`` skip finished tasks.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from mixlab.curate.script import main  # noqa: E402

if __name__ == "__main__":
    main(["slimpajama"], __doc__)
