"""Language lists of the code and markup subsets (pure data; imports nothing): defaults of the source options.

The paper (Aryabumi et al. 2024, "To Code, or Not To Code?", Sec. 2) builds its web code data from The Stack,
the dataset StarCoder was trained on, applies quality filters and keeps "the top 25 languages"; markup-style
languages (HTML, CSS, Markdown) form a separate markup subset. The paper does not print its list, so this is
our reconstruction, documented and configurable (``stack.languages`` in a recipe):

- Source: the per-language file counts of The Stack / StarCoder training data (Li et al. 2023, "StarCoder: may
  the source be with you!", Table 1, files after StarCoder's filtering; the-stack-dedup dataset card), taking
  the 25 languages with the most files after removing markup (HTML, CSS, Markdown, SCSS, ...), data and config
  formats (JSON, YAML, XML, CSV, ...) and notebooks, which the paper and StarCoder treat separately.
- The order below is by decreasing file count as best we could reconstruct it; the boundary at rank 25 is
  the uncertain part (e.g. Objective-C vs Vue vs Groovy), which is why the list is an option, not a constant
  baked into the code.
- Names are the values of The Stack's ``lang`` column; :data:`STACK_FOLDERS` maps them to the
  ``data/<folder>`` names of the-stack-dedup (lower-case, ``c#`` -> ``c-sharp``).
"""

from __future__ import annotations

TOP25_LANGUAGES: tuple[str, ...] = (
    "Java",
    "JavaScript",
    "PHP",
    "Python",
    "C#",
    "TypeScript",
    "C",
    "C++",
    "Go",
    "Ruby",
    "Shell",
    "Kotlin",
    "Swift",
    "Rust",
    "Scala",
    "SQL",
    "Dart",
    "Lua",
    "Perl",
    "Objective-C",
    "Haskell",
    "PowerShell",
    "R",
    "Julia",
    "Assembly",
)

MARKUP_LANGUAGES: tuple[str, ...] = ("HTML", "CSS", "Markdown")

STACK_FOLDERS: dict[str, str] = {
    lang: lang.lower().replace("#", "-sharp").replace(" ", "-") for lang in TOP25_LANGUAGES + MARKUP_LANGUAGES
}
