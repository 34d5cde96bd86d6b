"""Real documents with line labels for :mod:`mixlab.builders.detector_set`: one generator of :class:`Piece` per source.

Each generator reads unpacked registry packages under a build folder (:func:`fetch` unpacks them there from
:mod:`mixlab.builders.fetch`, hash-checked and cached) and labels every line from the source's own markup (see
the :mod:`mixlab.curate.detector_eval` docstring for the rules). No network access outside :func:`fetch`; no
datatrove.
"""

from __future__ import annotations

import bz2
import gzip
import html
import random
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mixlab.builders import pins
from mixlab.builders.fetch import extract_tar, extract_zip, unpack_deb
from mixlab.builders.fetch import fetch as fetch_package
from mixlab.builders.sample import ENWIKI, GENSIM, GENSIM_DATA, gensim_wheel

SEED = 2408_10914
DEBIAN = {  # name -> version, as the embedded sample pins them
    name: pins.DEBIAN[name].version
    for name in (
        "python3.11-doc", "dict-devil", "debian-reference-en", "nodejs-doc", "r-cran-zoo", "r-cran-sandwich",
        "r-cran-strucchange", "r-cran-coin", "r-cran-vcd", "r-cran-lmtest", "r-cran-party",
    )
}  # fmt: skip
PYGMENTS = pins.PYGMENTS.version
PYDOC = "deb/python3.11-doc/usr/share/doc/python3.11/html/_sources"
MAX_CHARS = 6_000  # documents are cut (at a block boundary) to keep the set under 1.5 MB compressed
# Pygments example folders of programming languages (config, data and markup formats left out)
# fmt: off
PYGMENTS_CODE = (
    "ada", "agda", "apl", "applescript", "arduino", "as3", "awk", "bash", "boo", "c", "carbon", "chapel", "clojure",
    "cobol", "coffee-script", "common-lisp", "cpp", "cr", "csharp", "cuda", "d", "dart", "delphi", "dylan",
    "eiffel", "elixir", "elm", "erlang", "factor", "fan", "fennel", "fish", "forth", "fortran", "fsharp", "fstar",
    "futhark", "gap", "gdscript", "glsl", "go", "gosu", "groovy", "haskell", "hlsl", "hx", "hylang", "idris",
    "ioke", "j", "java", "js", "julia", "koka", "kotlin", "lean", "limbo", "logtalk", "lsl", "lua", "luau", "make",
    "mathematica", "matlab", "maxima", "modula2", "mojo", "monkey", "mql", "nasm", "nemerle", "newlisp", "nim",
    "nit", "objective-c", "ocaml", "odin", "opa", "pawn", "perl", "perl6", "php", "phix", "pike", "pony",
    "postgresql", "powershell", "praat", "prolog", "python", "qbasic", "qml", "r", "racket", "rb", "reason",
    "rebol", "red", "rexx", "rust", "savi", "scala", "scheme", "sml", "smalltalk", "solidity", "swift", "tcsh",
    "tea", "teal", "ts", "tsql", "vb.net", "verilog", "vhdl", "vyper", "whiley", "wren", "x10", "xtend",
    "zephir", "zig",
)
# fmt: on
STACK_MARKUP = ("html", "css", "markdown")

Label = str  # "prose" | "code" | "ignore"; blank lines are always unlabeled


@dataclass
class Piece:
    """A document under construction: lines with their labels."""

    source: str
    origin: str
    license: str
    lines: list[str] = field(default_factory=list)
    labels: list[Label] = field(default_factory=list)
    group: str = ""  # split key (default: origin): pieces of one file share a split

    def add(self, text: str, label: Label) -> None:
        for line in text.split("\n"):
            self.lines.append(line.rstrip())
            self.labels.append(label)

    def blank(self) -> None:
        if self.lines and self.lines[-1]:
            self.add("", "prose")


# ------------------------------------------------------------------------------------------------ prose


def news(build: Path) -> Iterator[Piece]:
    path = build / "gensim" / GENSIM_DATA / "lee_background.cor"
    for i, line in enumerate(path.read_text(encoding="utf-8").split("\n")):
        if line.strip():
            p = Piece(
                "news", f"gensim {GENSIM}: {GENSIM_DATA}lee_background.cor:{i + 1}", "LGPL-2.1 (gensim)"
            )
            p.add(line.strip(), "prose")
            yield p


def wikipedia(build: Path) -> Iterator[Piece]:
    from mixlab.builders.convert import wikitext_to_text

    root = ET.fromstring(bz2.decompress((build / "gensim" / GENSIM_DATA / ENWIKI).read_bytes()))
    ns = {"m": root.tag.split("}")[0][1:]}
    for page in root.findall("m:page", ns):
        if page.find("m:redirect", ns) is not None or page.findtext("m:ns", namespaces=ns) != "0":
            continue
        text = wikitext_to_text(page.findtext("m:revision/m:text", default="", namespaces=ns))
        if len(text) > 1000:
            title = page.findtext("m:title", namespaces=ns)
            p = Piece("wikipedia", f"gensim {GENSIM}: {GENSIM_DATA}{ENWIKI}: {title}", "CC-BY-SA-3.0")
            p.add(text, "prose")
            yield p


