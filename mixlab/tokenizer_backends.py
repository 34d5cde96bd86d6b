"""Faster encoders that give exactly mixlab's token ids: a name -> backend table and a verified choice.

Contract:
- A backend is built from a ``tiktoken.Encoding`` (its ranks and split pattern; special tokens are never
  recognized, as in ``encode_ordinary``) and has one call, ``encode_batch_ordinary(texts) -> list[list[int]]``,
  whose ids equal ``mixlab.tokenizer.encode_document(enc, text)`` for every text: the whitespace-free runs of
  ``MAX_RUN`` or more characters are cut exactly as there, and lone surrogates are repaired as tiktoken does.
- ``BACKENDS`` lists the backends fastest first (single core, embedded sample, see benchmarks/RESULTS.md):
  ``gigatoken`` (any ranks with the cl100k_base or o200k_base split pattern), ``quicktok`` and ``bpe-openai``
  (only the named cl100k_base / o200k_base encodings themselves), ``riptoken`` (any ranks and pattern, but
  riptoken 0.2.4 breaks ties between equal merges differently from tiktoken in pre-tokens of 500+ bytes, e.g.
  ``"x" * 1999`` or 6,000 spaces, so its probe fails and it is not chosen), ``tiktoken`` (always).
  Optional packages are imported only when a backend is built.
- ``select_backend(enc, prefer=None)`` returns the first backend that builds and reproduces
  ``encode_document`` on ``probe_texts()`` (adversarial strings); a backend that differs on any of them is
  never chosen. If none does (not even the tiktoken path), it returns ``reference``: ``encode_document`` itself.
  ``prefer`` names one backend and raises ``BackendUnavailable`` (saying why) when that one cannot be used.
- ``backend_status(enc)`` says, for each backend, ``"ok"`` or why it is not used.
- Backends are fork-safe: batch calls never use a package's process-global thread pool (forked children
  inherit them without threads and would hang), so one built in a parent process works in forked workers.
  They pickle (for spawn workers) by rebuilding from the encoding.
"""

from __future__ import annotations

import functools
import re
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import tiktoken

from mixlab.tokenizer import MAX_RUN, encode_document, named_encoding, save_ranks

