"""The Stack row schema and the file selections of the sample's code and markup subsets (for :mod:`mixlab.builders.sample`).

A :class:`CodeSource` names real files in the unpacked inputs (a root folder, glob patterns, how many to draw)
plus where they live upstream (``max_stars_repo_name`` / ``max_stars_repo_path``) and their license.
``extra`` files are always taken: the minified, auto-generated and data-like files that StarCoder-style
quality filters must drop.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mixlab.builders.convert import truncate_text

MAX_FILE_CHARS = 30_000  # hard cap per file (truncated at a line boundary)
PICK_MIN_BYTES, PICK_MAX_BYTES = 400, 16_000  # size window of randomly drawn files (keeps the sample small)

STACK_COLUMNS: tuple[tuple[str, str], ...] = (
    ("content", "string"),
    ("lang", "string"),
    ("ext", "string"),
    ("size", "int64"),
    ("avg_line_length", "double"),
    ("max_line_length", "int64"),
    ("alphanum_fraction", "double"),
    ("hexsha", "string"),
    ("max_stars_repo_name", "string"),
    ("max_stars_repo_path", "string"),
    ("licenses", "list<string>"),
)


def git_blob_sha1(data: bytes) -> str:
    """The git object id of a blob with these bytes (The Stack's ``hexsha``)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def stack_row(content: str, lang: str, path: str, repo: str, licenses: Iterable[str]) -> dict[str, Any]:
    """One row of The Stack's schema, statistics computed as The Stack does: line lengths over
    ``content.splitlines()``, ``alphanum_fraction`` = share of characters for which ``str.isalnum()`` holds,
    ``size`` in UTF-8 bytes."""
    data = content.encode("utf-8")
    lengths = [len(line) for line in content.splitlines()] or [0]
    name = path.rsplit("/", 1)[-1]
    ext = name.rsplit(".", 1)[-1] if "." in name else ""
    return {
        "content": content,
        "lang": lang,
        "ext": ext,
        "size": len(data),
        "avg_line_length": sum(lengths) / len(lengths),
        "max_line_length": max(lengths),
        "alphanum_fraction": sum(c.isalnum() for c in content) / max(len(content), 1),
        "hexsha": git_blob_sha1(data),
        "max_stars_repo_name": repo,
        "max_stars_repo_path": path,
        "licenses": list(licenses),
    }


@dataclass(frozen=True)
class CodeSource:
    """Files of one language drawn from one unpacked input."""

    lang: str  # The Stack ``lang`` value
    root: str  # folder relative to the build directory
    patterns: tuple[str, ...]  # globs relative to root
    repo: str  # upstream repository (owner/name)
    licenses: tuple[str, ...]  # SPDX ids
    count: int  # randomly drawn files (within the size window)
    upstream: str = ""  # prefix of the upstream path (prepended to the path relative to root)
    extra: tuple[str, ...] = ()  # files always taken (minified / generated / data-like), relative to root
    origin: str = ""  # package the root comes from (for SOURCES.md)
    max_bytes: int = PICK_MAX_BYTES  # largest randomly drawn file (larger ones: cut to MAX_FILE_CHARS)
    skip_suffixes: tuple[str, ...] = ()  # file-name endings never drawn (e.g. Pygments' ".output" dumps)


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return None


def select_rows(
    build: Path, src: CodeSource, seed: int, upstream_path: Callable[[str], str] | None = None
) -> list[dict[str, Any]]:
    """Rows for ``src``: ``count`` files drawn by a seeded RNG from the sorted candidates, plus ``extra``."""
    root = build / src.root
    if not root.is_dir():
        raise FileNotFoundError(f"{src.lang}: input folder missing: {root}")
    extra = set(src.extra)
    cands: list[str] = []
    for pat in src.patterns:
        for p in sorted(root.glob(pat)):
            rel = p.relative_to(root).as_posix()
            if not p.is_file() or p.is_symlink() or rel in extra or p.name.endswith(src.skip_suffixes):
                continue
            if PICK_MIN_BYTES <= p.stat().st_size <= src.max_bytes:
                cands.append(rel)
    cands = sorted(set(cands))
    rng = random.Random(f"{seed}:{src.lang}:{src.root}")
    picked = rng.sample(cands, min(src.count, len(cands)))
    rows = []
    for rel in sorted(picked) + list(src.extra):
        text = _read_text(root / rel)
        if text is None or not text.strip():
            if rel in extra:
                raise ValueError(f"{src.lang}: required file unreadable: {root / rel}")
            continue
        path = upstream_path(rel) if upstream_path else src.upstream + rel
        rows.append(stack_row(truncate_text(text, MAX_FILE_CHARS), src.lang, path, src.repo, src.licenses))
    return rows


def write_stack_parquet(rows: list[dict[str, Any]], path: Path) -> None:
    """Write rows with The Stack's exact column order and types (zstd-compressed parquet)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {
        "string": pa.string(),
        "int64": pa.int64(),
        "double": pa.float64(),
        "list<string>": pa.list_(pa.string()),
    }
    schema = pa.schema([(name, types[t]) for name, t in STACK_COLUMNS])
    table = pa.Table.from_pylist(rows, schema=schema)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="zstd", compression_level=19)


# ----------------------------------------------------------------------------------------------------------
# Selections. Folder names follow the-stack-dedup (`data/<folder>`): lower-case, "#" -> "-sharp".
# ----------------------------------------------------------------------------------------------------------

# fmt: off
GO = "deb/golang-1.19-src/usr/share/go-1.19"
RUST = "deb/rust-src/usr/src/rustc-1.63.0"
GLIBC = "src/glibc-2.36"
PYGMENTS = "src/pygments-2.18.0"
BOOTSTRAP = "src/npm/bootstrap-5.3.3/package"
RXJS = "src/npm/rxjs-7.8.1/package"
BSD3, BSD2, MIT, APACHE = ("BSD-3-Clause",), ("BSD-2-Clause",), ("MIT",), ("Apache-2.0",)
RUST_LICENSES = ("Apache-2.0", "MIT")
GLIBC_LICENSE = ("LGPL-2.1-or-later",)
GO_ORIGIN = "Debian golang-1.19-src 1.19.8-2"
RUST_ORIGIN = "Debian rust-src 1.63.0+dfsg1-2"
GLIBC_ORIGIN = "Debian glibc-source 2.36-9+deb12u14 (glibc-2.36.tar.xz)"
GO_PACKAGES = ("strings", "bufio", "sort", "container/*", "bytes", "path", "flag", "encoding/csv",
               "text/tabwriter", "errors", "net/url", "html", "math", "time")
GLIBC_DIRS = ("string", "stdlib", "stdio-common", "malloc", "ctype", "posix", "misc", "time")
RXJS_DIRS = ("", "operators/", "observable/", "scheduler/", "util/")

CODE_SOURCES: tuple[CodeSource, ...] = (
    CodeSource("Python", "src/click-8.1.7", ("src/click/*.py",), "pallets/click", BSD3, 8,
               origin="PyPI click 8.1.7"),
    CodeSource("Python", PYGMENTS, ("pygments/*.py", "pygments/lexers/*.py", "pygments/formatters/*.py",
                                    "pygments/styles/*.py"), "pygments/pygments", BSD2, 22,
               extra=("pygments/lexers/_mapping.py", "pygments/lexers/_css_builtins.py"),
               origin="PyPI Pygments 2.18.0"),
    CodeSource("Go", GO, tuple(f"src/{d}/*.go" for d in GO_PACKAGES), "golang/go", BSD3, 32,
               extra=("src/strconv/isprint.go", "src/math/bits/bits_tables.go", "src/unicode/tables.go",
                      "src/syscall/zerrors_linux_amd64.go"),
               origin=GO_ORIGIN),
    CodeSource("Java", "src/openjdk-17", ("java.base/java/util/*.java", "java.base/java/util/function/*.java",
                                          "java.base/java/io/*.java", "java.base/java/lang/*.java"),
               "openjdk/jdk17u", ("GPL-2.0-only WITH Classpath-exception-2.0",), 30,
               extra=("java.base/java/nio/ByteBufferAsCharBufferB.java",
                      "java.base/java/lang/CharacterData00.java"),
               origin="Debian openjdk-17-source 17.0.21.1+2-1~deb12u1 (lib/src.zip)"),
    CodeSource("C", GLIBC, tuple(f"{d}/*.c" for d in GLIBC_DIRS), "bminor/glibc", GLIBC_LICENSE, 30,
               extra=("sysdeps/unix/sysv/linux/x86_64/64/arch-syscall.h", "iconvdata/big5.c",
                      "locale/C-ctype.c"),
               origin=GLIBC_ORIGIN),
    CodeSource("C++", "deb/googletest/usr/src/googletest",
               ("googletest/src/*.cc", "googlemock/src/*.cc", "googletest/test/*.cc", "googlemock/test/*.cc",
                "googletest/samples/*.cc"),
               "google/googletest", BSD3, 28, origin="Debian googletest 1.12.1-0.2"),
    CodeSource("Rust", RUST, ("library/core/src/**/*.rs", "library/alloc/src/**/*.rs",
                              "library/std/src/**/*.rs"),
               "rust-lang/rust", RUST_LICENSES, 32, extra=("library/core/src/unicode/unicode_data.rs",),
               origin=RUST_ORIGIN),
    CodeSource("Ruby", "deb/libruby3.1/usr/lib/ruby/3.1.0", ("*.rb", "*/*.rb", "*/*/*.rb"), "ruby/ruby",
               ("Ruby", "BSD-2-Clause"), 30, upstream="lib/", extra=("unicode_normalize/tables.rb",),
               origin="Debian libruby3.1 3.1.7-1~deb12u2"),
    CodeSource("PHP", "deb/php-league-commonmark/usr/share/php/League/CommonMark", ("**/*.php",),
               "thephpleague/commonmark", BSD3, 30, upstream="src/",
               origin="Debian php-league-commonmark 2.3.9-1+deb12u1"),
    CodeSource("Lua", "deb/lua-penlight/usr/share/lua/5.1/pl", ("*.lua",), "lunarmodules/Penlight", MIT, 24,
               upstream="lua/pl/", origin="Debian lua-penlight 1.13.1-3"),
    CodeSource("SQL", "deb/postgresql-15/usr/share/postgresql/15", ("*.sql", "extension/*.sql"),
               "postgres/postgres", ("PostgreSQL",), 30, origin="Debian postgresql-15 15.20-0+deb12u1"),
    CodeSource("JavaScript", BOOTSTRAP, ("js/src/*.js", "js/src/*/*.js"), "twbs/bootstrap", MIT, 16,
               extra=("dist/js/bootstrap.min.js",), origin="npm bootstrap 5.3.3"),
    CodeSource("JavaScript", "deb/libjs-sphinxdoc/usr/share/javascript/sphinxdoc/1.0", ("*.js",),
               "sphinx-doc/sphinx", BSD2, 5, upstream="sphinx/themes/basic/static/",
               origin="Debian libjs-sphinxdoc 5.3.0-4"),
    CodeSource("JavaScript", RXJS, (), "ReactiveX/rxjs", APACHE, 0, extra=("dist/bundles/rxjs.umd.min.js",),
               origin="npm rxjs 7.8.1"),
    CodeSource("TypeScript", RXJS, tuple(f"src/internal/{d}*.ts" for d in RXJS_DIRS), "ReactiveX/rxjs",
               APACHE, 32, origin="npm rxjs 7.8.1"),
    CodeSource("Shell", GO, ("src/*.bash", "misc/**/*.sh", "src/**/*.sh"), "golang/go", BSD3, 10,
               origin=GO_ORIGIN),
    CodeSource("Shell", GLIBC, ("scripts/*.sh", "*/*.sh"), "bminor/glibc", GLIBC_LICENSE, 10,
               origin=GLIBC_ORIGIN),
    CodeSource("Shell", RUST, ("src/**/*.sh",), "rust-lang/rust", RUST_LICENSES, 10, origin=RUST_ORIGIN),
    # outside the paper's top-25
    CodeSource("Tcl", "deb/tcllib/usr/share/tcltk/tcllib1.21", ("*/*.tcl",), "tcltk/tcllib", ("TCL",), 20,
               upstream="modules/", origin="Debian tcllib 1.21+dfsg-1"),
    CodeSource("Erlang", "deb/erlang-src/usr/lib/erlang/lib", ("stdlib-*/src/*.erl", "kernel-*/src/*.erl"),
               "erlang/otp", APACHE, 16, origin="Debian erlang-src 1:25.2.3+dfsg-1+deb12u4"),
    CodeSource("Ada", "deb/gnat-12/usr/lib/gcc/x86_64-linux-gnu/12/adainclude",
               ("a-*.adb", "g-*.adb", "s-*.adb"), "gcc-mirror/gcc",
               ("GPL-3.0-or-later WITH GCC-exception-3.1",), 16, upstream="gcc/ada/libgnat/",
               origin="Debian gnat-12 12.2.0-14+deb12u1"),
    CodeSource("Prolog", "deb/swi-prolog-core/usr/lib/swi-prolog", ("library/*.pl",),
               "SWI-Prolog/swipl-devel", BSD2, 20, origin="Debian swi-prolog-core 9.0.4+dfsg-2"),
)

# Pygments' example files, tests/examplefiles/<folder>/ -> The Stack lang (1-5 files each)
PYGMENTS_EXAMPLES: dict[str, str] = {
    "fortran": "FORTRAN", "fortranfixed": "FORTRAN", "vhdl": "VHDL", "cobol": "COBOL", "elixir": "Elixir",
    "ocaml": "OCaml", "erlang": "Erlang", "ada": "Ada", "haskell": "Haskell", "kotlin": "Kotlin",
    "csharp": "C#", "swift": "Swift", "dart": "Dart", "julia": "Julia",
}

PYDOC_HTML = "deb/python3.11-doc/usr/share/doc/python3.11/html"
PYDOC_ORIGIN = "Debian python3.11-doc 3.11.2-6+deb12u9"
NODE_DOC = "deb/nodejs-doc/usr/share/doc/nodejs/api"
NODE_ORIGIN = "Debian nodejs-doc 18.20.4+dfsg-1~deb12u3"
MARKUP_SOURCES: tuple[CodeSource, ...] = (
    CodeSource("HTML", PYDOC_HTML, ("*.html", "faq/*.html", "tutorial/*.html", "howto/*.html",
                                    "library/*.html", "using/*.html"),
               "python/cpython", ("PSF-2.0",), 26, upstream="Doc/build/html/", origin=PYDOC_ORIGIN),
    CodeSource("HTML", "deb/debian-faq/usr/share/doc/debian/FAQ", ("*.html",), "debian/debian-faq",
               ("LicenseRef-Debian-FAQ",), 6, origin="Debian debian-faq 11.1"),
    CodeSource("CSS", BOOTSTRAP, ("dist/css/*.css",), "twbs/bootstrap", MIT, 6,
               extra=("dist/css/bootstrap.min.css",), origin="npm bootstrap 5.3.3"),
    CodeSource("CSS", f"{PYDOC_HTML}/_static", ("*.css",), "python/cpython", ("PSF-2.0",), 5,
               upstream="Doc/build/html/_static/", origin=PYDOC_ORIGIN),
    CodeSource("CSS", "deb/python-statsmodels-doc/usr/share/doc/python-statsmodels-doc/html/_static",
               ("*.css", "stylesheets/*.css"), "statsmodels/statsmodels", BSD3, 8,
               upstream="docs/build/html/_static/", origin="Debian python-statsmodels-doc 0.13.5+dfsg-7"),
    CodeSource("CSS", "deb/python-nbsphinx-doc/usr/share/doc/python-nbsphinx/html/_static", ("*.css",),
               "spatialaudio/nbsphinx", MIT, 6, upstream="doc/_build/html/_static/",
               origin="Debian python-nbsphinx-doc 0.8.11+ds-1"),
    CodeSource("CSS", RUST, ("src/librustdoc/html/static/css/**/*.css", "src/doc/**/*.css"), "rust-lang/rust",
               RUST_LICENSES, 6, origin=RUST_ORIGIN),
    CodeSource("CSS", f"{NODE_DOC}/assets", ("*.css",), "nodejs/node", MIT, 2, upstream="doc/api_assets/",
               origin=NODE_ORIGIN),
    CodeSource("Markdown", RUST, ("src/doc/book/src/*.md", "src/doc/nomicon/src/*.md",
                                  "src/doc/rustc/src/*.md", "src/doc/reference/src/*.md", "library/**/*.md"),
               "rust-lang/rust", RUST_LICENSES, 20, origin=RUST_ORIGIN),
    CodeSource("Markdown", NODE_DOC, ("*.md",), "nodejs/node", MIT, 4, upstream="doc/api/",
               origin=NODE_ORIGIN),
    CodeSource("Markdown", BOOTSTRAP, (), "twbs/bootstrap", MIT, 0, extra=("README.md",),
               origin="npm bootstrap 5.3.3"),
    CodeSource("Markdown", RXJS, ("*.md",), "ReactiveX/rxjs", APACHE, 2, extra=("README.md",),
               origin="npm rxjs 7.8.1"),
)
# fmt: on


def stack_folder(lang: str) -> str:
    """the-stack-dedup ``data/<folder>`` name of a ``lang`` value."""
    return lang.lower().replace("#", "-sharp").replace(" ", "-")


def java_upstream(rel: str) -> str:
    """src.zip path ``java.base/java/util/X.java`` -> jdk repository path."""
    module, _, rest = rel.partition("/")
    return f"src/{module}/share/classes/{rest}"


def postgres_upstream(rel: str) -> str:
    """Installed ``share/postgresql/15`` SQL file -> postgres repository path."""
    if rel.startswith("extension/"):
        name = rel.split("/", 1)[1]
        return f"contrib/{name.split('--', 1)[0]}/{name}"
    return f"src/backend/catalog/{rel}"


def otp_upstream(rel: str) -> str:
    """Installed ``stdlib-4.2/src/lists.erl`` -> ``lib/stdlib/src/lists.erl`` in the OTP repository."""
    app, _, rest = rel.partition("/")
    return f"lib/{app.rsplit('-', 1)[0]}/{rest}"


UPSTREAM_PATHS: dict[str, Callable[[str], str]] = {
    "src/openjdk-17": java_upstream,
    "deb/postgresql-15/usr/share/postgresql/15": postgres_upstream,
    "deb/erlang-src/usr/lib/erlang/lib": otp_upstream,
}
