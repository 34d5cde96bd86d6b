"""Curate the markup subset (HTML, CSS, Markdown from The Stack) with light filters.

A recipe's source, with the recipe's input path and filters (what ``mixlab curate`` runs)::

    python pipelines/markup.py --recipe recipes/base.yaml --source markup --output out/curated/markup

Local, embedded sample (the language filter keeps only the markup folders' files)::

    python pipelines/markup.py --input mixlab/sample/data/stack/data --output out/curated/markup

Slurm / Ray on the real layout::

    python pipelines/markup.py --input /data/the-stack-dedup/data/html --output /scratch/curated/markup/html \\
        --executor slurm --partition cpu --time 06:00:00 --tasks 500 --workers 100
    python pipelines/markup.py --input hf://datasets/bigcode/the-stack-dedup/data/markdown \\
        --output /scratch/curated/markup/markdown --executor ray --tasks 500 --workers 100
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from mixlab.curate.script import main  # noqa: E402

if __name__ == "__main__":
    main(["markup"], __doc__)
