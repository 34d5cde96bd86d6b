"""Tokenizer backends: exactly mixlab's ids, or never selected.

The whole benchmark corpus (every document of the embedded sample, read from its files) plus adversarial strings,
for cl100k_base, o200k_base, a BPE trained by mixlab and the same ranks under cl100k_base's split pattern.
"""

from __future__ import annotations

import multiprocessing as mp
import pickle
import random
import sys
from functools import cache

import pytest
import tiktoken

from benchmarks.bench_tokenize_backends import sample_texts
from mixlab import tokenizer_backends as tb
from mixlab.tokenizer import MAX_RUN, encode_document, named_encoding, train_bpe


def adversarial() -> list[str]:
    rng = random.Random(0)
    alphabet = list("aZ09 _-=/.,;:'\"\\\t\n\r\x00\x0b\x1c\x85") + [
        "\u00a0", "\u2028", "\u3000", "é", "ß", "ǅ", "日", "本", "한", "ع", "ש", "\u0301", "\u200d", "😀", "🇫",
        "١", "①", "\ufeff", "\ud800", "\udc00", "<|endoftext|>"]
    fuzz = ["".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 400))) for _ in range(300)]
    noise = "".join(chr(rng.randrange(33, 127)) for _ in range(50_000))
    zh = "".join(chr(rng.randrange(0x4E00, 0x9FFF)) for _ in range(50_000))
    return tb.probe_texts() + fuzz + [
        "a" * 50_000, noise, zh, "😀👍🏽" * 20_000, "x" * (MAX_RUN - 1) + "\ud83d\ude00" + "y" * 100,
        "\ud83d" + "z" * (MAX_RUN - 1) + "\ude00", "z\u0301" * 30_000, "\x00" * 10_000, "\t" * 9_000 + "x",
        "token <|endoftext|> and <|endofprompt|>\n<|fim_prefix|>x<|fim_suffix|>", "<|endoftext|>" * 500,
        "مرحبا" * 5000, "-" * 600 + "\n" + "=" * 700, " " * 600 + "x", "base64:" + noise[:9000].replace("\\", "+"),
    ]


@cache
def corpus() -> tuple[str, ...]:
    texts = [t for docs in sample_texts().values() for t in docs]
    long_doc = "\n\n".join(texts[:150])  # one very long document (~0.6 MB)
    return (*texts, long_doc, *adversarial())


@cache
def encoding(name: str) -> tiktoken.Encoding:
    if name in tb.NAMED_PATTERNS:
        return named_encoding(name)
    bpe = train_bpe(corpus()[:1200:2], 2048)
    if name == "bpe":
        return bpe
    return tiktoken.Encoding(name="mixlab-bpe-cl100k-pattern", pat_str=tb.NAMED_PATTERNS["cl100k_base"],
                             mergeable_ranks=bpe._mergeable_ranks, special_tokens=bpe._special_tokens)  # noqa: SLF001


ENCODINGS = ["cl100k_base", "o200k_base", "bpe", "bpe-cl100k"]


@cache
def status(name: str) -> dict[str, str]:
    return tb.backend_status(encoding(name))


def test_named_patterns_are_tiktokens():
    """The pattern table that routes encodings to gigatoken/quicktok/bpe-openai must equal tiktoken's own patterns;
    a drifted copy would send cl100k/o200k to the fallback (or another pattern to a wrong backend)."""
    for name, pat in tb.NAMED_PATTERNS.items():
        assert named_encoding(name)._pat_str == pat  # noqa: SLF001


