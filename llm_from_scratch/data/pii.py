"""PII masking: e-mail addresses, IPv4 addresses and phone numbers replaced by fixed placeholders.

FineWeb (Penedo et al. 2024) and Dolma (Soldaini et al. 2024) mask rather than drop: the document stays, the
model never sees (and so never memorises) the number. The rules trade recall for precision on purpose, because a
false positive rewrites a version number, a date or a measurement in otherwise good text.

Phone rules (the table in `tests/data/test_pii.py` is the specification):

1. North American numbers with separators: `212-555-0123`, `212.555.0123`, `212 555 0123`,
   `(212) 555-0123`, optionally with a country code `+1 ` / `1-`.
2. North American numbers without separators: exactly ten digits whose first is 2-9 (optionally after `+1`),
   because NANP area codes never start with 0 or 1. The exchange code is not checked (`2831823829` has exchange
   `182`, unassigned, and is still masked: text quotes made-up and mistyped numbers too). This leaves Unix
   timestamps (`1700000000`), zero-padded ids and longer digit runs (an 11+ digit run is an id, not a phone).
3. International numbers in E.164 style: `+` and a country code, then 7 to 14 more digits, in groups separated
   by single spaces, dots or hyphens (`+44 20 7946 0958`, `+33 1 23 45 67 89`, `+4915123456789`).

Not masked: seven-digit local numbers (`555-0123`; too easily a range or a part number), dates (`2021-05-12`),
version numbers (`1.2.3`), numbers inside words or longer digit/dot runs.
"""

from __future__ import annotations

import re

EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
IPV4 = re.compile(r"\b(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\b")
_EDGE_L, _EDGE_R = r"(?<![\w.+-])", r"(?![\w-]|\.\d)"  # not inside a word, a longer number or a dotted run
PHONE_NANP = re.compile(_EDGE_L + r"(?:\+?1[ .-]?)?(?:\(\d{3}\)[ .-]?|\d{3}[ .-])\d{3}[ .-]\d{4}" + _EDGE_R)  # rule 1
PHONE_NANP_BARE = re.compile(_EDGE_L + r"(?:\+1)?[2-9]\d{9}" + _EDGE_R)  # rule 2
PHONE_INTL = re.compile(_EDGE_L + r"\+\d{1,3}(?:[ .-]?\d{1,4}){2,6}" + _EDGE_R)  # rule 3, digit count checked below
PHONE_PLACEHOLDER = "555-0100"


def mask_phones(text: str) -> tuple[str, int]:
    """`text` with phone numbers (rules 1-3 above) replaced by `555-0100`, and how many were replaced."""
    text, n1 = PHONE_NANP.subn(PHONE_PLACEHOLDER, text)
    text, n2 = PHONE_NANP_BARE.subn(PHONE_PLACEHOLDER, text)
    n3 = 0

    def intl(m: re.Match) -> str:
        nonlocal n3
        if 8 <= sum(c.isdigit() for c in m.group()) <= 15:  # E.164: at most 15 digits with the country code
            n3 += 1
            return PHONE_PLACEHOLDER
        return m.group()

    text = PHONE_INTL.sub(intl, text)
    return text, n1 + n2 + n3


def mask_pii(text: str) -> tuple[str, dict[str, int]]:
    """Replace e-mail addresses, IPv4 addresses and phone numbers with fixed placeholders (as FineWeb does),
    so the model never memorises them; return the text and how many of each were masked."""
    counts = {}
    text, counts["email"] = EMAIL.subn("email@example.com", text)
    text, counts["ip"] = IPV4.subn("0.0.0.0", text)
    text, counts["phone"] = mask_phones(text)
    return text, counts
