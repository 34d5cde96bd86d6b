"""Build the code-in-text detector's HELD-OUT test set from packages the tuning set never used.

``python -m mixlab.builders.detector_heldout --out benchmarks/data/code_in_text_heldout.jsonl.zst`` fetches the
packages of :data:`HELDOUT_DEBIAN`, :data:`HELDOUT_NPM` and :data:`HELDOUT_PYPI` (:mod:`mixlab.builders.pins`,
hash-checked and cached by :mod:`mixlab.builders.fetch`), labels every line from the file's own type or markup
and writes the records in the format of :mod:`mixlab.curate.detector_eval`; ``split`` is drawn per PACKAGE:
``dev`` (:data:`DEV_PACKAGES`) may be looked at when a rule fails, every other package is ``test``: only scored.
None of these packages is an input of :mod:`mixlab.builders.detector_set` (the set the detector is tuned on):
the detector's rules were never looked at against this material before it was frozen.

Labels (never from the detector):

- prose: licence texts (base-files ``common-licenses``), poetry, quotations and definitions (fortunes:
  ``songs-poems``, ``literature``, ``love``, ``wisdom``, ``definitions``, ``goedel``), Debian changelogs
  (``changelog.Debian.gz`` of every package used here);
- code, whole files by file type: Ruby, PHP, Go, Rust, C++ headers, Emacs Lisp, Perl, shell (bash completions),
  Python, JavaScript, TypeScript declarations, SQL, CMake, and configuration and data formats: YAML (CI
  workflows, yamllint's configs), JSON (``package.json``, cargo checksums), INI (``tox.ini``, systemd units,
  logrotate configs), TOML (``pyproject.toml``, ``Cargo.toml``);
- mixed / prose: Markdown READMEs, changelogs and docs (fenced blocks are code, tables and raw HTML ignored, as
  :func:`mixlab.builders.detector_sources.markdown_piece` labels them).

Documents are cut at blank lines to at most ~6,000 characters (at most two pieces per file), drawn seeded per
source so that no single package dominates.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mixlab.builders import pins
from mixlab.builders.detector_set import _records, write_records
from mixlab.builders.detector_sources import Piece, _cut, markdown_piece
from mixlab.builders.fetch import extract_tar, unpack_deb
from mixlab.builders.fetch import fetch as fetch_package

SEED = 2025_0412
HELDOUT_DEBIAN = (
    "base-files", "fortunes", "ruby-rack", "elpa-dash", "golang-github-pkg-errors-dev", "librust-either-dev",
    "yamllint", "libtry-tiny-perl", "php-psr-log", "libfmt-dev", "logrotate", "bash-completion",
)  # fmt: skip
DEV_PACKAGES = frozenset({"express", "attrs", "libfmt-dev", "sqlparse"})  # the rest: never looked at
HELDOUT_NPM = ("commander", "express", "js-yaml")
HELDOUT_PYPI = ("tomli", "sqlparse", "attrs")
POEMS = ("songs-poems", "literature", "love", "wisdom", "definitions", "goedel")
CODE_SUFFIXES = {  # file suffix -> language (whole files are code)
    ".rb": "ruby", ".php": "php", ".go": "go", ".rs": "rust", ".h": "c++", ".el": "emacs-lisp", ".pm": "perl",
    ".py": "python", ".pyi": "python", ".js": "javascript", ".ts": "typescript", ".sql": "sql",
    ".cmake": "cmake", ".yml": "yaml", ".yaml": "yaml", ".json": "json", ".ini": "ini", ".toml": "toml",
    ".service": "ini", ".timer": "ini", ".conf": "config", ".ru": "ruby",
}  # fmt: skip


def _packages() -> list[pins.Package]:
    return (
        [pins.DEBIAN[n] for n in HELDOUT_DEBIAN]
        + [pins.HELDOUT_NPM[n] for n in HELDOUT_NPM]
        + [pins.HELDOUT_PYPI[n] for n in HELDOUT_PYPI]
    )


def fetch(build: Path) -> None:
    """Unpack every held-out package into ``build/deb/<name>`` or ``build/src/<name>``."""
    for pkg in _packages():
        path = fetch_package(pkg)
        if pkg.registry == "debian":
            unpack_deb(path, build / "deb" / pkg.name)
        else:
            extract_tar(path, build / "src" / pkg.name)


def _origin(pkg: pins.Package, rel: str) -> str:
    return f"{pkg.registry}:{pkg.name} {pkg.version}: {rel}"


def _read(path: Path) -> str | None:
    try:
        raw = path.read_bytes()
        return (gzip.decompress(raw) if path.suffix == ".gz" else raw).decode("utf-8")
    except (UnicodeDecodeError, OSError):
        return None


def licences(build: Path) -> Iterator[Piece]:
    pkg = pins.DEBIAN["base-files"]
    for path in sorted((build / "deb/base-files/usr/share/common-licenses").iterdir()):
        if path.is_file() and (text := _read(path)):
            p = Piece(
                "licence", _origin(pkg, f"usr/share/common-licenses/{path.name}"), "per file (licence text)"
            )
            p.add(text.strip("\n"), "prose")
            yield p


def poems(build: Path) -> Iterator[Piece]:
    """Fortune files: entries separated by ``%`` lines, grouped into pieces of ~2,500 characters."""
    pkg = pins.DEBIAN["fortunes"]
    for name in POEMS:
        text = _read(build / "deb/fortunes/usr/share/games/fortunes" / name) or ""
        entries = [e.strip("\n") for e in text.split("\n%\n") if e.strip()]
        for k in range(0, len(entries), 6):
            p = Piece(
                "fortunes",
                _origin(pkg, f"usr/share/games/fortunes/{name}@{k // 6}"),
                "public domain / fair use",
            )
            p.group = name
            for e in entries[k : k + 6]:
                p.blank()
                p.add(e.expandtabs(8), "prose")
            yield p


def changelogs(build: Path) -> Iterator[Piece]:
    for name in HELDOUT_DEBIAN:
        pkg = pins.DEBIAN[name]
        for path in sorted((build / "deb" / name / "usr/share/doc").glob("*/changelog.Debian.gz")):
            if text := _read(path):
                p = Piece(
                    "debian-changelog",
                    _origin(pkg, path.relative_to(build / "deb" / name).as_posix()),
                    "per package",
                )
                p.add(text.strip("\n"), "prose")
                yield p


def _code_piece(path: Path, pkg: pins.Package, rel: str) -> Piece | None:
    text = _read(path)
    if not text or not 200 <= len(text) <= 200_000:
        return None
    lang = CODE_SUFFIXES.get(path.suffix, "shell")
    p = Piece(f"file-{lang}", _origin(pkg, rel), "per package")
    p.add(_cut(text.expandtabs(8) if lang == "config" else text), "code")
    return p


def code_files(build: Path) -> Iterator[Piece]:
    """Whole source, configuration and data files, by file type (bash completions: shell scripts)."""
    for pkg in _packages():
        root = build / ("deb" if pkg.registry == "debian" else "src") / pkg.name
        for path in sorted(root.rglob("*")):
            rel = path.relative_to(root).as_posix()
            shell = "/bash-completion/completions/" in f"/{rel}" and "." not in path.name
            config = rel.startswith("etc/logrotate") or path.suffix == ".conf"
            skip = not path.is_file() or "/.idea/" in f"/{rel}" or (path.suffix not in CODE_SUFFIXES and not shell)
            if skip and not config:
                continue
            if "/tests/files/" in rel and path.suffix != ".sql":
                continue
            if (p := _code_piece(path, pkg, rel)) is not None:
                yield p


def markdown_docs(build: Path) -> Iterator[Piece]:
    for pkg in _packages():
        root = build / ("deb" if pkg.registry == "debian" else "src") / pkg.name
        for path in sorted(root.rglob("*.md")):
            rel = path.relative_to(root).as_posix()
            if "/.github/" in f"/{rel}" or not (text := _read(path)):
                continue
            yield markdown_piece(text, "markdown", _origin(pkg, rel), "per package")


def build_records(build: Path) -> list[dict[str, Any]]:
    """Every held-out record (seeded draws per source; at most ``cap`` documents per language or source)."""
    rng = random.Random(f"{SEED}:detector-heldout")
    by_source: dict[str, list[dict[str, Any]]] = {}
    for gen in (licences, poems, changelogs, code_files, markdown_docs):
        for piece in gen(build):
            for rec in _records(piece):
                package = rec["origin"].split(" ", 1)[0].split(":", 1)[1]  # "registry:name version: path"
                rec["split"] = "dev" if package in DEV_PACKAGES else "test"
                by_source.setdefault(rec["source"], []).append(rec)
    caps = {"fortunes": 120, "debian-changelog": 30, "licence": 40, "markdown": 160}
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for source in sorted(by_source):
        recs = by_source[source]
        for r in sorted(rng.sample(recs, min(caps.get(source, 40), len(recs))), key=lambda r: r["id"]):
            if r["text"] not in seen:
                seen.add(r["text"])
                out.append(r)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/data/code_in_text_heldout.jsonl.zst"))
    ap.add_argument("--build-dir", type=Path, help="download folder to reuse (default: a temporary one)")
    args = ap.parse_args(argv)
    build = args.build_dir or Path(tempfile.mkdtemp(prefix="mixlab-detector-heldout-"))
    try:
        fetch(build)
        records = build_records(build)
    finally:
        if args.build_dir is None:
            shutil.rmtree(build, ignore_errors=True)
    size = write_records(records, args.out)
    counts: dict[str, int] = {}
    for r in records:
        counts[r["label"]] = counts.get(r["label"], 0) + 1
    print(f"{len(records)} records, {size} bytes -> {args.out}")
    print(json.dumps(dict(sorted(counts.items()))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
