"""Pre-tokenisation: cut text into words before BPE, so merges never cross a word boundary.

BPE on raw text would happily learn tokens such as `"dog."` and `"dog!"` and `"dog?"` separately, wasting the
vocabulary on punctuation variants. GPT-2 therefore first splits text with a regular expression into letters,
digits, punctuation and whitespace runs, and runs BPE inside each piece only.
"""

from __future__ import annotations

import functools

import regex

# GPT-2 (Radford et al., 2019): English contractions, an optional leading space glued to letters / digits / punctuation,
# and whitespace runs, where the last space before a word is left to that word (`\s+(?!\S)`).
GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

# GPT-4 (tiktoken's cl100k_base): case-insensitive contractions, a single non-letter (e.g. a quote) may lead a word,
# numbers are cut into groups of at most three digits, and newlines are kept apart from other whitespace.
# The possessive quantifiers (`?+`, `++`) forbid backtracking, which keeps the regex linear-time.
GPT4_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|"""
    r"""\s+(?!\S)|\s"""
)

# GPT-4's pattern with every digit its own piece, as in PaLM (Chowdhery et al., 2022), Llama 1-2 and SmolLM2: a number
# is spelled digit by digit, so "385" and "38" share their tokens and arithmetic is done on digits, not on a
# thousand unrelated number tokens (the book's verifiable skill, chapter 14, is learnable only this way).
DIGITS_PATTERN = GPT4_PATTERN.replace(r"\p{N}{1,3}+", r"\p{N}")

PATTERNS = {"gpt2": GPT2_PATTERN, "gpt4": GPT4_PATTERN, "digits": DIGITS_PATTERN}


def resolve_pattern(pattern: str) -> str:
    """A pattern name (`"gpt2"`, `"gpt4"`, `"digits"`) or a literal regular expression."""
    return PATTERNS.get(pattern, pattern)


@functools.lru_cache(maxsize=32)
def compiled(pattern: str) -> regex.Pattern:
    return regex.compile(resolve_pattern(pattern))


@functools.lru_cache(maxsize=32)
def special_splitter(special_tokens: tuple[str, ...]) -> regex.Pattern | None:
    """A regex whose capturing split keeps special tokens as separate pieces; longest first, so that a special token
    that is a prefix of another never wins over it."""
    if not special_tokens:
        return None
    alternatives = "|".join(regex.escape(s) for s in sorted(special_tokens, key=len, reverse=True))
    return regex.compile(f"({alternatives})")


def pretokenize(text: str, pattern: str = "gpt4") -> list[str]:
    """The words BPE works inside; their concatenation is exactly `text`."""
    return compiled(pattern).findall(text)
