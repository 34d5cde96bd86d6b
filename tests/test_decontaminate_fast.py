"""The compiled decontamination pre-screen (mixlab.curate._ngram_hash) and the bytes control-character screen
(mixlab.sources.base.has_controls) decide exactly as their Python definitions: on the embedded sample, on texts
that hold evaluation items, on Unicode edge cases and fuzzed texts; a hash collision cannot change a decision."""

from __future__ import annotations

import functools
import pickle
import random
import re
from pathlib import Path

import pytest

from mixlab.curate import _ngram_hash as H
from mixlab.curate.decontaminate import NgramIndex, ngrams, shipped_index, words
from mixlab.eval.loaders import humaneval, shipped_quartz
from mixlab.jsonl import read_jsonl
from mixlab.sources.base import clean_controls, control_pattern, has_controls, has_controls_regex

SAMPLE = Path(__file__).resolve().parents[1] / "mixlab" / "sample" / "data"
EDGE = [  # lower case that is not per character, or not one character; \w beyond letters; UTF-8 of every length
    "",
    "_",
    "a",
    "ΟΔΟΣ ΣΟΦΟΣ. Σ ΑΣ-Σ σ ς",  # capital sigma: final or not by context (Python lower-cases the text)
    "İstanbul İİ xİy",  # U+0130 lowers to i + U+0307 (a combining mark, not \w: it splits the word)
    "ǅungla ǄEMAL ǆ",  # title-case digraphs
    "straße STRASSE ß ẞ",
    "Kelvin \u212a k K",  # KELVIN SIGN lowers to ASCII k
    "ı I i İ",
    "٣٤ x٣ ²³ ½ Ⅻ ⅻ ① 𝟘𝟙",  # digits and numerics of other scripts
    "e\u0301te\u0301 n\u0303",  # combining marks
    "中文字 日本語のテキスト 한국어 텍스트",
    "😀x😀 𐐀𐐁 𐐨 \U0001d400\U0001d41a",  # 4-byte UTF-8, Deseret capitals (lower case outside the BMP)
    "\ud800abc \udfff def\ud83d",  # lone surrogates (surrogatepass)
    "a\x00b\x85c\u2028d\u00a0e\ufffdf",
    "ABC_def GHI-jkl MNO'pqr",
]


def _fuzz(n: int, seed: int) -> list[str]:
    """Texts of ASCII words, punctuation and the EDGE characters, plus random code points of every plane."""
    rng = random.Random(seed)
    alphabet = [*"aZ_09 .,-'\n\t", "the ", "THE ", "Word", *"".join(EDGE)]
    out = []
    for _ in range(n):
        parts = [rng.choice(alphabet) for _ in range(rng.randint(0, 60))]
        parts += [chr(rng.randrange(0x110000)) for _ in range(rng.randint(0, 3))]
        rng.shuffle(parts)
        out.append("".join(parts))
    return out


@functools.cache
def _sample_texts() -> list[str]:
    pq = pytest.importorskip("pyarrow.parquet")
    texts = []
    for path in sorted((SAMPLE / "slimpajama").rglob("*.jsonl.zst")):
        texts += [rec["text"] for rec in read_jsonl(path)]
    for path in sorted((SAMPLE / "stack").rglob("*.parquet")):
        texts += [t for t in pq.read_table(path, columns=["content"]).column(0).to_pylist() if t is not None]
    posts = (SAMPLE / "stackexchange" / "Posts.xml").read_text("utf-8")
    texts += [posts[i : i + 20_000] for i in range(0, len(posts), 20_000)]
    assert len(texts) > 1000, "the embedded sample is committed but was not found"
    return texts


def _word_keys(text: str) -> list[int]:
    """The compiled key of each word of ``text`` (1-grams, read as it is: lower case by the class table)."""
    return H.gram_hashes(text, 1).tolist()


def _reference_keys(text: str) -> list[int]:
    """The keys of :func:`words` (split and lower-cased by Python, hashed as lower case already)."""
    return H.gram_hashes(" ".join(words(text)), 1, lowered=True).tolist()


def test_compiled_words_are_python_words():
    """The compiled pass splits and lower-cases every text exactly as `words` (re's \\w on str.lower()): the
    per-word keys agree on the embedded sample, the Unicode edge cases and fuzzed texts of every plane."""
    texts = [*_sample_texts(), *EDGE, *_fuzz(2000, 1)]
    bad = [t for t in texts if _word_keys(t) != _reference_keys(t)]
    assert not bad, bad[:3]
    assert any(not t.isascii() for t in _sample_texts())  # the sample exercises the UTF-8 decoding too


def test_class_tables_follow_python():
    """Each table entry is Python's own: the lower case of the code point (one character) and re's \\w on it;
    SPECIAL exactly where str.lower is not per character (U+03A3) or not one character; no lower case is ASCII
    upper case (the kernel reads ASCII bytes through the same table)."""
    rng = random.Random(3)
    for c in [
        *range(0x100),
        0x130,
        0x3A3,
        0x212A,
        0xD800,
        0x10400,
        *(rng.randrange(0x110000) for _ in range(300)),
    ]:
        H.fill_block(c)
        low = chr(c).lower()
        if len(low) != 1 or c == 0x3A3:
            assert H._LOWER[c] == H.SPECIAL, hex(c)
        else:
            assert H._LOWER[c] == (ord(low) << 2) | 2 | bool(re.fullmatch(r"\w", low)), hex(c)
        assert H._IDENT[c] == (c << 2) | 2 | bool(re.fullmatch(r"\w", chr(c))), hex(c)
        assert not re.search("[A-Z]", low)
    assert H._LOWER[0x130] == H._LOWER[0x3A3] == H.SPECIAL


