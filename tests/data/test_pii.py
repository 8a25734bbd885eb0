import pytest

from llm_from_scratch.data.pii import mask_phones, mask_pii

# The specification of the phone rules in llm_from_scratch/data/pii.py: (text, masked?)
PHONES = [
    ("call 2831823829 now", True),  # rule 2: ten digits, area code 2-9, no separators
    ("+12831823829", True),
    ("(212) 555-0123", True),  # rule 1
    ("212-555-0123", True),
    ("212.555.0123", True),
    ("212 555 0123", True),
    ("+1 212 555 0123", True),
    ("1-800-555-0123", True),
    ("+44 20 7946 0958", True),  # rule 3: E.164 with groups
    ("+33 1 23 45 67 89", True),
    ("+4915123456789", True),
    ("555-0123", False),  # seven-digit local number: not masked
    ("ts 1700000000", False),  # starts with 1: a Unix timestamp, not an area code
    ("0123456789", False),
    ("12345678901", False),  # 11 digits: an id
    ("ISBN 9780262035613", False),
    ("version 1.2.3", False),
    ("on 2021-05-12", False),
    ("pi is 3.2831823829", False),  # part of a decimal
    ("+1 2", False),  # too few digits for E.164
    ("+1234567890123456", False),  # too many
]


@pytest.mark.parametrize(("text", "masked"), PHONES)
def test_phone_format_table(text, masked):
    out, n = mask_phones(text)
    assert (n == 1) == masked
    assert ("555-0100" in out) == masked


def test_mask_pii_counts_each_kind():
    text = "Mail jane.doe@uni.edu, call 2831823829 or +44 20 7946 0958; host 10.0.0.7."
    out, counts = mask_pii(text)
    assert counts == {"email": 1, "ip": 1, "phone": 2}
    assert "2831823829" not in out and "jane" not in out and "10.0.0.7" not in out
