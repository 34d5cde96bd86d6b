"""Shared command line of the ``pipelines/*.py`` curation scripts (argparse -> :func:`run_curation`).

What to curate, one of:
- ``--recipe R --source NAME [--set KEY=VALUE ...]``: the recipe source's resolved input path and typed filters,
  exactly what ``mixlab curate R`` passes to :func:`~mixlab.curate.pipeline.run_curation`;
- ``--input PATH [--filters JSON]`` (``--kind K`` where a script curates several kinds): a thin path that
  validates the JSON object into the same typed options model (``mixlab.recipe.sources``), e.g.
  ``--filters '{"code_mode": "strip"}'``.

Always: ``--output`` (folder or URL) and the executor options ``--executor local|slurm|ray``, ``--tasks``,
``--workers``, ``--logging-dir``, Slurm ``--partition``, ``--time``, ``--cpus-per-task``, ``--mem-per-cpu-gb``,
``--qos``, ``--venv-path``; Ray ``--cpus-per-task``, ``--mem-per-cpu-gb``. Prints the run's statistics as JSON.
Importing this module imports no datatrove.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from mixlab.recipe import RecipeError, format_errors, load_recipe
from mixlab.recipe.sources import OPTIONS_BY_KIND, SourceOptions

SCRIPT_OF_KIND = {
    "slimpajama": "pipelines/text.py",
    "stack": "pipelines/code.py",
    "markup": "pipelines/markup.py",
    "commits": "pipelines/code_adjacent.py",
    "notebooks": "pipelines/code_adjacent.py",
    "stackexchange": "pipelines/code_adjacent.py",
    "issues": "pipelines/code_adjacent.py",
    "synthetic": "pipelines/synthetic.py",
}


def add_executor_args(p: argparse.ArgumentParser) -> None:
    """``--executor``, ``--tasks``, ``--workers``, ``--logging-dir`` and the Slurm / Ray options."""
    p.add_argument("--executor", default="local", choices=("local", "slurm", "ray"), help="datatrove executor.")
    p.add_argument("--tasks", type=int, default=1, help="Number of tasks (the input is sharded over tasks).")
    p.add_argument(
        "--workers", type=int, default=None, help="Tasks run at the same time (default: 1 locally, no limit else)."
    )
    p.add_argument("--logging-dir", default=None, help="datatrove logging dir (default: <output>_logs).")
    g = p.add_argument_group("slurm / ray")
    g.add_argument("--partition", default=None, help="Slurm partition (required with --executor slurm).")
    g.add_argument("--time", default="24:00:00", help="Slurm time limit per job.")
    g.add_argument("--qos", default=None, help="Slurm QOS.")
    g.add_argument("--venv-path", default=None, help="Slurm: virtualenv to activate in the job.")
    g.add_argument("--cpus-per-task", type=int, default=1, help="Slurm/Ray CPUs per task.")
    g.add_argument("--mem-per-cpu-gb", type=float, default=2, help="Slurm/Ray memory per CPU (GB).")


def build_parser(kinds: Sequence[str], description: str | None) -> argparse.ArgumentParser:
    """The source arguments (recipe source, or input + options), ``--output`` and the executor arguments."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("what to curate: a recipe source (as `mixlab curate`), or an input with options")
    g.add_argument("--recipe", default=None, help="Recipe file; curate its source --source (input path + filters).")
    g.add_argument("--source", default=None, help="Name of the source in --recipe.")
    g.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="Recipe override, repeatable (as `mixlab`)."
    )
    g.add_argument("--input", default=None, help="Without --recipe: input folder, file or glob (local or URL).")
    g.add_argument("--filters", default=None, help="Without --recipe: JSON object of the kind's options.")
    if len(kinds) > 1:
        g.add_argument("--kind", default=None, choices=kinds, help="Without --recipe: the source kind to curate.")
    p.add_argument("--output", required=True, help="Output folder for <rank>.jsonl.zst files.")
    add_executor_args(p)
    return p


