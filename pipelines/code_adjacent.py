"""Curate code-adjacent sources: CommitPack commits, Jupyter notebooks, StackExchange Q&A, GitHub issues.

A recipe's source, with the recipe's input path and filters (what ``mixlab curate`` runs)::

    python pipelines/code_adjacent.py --recipe recipes/base.yaml --source commits --output out/curated/commits

Local, embedded sample, default options::

    python pipelines/code_adjacent.py --kind commits --input mixlab/sample/data/commits \\
        --output out/curated/commits
    python pipelines/code_adjacent.py --kind notebooks --input mixlab/sample/data/notebooks \\
        --output out/curated/notebooks
    python pipelines/code_adjacent.py --kind stackexchange --input mixlab/sample/data/stackexchange/Posts.xml \\
        --output out/curated/stackexchange
    python pipelines/code_adjacent.py --kind issues --input mixlab/sample/data/issues \\
        --output out/curated/issues

Slurm / Ray (CommitPack from the Hub, one folder per language)::

    python pipelines/code_adjacent.py --kind commits --input 'hf://datasets/bigcode/commitpack/data/python/*.jsonl' \\
        --output /scratch/curated/commits/python --executor slurm --partition cpu --time 04:00:00 \\
        --tasks 100 --workers 50
    python pipelines/code_adjacent.py --kind stackexchange --input /data/stackexchange \\
        --output /scratch/curated/stackexchange --executor ray --tasks 200 --workers 50
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from mixlab.curate.script import main  # noqa: E402

if __name__ == "__main__":
    main(["commits", "notebooks", "stackexchange", "issues"], __doc__)