def _contaminated(rng: random.Random) -> dict[str, str]:
    """Documents holding an evaluation item re-cased, re-punctuated, among Unicode text; and near misses."""
    prompt = humaneval().items[2].prompt
    question = shipped_quartz().items[3].context.removeprefix("Question: ").removesuffix("\nAnswer:")
    twelve = " ".join(words(question)[:12])
    noise = " ".join(
        rng.choice(["straße", "ΣΟΦΟΣ", "中文", "İyi", "naïve", "word", "the"]) for _ in range(30)
    )
    return {
        "humaneval": f"{noise}\n```python{prompt.upper()}    return number % 1.0\n```\n{noise}",
        "quartz": f"{noise} «{question.replace(' ', '  ').replace('.', ' ;; ').title()}» {noise}",
        "quartz_special": f"ΟΔΟΣ İ {question.lower().replace(',', '—')} Σ",  # the Python lower-case path
        "twelve": f"{noise} {twelve} {noise}",
        "twelve_ascii": f"alpha beta {twelve.upper()} gamma",
        "clean": noise,
    }


def test_documents_holding_eval_items_match_like_the_reference():
    """`matches` (pre-screen + reference on hits) equals `reference_matches` on documents holding a HumanEval
    prompt or a QuaRTz question with case, spacing and punctuation changes among Unicode text (the lower-case
    path of U+0130/U+03A3 included); the pre-screen passes every contaminated one; 12 shared words match none."""
    index = shipped_index(13)
    docs = _contaminated(random.Random(5))
    expected = {"humaneval": {"humaneval"}, "quartz": {"quartz"}, "quartz_special": {"quartz"}}
    for name, doc in docs.items():
        assert index.reference_matches(doc) == expected.get(name, set()), name
        assert index.matches(doc) == index.reference_matches(doc), name
        if name in expected:
            assert index.table().may_match(doc), name


def test_fuzzed_indexes_and_documents_decide_like_the_reference():
    """With small indexes built from fuzzed Unicode texts (n = 4 and 5), documents made of pieces of the indexed
    texts and of other fuzzed texts get exactly the reference's answer, and many of them do match."""
    rng = random.Random(11)
    for n in (4, 5):
        items = [t for t in _fuzz(300, n) if len(words(t)) >= n][:120]
        index = NgramIndex(n)
        index.add("a", items[:60])
        index.add("b", items[40:])
        others = _fuzz(400, 100 + n)
        matched = 0
        for _ in range(400):
            pieces = [rng.choice(items)[rng.randrange(20) :] if rng.random() < 0.5 else rng.choice(others)
                      for _ in range(3)]  # fmt: skip
            doc = rng.choice([" ", "", "\n", "Σ", "x"]).join(pieces)
            ref = index.reference_matches(doc)
            assert index.matches(doc) == ref, doc
            matched += bool(ref)
        assert matched > 50


def test_a_hash_collision_cannot_change_a_decision():
    """A pre-screen hit that is no shared n-gram (forced: the hash table also holds the keys of a clean document's
    n-grams, as 64-bit collisions would) still gets the reference's answer: the document is kept."""
    index = NgramIndex(13)
    index.add("quartz", [shipped_quartz().items[3].context])
    clean = " ".join(f"Word{i}, straße" for i in range(20))
    index._table = H.HashTable([*index.grams, *ngrams(words(clean), 13)], 13)
    assert index.table().may_match(clean)
    assert index.reference_matches(clean) == set() and index.matches(clean) == set()


def test_pickled_index_rebuilds_its_table():
    """An index travels pickled without its hash table (datatrove ships it to each task) and decides the same."""
    index = shipped_index(13)
    doc = _contaminated(random.Random(5))["humaneval"]
    assert index.matches(doc) == {"humaneval"} and index._table is not None
    copy = pickle.loads(pickle.dumps(index))
    assert (
        copy._table is None and copy.matches(doc) == {"humaneval"} and len(copy.table()) == len(index.grams)
    )


# ---------------------------------------------------------------- control characters (sources.base)

CONTROLS = [chr(c) for c in (*range(0x20), *range(0x7F, 0xA1))] + [
    "\ufffd",
    "\u2028",
    "\ud800",
    "é",
    "中",
    "😀",
]


def test_has_controls_equals_the_regex_definition():
    """The bytes screen answers as the regex (+ U+FFFD) for every C0/DEL/C1 character and its neighbours, alone
    and inside ASCII and non-ASCII texts, form feed kept or not, on the embedded sample and fuzzed texts; and
    clean_controls returns what the regex-based definition returns."""
    texts = [f"{pre}{c}{post}" for c in CONTROLS for pre in ("", "ab ", "é ") for post in ("", " cd", " 中")]
    texts += _sample_texts()
    rng = random.Random(2)
    texts += [
        "".join(rng.choice([*CONTROLS, "word ", "\n", "\t"]) for _ in range(rng.randint(0, 12)))
        for _ in range(3000)
    ]
    for keep_ff in (True, False):
        assert [has_controls(t, keep_ff) for t in texts] == [has_controls_regex(t, keep_ff) for t in texts]
    assert any(has_controls(t) for t in texts) and not all(has_controls(t) for t in texts)
    for t in texts[:600]:
        pattern = control_pattern(True)
        n = len(pattern.findall(t))
        binary = n + t.count("\ufffd") > 0.1 * len(t)
        assert clean_controls(t) == (None if binary else (pattern.sub("", t), n))
