"""The ``mixlab`` command line: validate | run | curate | tokenize | pack | train | inspect | export | eval | export-hf | study | gc | demo.

Every command that takes a recipe accepts ``--set a.b=value`` overrides (repeatable). ``validate`` imports
neither torch nor datatrove.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

from mixlab.recipe import Recipe, RecipeError, load_recipe, recipe_hash

REPO_RECIPES = Path(__file__).resolve().parents[1] / "recipes"
STAGES = ["curate", "tokenize", "pack", "train", "eval"]


def _recipe(args: argparse.Namespace) -> Recipe:
    return load_recipe(args.recipe, args.set or [])


def cmd_validate(args: argparse.Namespace) -> int:
    if args.schema:
        print(json.dumps(Recipe.model_json_schema(), indent=2))
        return 0
    if not args.recipes:
        print("mixlab validate: give one or more recipe files (or --schema)", file=sys.stderr)
        return 2
    failed = 0
    for path in args.recipes:
        try:
            r = load_recipe(path, args.set or [])
        except RecipeError as e:
            failed += 1
            print(f"FAIL {e}", file=sys.stderr)
            continue
        phases = " -> ".join(
            f"{n}[{p.tokens:,} tok: " + ", ".join(f"{s} {w:g}" for s, w in p.mixture.items() if w > 0) + "]"
            for n, p in r.phases.items()
        )
        disk = sum(r.packed_bytes(p) for p in r.phases)
        print(f"ok   {path}  hash {recipe_hash(r)[:12]}  {phases}  packed {disk / 1e9:.3g} GB")
    return 1 if failed else 0


def _run_until(args: argparse.Namespace, until: str) -> int:
    from mixlab.report import format_summary, summarize, write_report
    from mixlab.stages import run

    # `demo` has no engine flags: it runs locally (getattr keeps one code path for every command)
    engine = {k: v for k in ("partition", "time", "cpus_per_task", "mem_per_cpu_gb") if (v := getattr(args, k, None))}
    executor, tasks = getattr(args, "executor", "local"), getattr(args, "tasks", None)
    # a limit on concurrent tasks is a local default only: on a cluster `%1` would run a Slurm array one by one
    workers = args.workers if args.workers is not None else (1 if executor == "local" else -1)
    recipe = _recipe(args)
    start = time.time()
    state = run(recipe, Path(args.workdir), until=until, progress=not args.quiet, workers=workers,
                executor=executor, tasks=tasks, executor_options=engine)
    if int(os.environ.get("RANK", 0)) != 0:  # under torchrun only rank 0 reports
        return 0
    summary = summarize(state)
    print(format_summary(summary))
    report = write_report(summary, Path(args.workdir) / "runs" / recipe.name)
    print(f"\nreport: {report}  ({time.time() - start:.0f} s)")
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    """The recipe's pack plan (sequences per source, shards, disk) from assumed supplies; reads no data."""
    from mixlab.pack.plan import format_plan, plan_recipe

    recipe = _recipe(args)
    supplies: dict[str, int] = {}
    for item in args.supply or []:
        name, _, value = item.partition("=")
        try:
            supplies[name] = int(float(value))
        except ValueError:
            raise RecipeError(f"--supply {item!r}: expected SOURCE=TOKENS, e.g. --supply text=6.27e11") from None
    unknown = sorted(set(supplies) - set(recipe.sources))
    if unknown:
        raise RecipeError(f"--supply names unknown source(s) {unknown}; the recipe has {sorted(recipe.sources)}")
    unbounded = [s for s in recipe.active_sources() if s not in supplies]
    for s in unbounded:  # no figure given: plan without a supply limit, and say so
        supplies[s] = 1 << 62
    print(format_plan(recipe, plan_recipe(recipe, supplies, shard_sequences=args.shard_sequences)))
    if unbounded:
        print(f"note: no --supply for {', '.join(unbounded)}: planned as unbounded (no repetition check)")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from mixlab.inspect import inspect_phase

    print(inspect_phase(Path(args.phase_dir), samples=args.samples, chars=args.chars))
    return 0


