"""Synthetic code: generate and/or read Python problems, keep those whose solution passes its tests (sandboxed).

Built-in generator, 10,000 problems, verified 4 at a time, one task::

    python pipelines/synthetic.py --generate 10000 --output out/curated/synthetic

User problems (JSONL with task_id, prompt, solution, tests, entry_point; plain, .gz or .zst; HumanEval's
``canonical_solution``/``test`` accepted), tests kept in the training text::

    python pipelines/synthetic.py --problems data/problems.jsonl.zst --include-tests --output out/curated/synthetic_user

A recipe's synthetic source (its generator settings and sandbox limits, as ``mixlab curate`` runs it)::

    python pipelines/synthetic.py --recipe recipes/base.yaml --source synthetic --output out/curated/synthetic

Both, sharded over 8 tasks (4 at a time locally), on Slurm, on Ray::

    python pipelines/synthetic.py --generate 100000 --problems data/problems --tasks 8 --workers 4 \\
        --sandbox-workers 4 --output out/curated/synthetic
    python pipelines/synthetic.py --generate 1000000 --output /scratch/curated/synthetic \\
        --executor slurm --partition cpu --time 04:00:00 --tasks 200 --cpus-per-task 8 --sandbox-workers 8
    python pipelines/synthetic.py --generate 1000000 --output /scratch/curated/synthetic --executor ray --tasks 200

The flags below are the fields of ``SyntheticOptions`` (``mixlab.recipe.sources``; ``--filters JSON`` sets any of
them too, ``--input`` is the problems path). ``--workers`` is the number of datatrove tasks run at once (as in every
``pipelines/*.py``); ``--sandbox-workers`` the verification processes within one task. Output: ``<output>/<rank>.jsonl.zst``; stats (every problem kept or
dropped with a reason: tests_failed, timeout, memory, error, malformed_json...) are printed as JSON.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from mixlab.curate import script  # noqa: E402

# flag -> SyntheticOptions field; a flag left out leaves the field to --filters or its default
FLAGS = {
    "generate": "generate",
    "seed": "seed",
    "problems": "problems_path",
    "include_tests": "include_tests",
    "timeout_s": "timeout_s",
    "memory_mb": "memory_mb",
    "sandbox_workers": "workers",
    "corrupt_fraction": "corrupt_fraction",
}


def build_parser() -> argparse.ArgumentParser:
    p = script.build_parser(["synthetic"], __doc__)
    g = p.add_argument_group("synthetic options (without --recipe; defaults: SyntheticOptions)")
    g.add_argument("--generate", type=int, default=None, help="Problems made by the built-in generator.")
    g.add_argument("--seed", type=int, default=None, help="Generator seed.")
    g.add_argument("--problems", default=None, help="User problems JSONL: file, folder or glob (local or URL).")
    g.add_argument(
        "--include-tests", action="store_true", default=None, help="Append the passing tests to the training text."
    )
    g.add_argument("--timeout-s", type=float, default=None, help="Wall-clock limit per verification run (5).")
    g.add_argument("--memory-mb", type=int, default=None, help="Memory limit per verification run, MiB (512).")
    g.add_argument("--sandbox-workers", type=int, default=None, help="Verification runs in parallel per task (2).")
    g.add_argument("--corrupt-fraction", type=float, default=None, help="Testing only: wrong generated solutions.")
    return p


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Parse ``argv``, run the pipeline, print and return its statistics."""
    parser = build_parser()
    args = parser.parse_args(argv)
    flags = {field: getattr(args, flag) for flag, field in FLAGS.items() if getattr(args, flag) is not None}
    options, input_path = script.resolve_source(args, ["synthetic"], parser, flags)
    return script.run(args, options, input_path)


if __name__ == "__main__":
    main()