def devil(build: Path) -> Iterator[Piece]:
    raw = gzip.decompress((build / "deb/dict-devil/usr/share/dictd/devil.dict.dz").read_bytes())
    text = raw.decode("utf-8")
    text = text[text.index("The Internet Wiretap") :]
    for k, start in enumerate(range(0, len(text), 14_000)):  # stretches spread over the whole book
        cut = text.find("\n\n", start)
        p = Piece(
            "devil", f"dict-devil {DEBIAN['dict-devil']}: usr/share/dictd/devil.dict.dz@{k}", "public-domain"
        )
        end = text.rfind("\n\n", cut, cut + 5000)
        p.add(text[cut:end].strip(), "prose")
        yield p


# ------------------------------------------------------------------------------------------------ code


def stack_rows(sample: Path) -> Iterator[Piece]:
    import pyarrow.parquet as pq

    for path in sorted(sample.glob("stack/data/*/*.parquet")):
        if path.parent.name in STACK_MARKUP:
            continue
        t = pq.read_table(path, columns=["content", "max_stars_repo_name", "max_stars_repo_path", "licenses"])
        for content, repo, fpath, lic in zip(*(t.column(c).to_pylist() for c in t.column_names), strict=True):
            p = Piece("stack", f"mixlab sample stack/{path.parent.name}: {repo}/{fpath}", ",".join(lic or []))
            p.add(_cut(content), "code")
            yield p


def pygments_files(build: Path) -> Iterator[Piece]:
    ex = build / f"pygments-{PYGMENTS}/tests/examplefiles"
    for d in PYGMENTS_CODE:
        for path in sorted((ex / d).glob("*")) if (ex / d).is_dir() else []:
            if path.suffix == ".output" or not path.is_file() or not 300 <= path.stat().st_size <= 60_000:
                continue
            try:
                text = path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue
            p = Piece(
                "pygments", f"Pygments {PYGMENTS} sdist: tests/examplefiles/{d}/{path.name}", "BSD-2-Clause"
            )
            p.add(_cut(text), "code")
            yield p


def _cut(text: str, limit: int = MAX_CHARS) -> str:
    from mixlab.builders.convert import truncate_text

    return truncate_text(text.replace("\r\n", "\n").strip("\n"), limit)


# ------------------------------------------------------------------------------------------------ mixed

SIGNATURE = re.compile(
    r"^\s*\.\.\s+(?:c:|py:)?(?:function|method|class|data|attribute|exception|decorator|"
    r"classmethod|staticmethod|coroutine\w*|describe|object|cmdoption|option|envvar|"
    r"abstractmethod|decoratormethod|member|type|var|macro|struct)::\s*(.+)$",
    re.M,
)


PYDOC_SKIP = {"index.rst.txt", "license.rst.txt"}  # license.rst: licence texts in literal blocks, not code


def python_docs(build: Path, rng: random.Random, n: int) -> Iterator[Piece]:
    from mixlab.builders.convert import TABLE_BORDER, rst_blocks, rst_inline

    src = build / PYDOC
    pages = sorted(p for p in src.rglob("*.rst.txt") if p.name not in PYDOC_SKIP)
    for path in sorted(rng.sample(pages, min(n, len(pages)))):
        raw = path.read_text(encoding="utf-8")
        signatures = {m.strip() for m in SIGNATURE.findall(raw)}
        rel = path.relative_to(build / "deb/python3.11-doc").as_posix()
        p = Piece("python-doc", f"python3.11-doc {DEBIAN['python3.11-doc']}: {rel}", "PSF-2.0")
        for b in rst_blocks(raw):
            p.blank()
            if b.kind == "code":
                first = b.text.split("\n", 1)[0].strip()
                ignore = TABLE_BORDER.match(first) or b.text.strip() in signatures
                p.add(b.text.strip("\n"), "ignore" if ignore else "code")
            elif b.kind == "ul":
                for item in b.items:
                    p.add("- " + rst_inline(item), "prose")
            elif b.text.strip():
                p.add(rst_inline(b.text), "prose")
        yield p


FENCE = re.compile(r"^(\s*)(```+|~~~+)")
HTML_TAG = re.compile(r"^</?[a-zA-Z][\w-]*(?:\s[^>]*)?>")  # a raw HTML line (tables, anchors): markup
HTML_TABLE = re.compile(r"^</?table\b")
API_HEADING = re.compile(r"^#+\s+`[^`]+`\s*$")  # "## `fs.open(path)`": a signature, as in the Python docs


def markdown_piece(text: str, source: str, origin: str, license: str) -> Piece:
    """Markdown: fenced blocks are code (fence lines removed); tables, raw HTML lines, link definitions and
    headings that are one code span (API signatures) are ignored."""
    text = re.sub(r"<!--.*?-->\n?", "", text, flags=re.S)
    p = Piece(source, origin, license)
    fence: str | None = None
    in_table = False
    for line in text.split("\n"):
        m = FENCE.match(line)
        if fence is None and m:
            fence = m.group(2)[:3]
            continue
        if fence is not None:
            if m and m.group(2).startswith(fence) and not line.strip()[len(m.group(2)) :].strip():
                fence = None
            else:
                p.add(line, "code")
            continue
        s = line.strip()
        if HTML_TABLE.match(s):
            in_table = not s.startswith("</")
        markup = (
            in_table
            or HTML_TAG.match(s)
            or API_HEADING.match(s)
            or s.startswith("|")
            or re.match(r"^\[[^\]]+\]:\s", s)
        )
        p.add(line, "ignore" if markup else "prose")
    return p