@pytest.mark.parametrize("name", ENCODINGS)
def test_selectable_backends_equal_encode_document_on_whole_corpus(name):
    """Every backend that select_backend may choose (probe says "ok") gives encode_document's ids on every sample
    document and adversarial string; the tiktoken path always does. A backend that differs anywhere must have been
    refused by the probe. The report lists each backend's fate."""
    enc = encoding(name)
    texts = list(corpus())
    want = [encode_document(enc, t) for t in texts]
    report = []
    for backend_name, fate in status(name).items():
        if backend_name == "reference":  # encode_document itself
            continue
        try:
            backend = tb.build_backend(backend_name, enc)
        except tb.BackendUnavailable:
            report.append(f"{backend_name}: {fate}")
            continue
        got = backend.encode_batch_ordinary(texts)
        bad = [i for i, (g, w) in enumerate(zip(got, want, strict=True)) if list(g) != w]
        report.append(f"{backend_name}: probe {fate!r}; differs on {len(bad)} of {len(texts)} texts {bad[:5]}")
        if fate == "ok":
            assert not bad, f"{name}: selectable backend {backend_name} differs on texts {bad[:5]}\n" + "\n".join(report)
    print(f"\n{name}:\n  " + "\n  ".join(report))
    assert status(name)["tiktoken"] == "ok" and status(name)["reference"] == "ok", status(name)


@pytest.mark.parametrize("name", ENCODINGS)
def test_select_backend_is_first_exact_backend(name):
    """select_backend returns the first backend of the speed-ordered table whose probe passes, so the fastest exact
    one; with gigatoken installed that is gigatoken for any encoding with cl100k/o200k's split pattern."""
    enc = encoding(name)
    fates = status(name)
    chosen = tb.select_backend(enc)
    assert chosen.name == next(n for n, fate in fates.items() if fate == "ok")
    if enc._pat_str in tb.NAMED_PATTERNS.values() and fates["gigatoken"] != "ok":  # noqa: SLF001
        assert "not installed" in fates["gigatoken"], fates["gigatoken"]
    if name == "bpe":
        assert "split pattern" in fates["gigatoken"]


def test_differing_backend_is_never_selected(monkeypatch):
    """A backend that is fast but wrong on a single probe string (here: specials inside text) must be skipped."""

    class Wrong(tb.TiktokenBackend):
        name = "wrong"

        def _encode(self, pieces):
            return [[] if "<|endoftext|>" in p else self.enc.encode_ordinary(p) for p in pieces]

    monkeypatch.setattr(tb, "BACKENDS", {"wrong": Wrong, **tb.BACKENDS})
    enc = encoding("cl100k_base")
    assert tb.backend_status(enc)["wrong"].startswith("differs on text")
    assert tb.select_backend(enc).name != "wrong"
    with pytest.raises(tb.BackendUnavailable, match="differs on text"):
        tb.select_backend(enc, prefer="wrong")


def test_prefer_explains_what_is_wrong():
    """A forced backend that cannot serve the encoding raises with the reason; an unknown name lists the choices."""
    with pytest.raises(tb.BackendUnavailable, match="split pattern|not installed"):
        tb.select_backend(encoding("bpe"), prefer="gigatoken")
    with pytest.raises(ValueError, match="choose one of"):
        tb.select_backend(encoding("bpe"), prefer="nope")
    assert tb.select_backend(encoding("bpe"), prefer="tiktoken").name == "tiktoken"


def _encode_in_child(chunk: list[str]) -> list[list[int]]:
    return _BACKEND.encode_batch_ordinary(chunk)


_BACKEND: tb.Backend | None = None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork start method")
def test_backend_works_in_forked_workers():
    """The selected backend, built and used in the parent, encodes identically in forked pool workers (no hang on
    a thread pool inherited without threads) and after a pickle round trip (spawn workers)."""
    global _BACKEND
    enc = encoding("cl100k_base")
    _BACKEND = tb.select_backend(enc)
    texts = list(corpus()[:300])
    want = _BACKEND.encode_batch_ordinary(texts)
    chunks = [texts[i : i + 50] for i in range(0, len(texts), 50)]
    with mp.get_context("fork").Pool(2) as pool:
        got = pool.map_async(_encode_in_child, chunks).get(timeout=120)
    assert [ids for part in got for ids in part] == want
    clone = pickle.loads(pickle.dumps(_BACKEND))
    assert clone.name == _BACKEND.name and clone.encode_batch_ordinary(texts) == want