def resolve_source(
    args: argparse.Namespace,
    kinds: Sequence[str],
    parser: argparse.ArgumentParser,
    flag_options: dict[str, Any] | None = None,
) -> tuple[SourceOptions, str]:
    """``(typed options, resolved input path)`` from the command line; exits with a message naming the fix.

    ``flag_options`` are option fields given as dedicated flags (pipelines/synthetic.py); they apply over
    ``--filters`` and cannot be combined with ``--recipe`` (use ``--set sources.NAME.filters.FIELD=V`` there).
    """
    flag_options = flag_options or {}
    kind_flag = getattr(args, "kind", None)
    if args.recipe:
        given = [f for f, v in (("--input", args.input), ("--filters", args.filters), ("--kind", kind_flag)) if v]
        given += [f"option flags ({', '.join(sorted(flag_options))})"] if flag_options else []
        if given:
            parser.error(
                f"{', '.join(given)} cannot be combined with --recipe: the recipe gives the input and options "
                "(change them with --set sources.NAME.filters.FIELD=VALUE)"
            )
        if not args.source:
            parser.error("--recipe needs --source NAME (a name under the recipe's `sources:`)")
        try:
            recipe = load_recipe(args.recipe, args.set)
        except RecipeError as e:
            parser.exit(2, f"{e}\n")
        if args.source not in recipe.sources:
            parser.error(f"--source {args.source!r} is not a source of {args.recipe}; its sources: {sorted(recipe.sources)}")
        src = recipe.sources[args.source]
        if src.kind not in kinds:
            parser.error(
                f"source {args.source!r} is of kind {src.kind!r}, this script curates {', '.join(kinds)}; "
                f"run {SCRIPT_OF_KIND[src.kind]} (or `mixlab curate`)"
            )
        return src.filters, recipe.resolve_path(args.source)
    if args.source or args.set:
        parser.error("--source and --set need --recipe")
    kind = kind_flag or (kinds[0] if len(kinds) == 1 else None)
    if kind is None:
        parser.error(f"give --recipe R --source NAME, or --kind {{{','.join(kinds)}}} with --input")
    if not args.input and kind != "synthetic":
        parser.error("give --recipe R --source NAME, or --input PATH [--filters JSON]")
    try:
        data = json.loads(args.filters or "{}")
    except json.JSONDecodeError as e:
        parser.error(f"--filters is not valid JSON: {e}")
    if not isinstance(data, dict):
        parser.error(f"--filters must be a JSON object of {kind} options, got {type(data).__name__}")
    try:
        options = OPTIONS_BY_KIND[kind].model_validate({**data, **flag_options})
    except ValidationError as e:
        origin = "--filters" if args.filters else "command line"
        parser.exit(2, format_errors(e, origin, what=f"{kind} options") + "\n")
    return options, args.input or ""


def executor_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """Executor-specific keyword arguments from the parsed command line."""
    if args.executor == "slurm":
        kw: dict[str, Any] = {
            "partition": args.partition,
            "time": args.time,
            "cpus_per_task": args.cpus_per_task,
            "mem_per_cpu_gb": int(args.mem_per_cpu_gb),
        }
        if args.qos:
            kw["qos"] = args.qos
        if args.venv_path:
            kw["venv_path"] = args.venv_path
        return kw
    if args.executor == "ray":
        return {"cpus_per_task": args.cpus_per_task, "mem_per_cpu_gb": args.mem_per_cpu_gb}
    return {}


def run(args: argparse.Namespace, options: SourceOptions, input_path: str) -> dict[str, Any]:
    """Run :func:`run_curation` with the command line's output and executor options; print and return the stats."""
    from mixlab.curate.pipeline import run_curation

    result = run_curation(
        options,
        input_path,
        args.output,
        executor=args.executor,
        tasks=args.tasks,
        workers=args.workers if args.workers is not None else (1 if args.executor == "local" else -1),
        logging_dir=args.logging_dir,
        **executor_kwargs(args),
    )
    print(json.dumps(result, indent=2))
    return result


def main(kinds: Sequence[str], description: str | None = None, argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Parse ``argv``, run the curation, print and return its statistics."""
    parser = build_parser(kinds, description)
    args = parser.parse_args(argv)
    options, input_path = resolve_source(args, kinds, parser)
    return run(args, options, input_path)