# The split patterns of tiktoken's named encodings (tests check they still equal tiktoken's own).
NAMED_PATTERNS = {
    "cl100k_base": r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s""",  # noqa: E501
    "o200k_base": "|".join([
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]),
}
_GIGATOKEN_SCHEME = {"cl100k_base": "gpt4", "o200k_base": "o200k"}

# Same spans as mixlab.tokenizer.encode_document's cut (checked by tests against encode_document itself).
_LONG_RUN = re.compile(rf"(?<!\S)\S{{{MAX_RUN},}}")
_WHITESPACE = re.compile(r"\s")


class BackendUnavailable(RuntimeError):
    """A backend that is not installed, cannot represent this encoding, or gives different ids."""


def _may_hold_long_run(text: str) -> bool:
    """False when ``text`` surely holds no whitespace-free run of ``MAX_RUN`` chars (such a run covers an
    aligned block of ``MAX_RUN // 2`` chars, so whitespace in every such block rules it out)."""
    half = MAX_RUN // 2
    return any(_WHITESPACE.search(text, i, i + half) is None for i in range(0, len(text) - half + 1, half))


def _cut(text: str) -> list[str]:
    """``text`` in the pieces ``encode_document`` encodes separately (empty pieces dropped)."""
    pieces: list[str] = []
    start = 0
    for m in _LONG_RUN.finditer(text):
        pieces.append(text[start : m.start()])
        pieces += [text[i : min(i + MAX_RUN, m.end())] for i in range(m.start(), m.end(), MAX_RUN)]
        start = m.end()
    pieces.append(text[start:])
    return [p for p in pieces if p]


def _valid_utf8(text: str) -> str:
    """``text`` unchanged, or, if it holds surrogates, repaired exactly as tiktoken's ``encode_ordinary`` does."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


class Backend:
    """An encoder of ordinary text equal to ``encode_document(enc, ·)``; subclasses define ``_encode``."""

    name = "reference"

    def __init__(self, enc: tiktoken.Encoding) -> None:
        self.enc = enc

    def __reduce__(self) -> tuple[Callable[..., Backend], tuple[str, tiktoken.Encoding]]:
        return build_backend, (self.name, self.enc)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.enc.name!r})"

    def _encode(self, pieces: list[str]) -> list[list[int]]:
        """Ids of each piece, none of which holds a long run; may raise on lone surrogates."""
        raise NotImplementedError

    def _encode_valid(self, pieces: list[str]) -> list[list[int]]:
        try:
            return self._encode(pieces)
        except Exception:
            fixed = [_valid_utf8(p) for p in pieces]
            if all(a is b for a, b in zip(fixed, pieces, strict=True)):
                raise
            return self._encode(fixed)

    def encode_batch_ordinary(self, texts: Sequence[str]) -> list[list[int]]:
        """``[encode_document(enc, t) for t in texts]``, computed by this backend."""
        pieces: list[str] = []
        counts: list[int] = []
        for text in texts:
            if _may_hold_long_run(text):
                cut = _cut(text)
                pieces += cut
                counts.append(len(cut))
            else:
                pieces.append(text)
                counts.append(1)
        ids = self._encode_valid(pieces)
        if len(pieces) == len(texts):
            return ids
        out: list[list[int]] = []
        i = 0
        for n in counts:
            joined: list[int] = []
            for part in ids[i : i + n]:
                joined += part
            out.append(joined)
            i += n
        return out

    def encode_ordinary(self, text: str) -> list[int]:
        return self.encode_batch_ordinary([text])[0]


class ReferenceBackend(Backend):
    """``mixlab.tokenizer.encode_document`` itself: the definition every other backend is checked against."""

    name = "reference"

    def encode_batch_ordinary(self, texts: Sequence[str]) -> list[list[int]]:
        return [encode_document(self.enc, t) for t in texts]


class TiktokenBackend(Backend):
    name = "tiktoken"

    def _encode(self, pieces: list[str]) -> list[list[int]]:
        encode = self.enc.encode_ordinary  # one text at a time: encode_ordinary_batch starts a thread pool
        return [encode(p) for p in pieces]


def _named_pattern(enc: tiktoken.Encoding) -> str:
    """The named encoding whose split pattern ``enc`` uses; raises for any other pattern."""
    for name, pat in NAMED_PATTERNS.items():
        if enc._pat_str == pat:  # noqa: SLF001 - tiktoken exposes no getter
            return name
    raise BackendUnavailable("its split pattern is neither cl100k_base's nor o200k_base's")


@functools.lru_cache(maxsize=2)
def _named_ranks(name: str) -> dict[bytes, int]:
    return named_encoding(name)._mergeable_ranks  # noqa: SLF001


def _named_encoding_of(enc: tiktoken.Encoding) -> str:
    """``cl100k_base`` / ``o200k_base`` if ``enc`` has exactly that encoding's pattern and ranks; raises otherwise."""
    name = _named_pattern(enc)
    ranks = enc._mergeable_ranks  # noqa: SLF001
    if len(ranks) != len(_named_ranks(name)) or ranks != _named_ranks(name):
        raise BackendUnavailable(f"it only ships the named encodings, and these ranks are not {name}'s")
    return name


def _import(module: str, package: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise BackendUnavailable(f"not installed ({e}); install it with `pip install {package}`") from None


class GigatokenBackend(Backend):
    """gigatoken's BPE with its built-in cl100k ("gpt4") or o200k pre-tokenizer; any dense ranks."""

    name = "gigatoken"

    def __init__(self, enc: tiktoken.Encoding) -> None:
        super().__init__(enc)
        scheme = _GIGATOKEN_SCHEME[_named_pattern(enc)]
        rs = _import("gigatoken.gigatoken_rs", "gigatoken")
        ranks = enc._mergeable_ranks  # noqa: SLF001
        if sorted(ranks.values()) != list(range(len(ranks))):
            raise BackendUnavailable("its ranks are not dense 0..n-1, which gigatoken's rank loader requires")
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "ranks.tiktoken"
            save_ranks(enc, path)
            self._tok = rs.BPETokenizer.from_tiktoken(str(path), scheme, {})  # no specials: ordinary text

    def _encode(self, pieces: list[str]) -> list[list[int]]:
        return self._tok.encode_batch_list(pieces, parallel=False)  # parallel=False: never the rayon pool


class QuicktokBackend(Backend):
    """quicktok's hand-compiled scanners; only its bundled cl100k_base / o200k_base."""

    name = "quicktok"

    def __init__(self, enc: tiktoken.Encoding) -> None:
        super().__init__(enc)
        name = _named_encoding_of(enc)
        self._tok = _import("quicktok", "quicktok-v1").get_encoding(name)

    def _encode(self, pieces: list[str]) -> list[list[int]]:
        encode = self._tok.encode_ordinary
        return [encode(p) for p in pieces]


class RiptokenBackend(Backend):
    """riptoken's CoreBPE: any ranks and split pattern; inexact on long pre-tokens with tied merges (see top)."""

    name = "riptoken"

    def __init__(self, enc: tiktoken.Encoding) -> None:
        super().__init__(enc)
        core = _import("riptoken", "riptoken").CoreBPE
        self._tok = core(enc._mergeable_ranks, {}, enc._pat_str)  # noqa: SLF001

    def _encode(self, pieces: list[str]) -> list[list[int]]:
        encode = self._tok.encode_ordinary  # one text at a time: the batch call uses rayon's global pool
        return [encode(p) for p in pieces]


class BpeOpenaiBackend(Backend):
    """GitHub's linear-time ``bpe-openai`` crate; only its bundled cl100k_base / o200k_base."""

    name = "bpe-openai"

    def __init__(self, enc: tiktoken.Encoding) -> None:
        super().__init__(enc)
        name = _named_encoding_of(enc)
        self._tok = _import("bpe_openai._bindings", "bpe-openai").tokenizer_for_encoding(name)

    def _encode(self, pieces: list[str]) -> list[list[int]]:
        encode = self._tok.encode
        return [encode(p) for p in pieces]


# Fastest first (MB/s per core on the embedded sample, benchmarks/bench_tokenize_backends.py).
BACKENDS: dict[str, type[Backend]] = {
    "gigatoken": GigatokenBackend,
    "quicktok": QuicktokBackend,
    "riptoken": RiptokenBackend,
    "bpe-openai": BpeOpenaiBackend,
    "tiktoken": TiktokenBackend,
    "reference": ReferenceBackend,
}


def build_backend(name: str, enc: tiktoken.Encoding) -> Backend:
    """Backend ``name`` for ``enc``, unverified; raises ``BackendUnavailable`` saying why it cannot be built."""
    if name not in BACKENDS:
        raise ValueError(f"unknown tokenizer backend {name!r}; choose one of {sorted(BACKENDS)}")
    try:
        return BACKENDS[name](enc)
    except BackendUnavailable as e:
        raise BackendUnavailable(f"backend {name!r} for encoding {enc.name!r}: {e}") from None


def probe_texts() -> list[str]:
    """Short adversarial texts on which a backend must equal ``encode_document`` to be selected."""
    word = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. It's 2024-06-01; x=3.14159 (1234567 IDs).\n"
    code = "def f(x):\n    return {'k': [x ** 2 for x in range(10)]}  # comment\n\n\tif x:\n\r\n        pass   \n"
    noise = "".join(chr(33 + (i * 7919) % 94) for i in range(3 * MAX_RUN + 17))  # printable, no whitespace
    return [
        "", " ", "\n", "a", word, code, word * 20 + code * 20,
        "I'M he'll THEY'RE we'Ve it's O'Neil ''' 'S", "  leading\n\n\n   trailing   ", "a  \t\n\r\n  b\u00a0\u2003c\u3000d",
        "<|endoftext|>", "text<|endoftext|>more <|fim_prefix|><|fim_middle|><|fim_suffix|><|endofprompt|> end",
        "日本語のテキスト、中文文本。한국어 텍스트", "👍🏽 👨‍👩‍👧‍👦 🇫🇷🇯🇵 ❤️ 🏳️‍🌈", "مرحبا بالعالم ١٢٣ שלום עולם \u200f\u200e",
        "e\u0301 a\u0308 Z\u0324\u0354\u0367\u0311 \u0915\u094d\u0937 กำ", "\x00\x01\x02\x7f\x1b[31mred\x1b[0m\x0b\x0c\x1c\x85",
        "a\ud800b \udfff", "x\ud83d\ude00y", "1234567890 ①②③ ¼ 𝟙𝟚𝟛 ٣٤٥ 十二", "ǅungla ǈ ΣΑΣ ß İ ﬁ",
        "x" * (MAX_RUN - 1), "x" * MAX_RUN, "x" * (MAX_RUN + 1), " " + "y" * (2 * MAX_RUN + 3) + " z",
        noise, "word " + noise + "\n" + noise[::-1] + " tail", "é" * (MAX_RUN + 5), "😀" * (MAX_RUN + 3),
        "a\ud800" * (MAX_RUN // 2 + 1), " " * (3 * MAX_RUN), "\n" * 5000 + "x",
        "ab1" * 3000, "0" * 5000, "=" * 4000 + "\n", "/" * 2500 + "\r\n",
    ]


def first_mismatch(backend: Backend, texts: Sequence[str]) -> str | None:
    """None if ``backend`` equals ``encode_document`` on every text, else a description of the first difference."""
    try:
        got = backend.encode_batch_ordinary(texts)
    except Exception as e:  # noqa: BLE001 - any failure disqualifies the backend
        return f"raised {type(e).__name__}: {e}"
    for i, (text, ids) in enumerate(zip(texts, got, strict=True)):
        want = encode_document(backend.enc, text)
        if list(ids) != want:
            return f"differs on text #{i} ({text[:40]!r}..., {len(text)} chars): {len(ids)} ids vs {len(want)}"
    return None


def backend_status(enc: tiktoken.Encoding, texts: Sequence[str] | None = None) -> dict[str, str]:
    """Each backend's fate for ``enc``: ``"ok"`` or why it is not used (not installed, unsupported, differs)."""
    texts = probe_texts() if texts is None else texts
    out = {}
    for name in BACKENDS:
        try:
            out[name] = first_mismatch(build_backend(name, enc), texts) or "ok"
        except BackendUnavailable as e:
            out[name] = str(e)
    return out


def select_backend(enc: tiktoken.Encoding, prefer: str | None = None) -> Backend:
    """The fastest backend that builds and reproduces ``encode_document`` on ``probe_texts()``.

    ``prefer`` forces one backend (raising ``BackendUnavailable`` with the reason if it cannot be used)."""
    texts = probe_texts()
    if prefer is not None:
        backend = build_backend(prefer, enc)
        problem = first_mismatch(backend, texts)
        if problem is not None:
            raise BackendUnavailable(
                f"backend {prefer!r} for encoding {enc.name!r} {problem}; call select_backend without prefer "
                "to use the fastest backend that matches")
        return backend
    for name in BACKENDS:
        try:
            backend = build_backend(name, enc)
        except BackendUnavailable:
            continue
        if first_mismatch(backend, texts) is None:
            return backend
    return ReferenceBackend(enc)