def nodejs_docs(build: Path) -> Iterator[Piece]:
    api = build / "deb/nodejs-doc/usr/share/doc/nodejs/api"
    for path in sorted(api.glob("*.md.gz")):
        text = gzip.decompress(path.read_bytes()).decode("utf-8")
        sections = re.split(r"\n(?=## )", text)
        for k in range(0, len(sections), 6):  # groups of sections: several documents per page
            origin = f"nodejs-doc {DEBIAN['nodejs-doc']}: usr/share/doc/nodejs/api/{path.name}"
            p = markdown_piece("\n".join(sections[k : k + 6]), "nodejs-doc", origin, "MIT")
            p.group, p.origin = origin, f"{origin}@{k // 6}"
            yield p


def debian_reference(build: Path) -> Iterator[Piece]:
    from mixlab.builders.convert import html_to_text

    ref = build / "deb/debian-reference-en/usr/share/debian-reference"
    pre = re.compile(r"<pre[^>]*>(.*?)</pre>", re.S)
    for path in sorted(ref.glob("ch*.en.html")):
        page = path.read_text(encoding="utf-8")
        p = Piece(
            "debian-reference",
            f"debian-reference-en {DEBIAN['debian-reference-en']}: usr/share/debian-reference/{path.name}",
            "GPL-2.0-or-later",
        )
        pos = 0
        for m in pre.finditer(page):
            p.blank()
            p.add(html_to_text(page[pos : m.start()]), "prose")
            p.blank()
            p.add(html.unescape(re.sub(r"<[^>]+>", "", m.group(1))).strip("\n"), "code")
            pos = m.end()
        p.blank()
        p.add(html_to_text(page[pos:]), "prose")
        yield p


VERBATIM = re.compile(
    r"^\s*\\(begin|end)\{(Sinput|Soutput|Code|CodeInput|CodeOutput|verbatim|Schunk|CodeChunk)\}"
)


def sweave_papers(build: Path) -> Iterator[Piece]:
    """Sweave LaTeX: prose (LaTeX source); R code chunks and Sinput/Code/verbatim environments are code
    (echo=FALSE chunks dropped); Soutput environments and the environment markers are ignored."""
    for path in sorted(build.glob("deb/r-cran-*/usr/lib/R/site-library/*/doc/*.Rnw")):
        rnw = path.read_text(encoding="utf-8", errors="replace")
        start = re.search(r"^\\section\*?\{", rnw, re.M)
        end = re.search(r"^\\bibliography\{|^\\begin\{thebibliography\}|^\\end\{document\}", rnw, re.M)
        body = rnw[start.start() if start else 0 : end.start() if end else len(rnw)]
        pkg = path.relative_to(build / "deb").parts[0]
        rel = path.relative_to(build / "deb" / pkg).as_posix()
        p = Piece("sweave", f"{pkg} {DEBIAN[pkg]}: {rel}", "GPL-2.0-or-later")
        chunk: list[str] | None = None
        env: str | None = None  # inside a hand-written verbatim environment (code, or Soutput: ignored)
        echo = True
        for line in body.split("\n"):
            if chunk is None and re.match(r"^<<.*>>=\s*$", line):
                chunk, echo = [], not re.search(r"echo\s*=\s*(FALSE|F)\b", line)
            elif chunk is not None:
                if re.match(r"^@\s*$", line):
                    if echo and any(c.strip() for c in chunk):
                        p.add("\\begin{Sinput}", "ignore")
                        p.add("\n".join(chunk), "code")
                        p.add("\\end{Sinput}", "ignore")
                    chunk = None
                else:
                    chunk.append(line)
            elif m := VERBATIM.match(line):
                if m.group(2) not in ("Schunk", "CodeChunk"):  # wrappers: markers only
                    env = None if m.group(1) == "end" else m.group(2)
                p.add(line, "ignore")
            elif env is not None:
                p.add(line, "ignore" if env == "Soutput" else "code")
            elif not line.lstrip().startswith("%"):
                p.add(re.sub(r"(?<!\\)%.*$", "", line), "prose")
        yield p


def fetch(build: Path) -> None:
    """Unpack the inputs into ``build`` (fetched by :func:`mixlab.builders.fetch.fetch`: hash-checked, cached)."""
    for name in sorted(DEBIAN):
        unpack_deb(fetch_package(pins.DEBIAN[name]), build / "deb" / name)
    extract_tar(fetch_package(pins.PYGMENTS), build, marker=build / f"pygments-{PYGMENTS}")
    extract_zip(gensim_wheel(), build / "gensim", (GENSIM_DATA + ENWIKI, GENSIM_DATA + "lee_background.cor"))