def cmd_study(args: argparse.Namespace) -> int:
    from mixlab.study import PRESETS, run_study

    paths = [Path(p) for p in args.recipes]
    if args.preset:
        paths += [REPO_RECIPES / f"{name}.yaml" for name in PRESETS[args.preset]]
    if not paths:
        print("mixlab study: give recipe files or --preset", file=sys.stderr)
        return 2
    recipes = [load_recipe(p, args.set or []) for p in paths]
    objective = {}
    for part in (args.objective or "text=0.5,code=0.5").split(","):
        domain, _, weight = part.partition("=")
        objective[domain.strip()] = float(weight)
    result = run_study(
        recipes, Path(args.workdir), baseline=args.baseline or recipes[0].name, objective=objective,
        evaluate=args.eval, progress=not args.quiet, workers=args.workers,
    )
    print(result["table"])
    if result["recommendation"]:
        print(f"\nrecommended code share for {objective}: {result['recommendation']['share']:.2f}")
    print(f"\nstudy: {Path(args.workdir) / 'study' / 'study.md'}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from mixlab.pack.dataset import PackedDataError
    from mixlab.pack.export import export_phase

    try:
        result = export_phase(Path(args.phase_dir), Path(args.out), args.format)
    except (PackedDataError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for path, entry in result.files.items():
        print(f"{path}  {entry.bytes:,} bytes  xxh64 {entry.xxh64}")
    print(f"{result.num_sequences:,} sequences of {result.seq_len}+1 tokens ({result.dtype}); read: {result.reader}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from mixlab.eval.run import evaluate_checkpoint

    out = evaluate_checkpoint(Path(args.checkpoint), args.tokenizer, args.suite, args.limit,
                              out_dir=args.out)
    for name, task in out.get("tasks", {}).items():
        score = task.get("score", task.get("primary"))
        print(f"{name:<22}{task.get('category', ''):<18}{score if score is not None else '-'}")
    print("categories: " + ", ".join(f"{c}={v:.3f}" for c, v in out.get("categories", {}).items()))
    return 0


def cmd_export_hf(args: argparse.Namespace) -> int:
    from mixlab.hf_export import export_hf

    print(export_hf(Path(args.checkpoint), Path(args.out), encoding_spec=args.tokenizer))
    return 0


def cmd_gc(args: argparse.Namespace) -> int:
    """Remove the staging folders of killed runs that no run will resume (:meth:`mixlab.workspace.Workspace.gc`)."""
    from mixlab.errors import MixlabError
    from mixlab.workspace import Workspace

    root = Path(args.workdir)
    if not root.is_dir():
        raise MixlabError(f"{root}: no such workspace; give the --workdir of a mixlab run")
    report = Workspace(root).gc(older_than_s=parse_age(args.older_than), all_staging=args.all_staging,
                                dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    for entry, why in report.removed:
        print(f"{verb:<12}  {_bytes(entry.bytes):>9}  {entry.path.relative_to(root)}  ({why})")
    for entry, why in report.kept:
        print(f"{'kept':<12}  {_bytes(entry.bytes):>9}  {entry.path.relative_to(root)}  ({why})")
    print(f"{verb} {len(report.removed)} staging entr{'y' if len(report.removed) == 1 else 'ies'}, "
          f"{_bytes(report.bytes_freed)} {'would be ' if args.dry_run else ''}freed; kept {len(report.kept)}")
    return 0


def parse_age(text: str) -> float:
    """Seconds of an age such as ``90``, ``30s``, ``45min``, ``12h``, ``1.5d``."""
    from mixlab.errors import MixlabError

    units = {"d": 86400, "h": 3600, "min": 60, "m": 60, "s": 1, "": 1}
    number = text.strip().rstrip("dhmins")
    unit = text.strip()[len(number):]
    try:
        value = float(number) * units[unit]
    except (ValueError, KeyError):
        raise MixlabError(f"--older-than {text!r}: expected a number with s, min, h or d, e.g. 12h or 1d") from None
    if value < 0:
        raise MixlabError(f"--older-than {text!r} is negative; 0 removes entries of any age")
    return value


def _bytes(n: int) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} B"


def cmd_demo(args: argparse.Namespace) -> int:
    demo = REPO_RECIPES / "demo.yaml"
    if not demo.exists():
        print(f"demo recipe not found at {demo}; install mixlab from its repository (pip install -e .)", file=sys.stderr)
        return 2
    args.recipe, args.workdir = str(demo), args.out
    return _run_until(args, "eval")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mixlab",
        description="Data-mixture engineering for LLM pre-training: curate sources with datatrove, tokenize, pack "
        "phases at exact proportions, train a Llama-style model phase by phase, evaluate per source.",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log every stage (and datatrove) to stderr")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    v = sub.add_parser("validate", help="check recipe files; print each one's hash and phase plan")
    v.add_argument("recipes", nargs="*", help="recipe YAML files")
    v.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a field, e.g. phases.pretrain.tokens=2e6")
    v.add_argument("--schema", action="store_true", help="print the recipe JSON schema with field descriptions")
    v.set_defaults(func=cmd_validate)
    pl = sub.add_parser("plan", help="pack plan for any budget without reading data: sequences, shards, disk")
    pl.add_argument("recipe", help="recipe YAML file")
    pl.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a field, e.g. phases.pretrain.tokens=4e11")
    pl.add_argument("--supply", action="append", metavar="SOURCE=TOKENS",
                    help="assumed training tokens of a source (repeatable), e.g. text=6.27e11")
    pl.add_argument("--shard-sequences", type=int, default=65_536, help="sequences per packed shard file")
    pl.set_defaults(func=cmd_plan)

    for name, until, text in [
        ("run", "eval", "run every stage of a recipe (reusing finished ones) and write a report"),
        ("curate", "curate", "run the datatrove curation pipeline of every source"),
        ("tokenize", "tokenize", "curate, then build the tokenizer and token shards per source"),
        ("pack", "pack", "... then pack every phase at exact proportions (manifest per phase)"),
        ("train", "train", "... then train phase by phase"),
    ]:
        s = sub.add_parser(name, help=text, description=text)
        s.add_argument("recipe", help="recipe YAML file")
        s.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a recipe field (repeatable)")
        s.add_argument("--workdir", default="mixlab-work", help="workspace for cached stage outputs (default: %(default)s)")
        s.add_argument("--workers", type=int, default=None,
                       help="tasks run at once (default: 1 on local; every task at once on slurm and ray, where the scheduler places them)")
        s.add_argument("--executor", choices=["local", "slurm", "ray"], default="local",
                       help="datatrove executor of the data stages (default: %(default)s)")
        s.add_argument("--tasks", type=int, default=None, help="datatrove tasks per source or phase (default: 1 for curate; --workers, at least 1, for tokenize and pack)")
        s.add_argument("--partition", help="Slurm partition (--executor slurm)")
        s.add_argument("--time", help="Slurm time limit per task, e.g. 04:00:00")
        s.add_argument("--cpus-per-task", type=int, help="CPUs per task (Slurm, Ray)")
        s.add_argument("--mem-per-cpu-gb", type=float, help="memory per CPU in GB (Slurm, Ray)")
        s.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
        s.set_defaults(func=lambda a, u=until: _run_until(a, u))

    i = sub.add_parser("inspect", help="composition table, prefix audit recounted from disk, decoded samples")
    i.add_argument("phase_dir", help="a packed phase folder (workdir/packed/<phase>-<key>)")
    i.add_argument("--samples", type=int, default=2, help="decoded sample sequences per source")
    i.add_argument("--chars", type=int, default=200, help="characters shown per sample")
    i.set_defaults(func=cmd_inspect)

    ev = sub.add_parser("eval", help="score a checkpoint on the task suite (NL reasoning, world knowledge, code)")
    ev.add_argument("checkpoint", help="a trained phase folder (uses its final.pt) or a .pt file")
    ev.add_argument("--tokenizer", help="default: the one the checkpoint was trained with (found in its workspace); "
                    "cl100k_base | o200k_base | a .tiktoken rank file, refused unless it is that same tokenizer")
    ev.add_argument("--suite", default="default", choices=["default", "full", "smoke"], help="task suite")
    ev.add_argument("--limit", type=int, help="at most this many items per task")
    ev.add_argument("--out", help="folder for eval.json and samples.jsonl")
    ev.set_defaults(func=cmd_eval)

    hf = sub.add_parser("export-hf", help="write a checkpoint as a Hugging Face LlamaForCausalLM folder")
    hf.add_argument("checkpoint", help="a trained phase folder or a .pt file")
    hf.add_argument("out", help="output folder (config.json + model.safetensors)")
    hf.add_argument("--tokenizer", help="tokenizer.json is written from the checkpoint's own tokenizer; give one "
                    "(cl100k_base | o200k_base | .tiktoken file) only for checkpoints that record none")
    hf.set_defaults(func=cmd_export_hf)

    st = sub.add_parser("study", help="run a grid of recipes in one workspace and compare them to a baseline",
                        description="Run recipes (sharing cached stages), compare held-out loss per domain to the "
                        "baseline, fit loss vs code share and recommend a share for an objective.")
    st.add_argument("recipes", nargs="*", help="recipe YAML files")
    st.add_argument("--preset", choices=["code-share", "initialization", "cooldown", "quality"],
                    help="a shipped grid, e.g. code-share = code-share-{0,25,50,75,100}")
    st.add_argument("--baseline", help="recipe name to compare against (default: the first)")
    st.add_argument("--objective", help="domain weights of the recommendation, e.g. text=0.75,code=0.25")
    st.add_argument("--eval", action="store_true", help="also run the task suite on every final checkpoint")
    st.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a field in every recipe")
    st.add_argument("--workdir", default="mixlab-study", help="shared workspace (default: %(default)s)")
    st.add_argument("--workers", type=int, default=2, help="processes for curation and tokenization")
    st.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    st.set_defaults(func=cmd_study)

    e = sub.add_parser("export", help="write a packed phase in Megatron, datatrove or llm.c format")
    e.add_argument("phase_dir", help="a packed phase folder (workdir/packed/<phase>-<key>)")
    e.add_argument("--format", required=True, choices=["megatron", "datatrove", "llmc"], help="target format")
    e.add_argument("--out", required=True, metavar="PREFIX", help="output path prefix (suffixes are added)")
    e.set_defaults(func=cmd_export)

    g = sub.add_parser("gc", help="remove staging folders that killed runs left and no run will resume",
                       description="Remove what killed runs left in a workspace: .<out>.partial (pack), .<out>.build "
                       "(tokenize) and .<name>.tmp-* entries. Never removes one whose output a live run holds (its "
                       "lock), one modified within --older-than (a task may still write), nor, without "
                       "--all-staging, the latest resumable staging of a phase or source (a re-run resumes it).")
    g.add_argument("--workdir", default="mixlab-work", help="workspace to clean (default: %(default)s)")
    g.add_argument("--dry-run", action="store_true", help="print what would be removed; remove nothing")
    g.add_argument("--all-staging", action="store_true",
                   help="also remove the latest resumable staging of each phase or source (its work is lost)")
    g.add_argument("--older-than", default="1d", metavar="AGE",
                   help="only remove entries unmodified for AGE, e.g. 12h, 30min, 0 (default: %(default)s)")
    g.set_defaults(func=cmd_gc)

    d = sub.add_parser("demo", help="run recipes/demo.yaml on the embedded sample (a few minutes on 2 cores)")
    d.add_argument("--out", default="mixlab-demo", help="output folder (default: %(default)s)")
    d.add_argument("--workers", type=int, default=2, help="processes for curation and tokenization")
    d.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a demo recipe field")
    d.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    d.set_defaults(func=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    if args.verbose:
        os.environ["MIXLAB_VERBOSE"] = "1"
    else:
        try:  # datatrove logs every task through loguru; keep the console for progress bars and the summary
            from loguru import logger

            logger.remove()
            logger.add(sys.stderr, level="WARNING")
        except ImportError:
            pass
    try:
        return args.func(args)
    except Exception as e:  # one message, no traceback (unless -v): see mixlab.errors
        if args.verbose:
            raise
        code, message = describe_failure(e)
        print(f"error: {message}", file=sys.stderr)
        return code
    except KeyboardInterrupt:
        if args.verbose:
            raise
        print("interrupted: finished stages are kept; run the same command again to resume", file=sys.stderr)
        return 130


def describe_failure(e: BaseException) -> tuple[int, str]:
    """(exit status, one-line-or-more message with the fix) for any failure reaching the command line."""
    import errno

    from mixlab.errors import MixlabError

    if isinstance(e, MixlabError | RecipeError):
        return 2, str(e)
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        where = f" writing {e.filename}" if e.filename else ""
        return 2, (f"disk full{where}: free space, or point --workdir at a larger disk (`mixlab plan` shows what "
                   f"a recipe needs); finished stages are kept and a re-run resumes")
    if isinstance(e, OSError) and e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return 2, f"permission denied: {e.filename or e}; choose a writable --workdir"
    if isinstance(e, FileNotFoundError):
        return 2, f"{e.strerror or 'not found'}: {e.filename or e}" if e.filename else str(e)
    if isinstance(e, MemoryError):
        return 2, ("out of memory: lower the phase budget or the batch / micro-batch size, or use a machine with "
                   "more memory")
    return 1, (f"internal error ({type(e).__name__}: {e}); this is a bug in mixlab: re-run with -v for the "
               f"traceback and report it")


if __name__ == "__main__":
    sys.exit(main())
