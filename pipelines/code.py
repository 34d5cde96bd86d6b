"""Curate The Stack code: top-25 languages, StarCoder-style quality filters, exact dedup across the source.

A recipe's source, with the recipe's input path and filters (what ``mixlab curate`` runs)::

    python pipelines/code.py --recipe recipes/base.yaml --source code --output out/curated/code

Local, embedded sample, default options::

    python pipelines/code.py --input mixlab/sample/data/stack/data --output out/curated/stack

Local, real data (one language folder per run keeps the download to what is kept; the language list is
``mixlab.recipe.languages.TOP25_LANGUAGES`` unless ``--filters '{"languages": [...]}'``)::

    python pipelines/code.py --input hf://datasets/bigcode/the-stack-dedup/data/python \\
        --output s3://bucket/curated/stack/python --tasks 64 --workers 16

Slurm / Ray::

    python pipelines/code.py --input /data/the-stack-dedup/data --output /scratch/curated/stack \\
        --executor slurm --partition cpu --time 12:00:00 --tasks 2000 --workers 200
    python pipelines/code.py --input /data/the-stack-dedup/data --output /scratch/curated/stack \\
        --executor ray --tasks 2000 --workers 200

Near-duplicate removal (MinHash, extra stages of the same run): ``--filters '{"dedup": "minhash"}'``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from mixlab.curate.script import main  # noqa: E402

if __name__ == "__main__":
    main(["stack"], __doc__)
