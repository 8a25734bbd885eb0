"""Each rule at its published threshold: one document just inside, one just outside."""

import pytest

from llm_from_scratch.data.filters import (
    C4Filter,
    FineWebFilter,
    GopherQuality,
    GopherRepetition,
    duplicate_fractions,
    duplicate_ngram_char_fraction,
    mask_pii,
    remove_boilerplate_lines,
    top_ngram_char_fraction,
)

# 8 distinct 4-letter words; "the" and "and" supply the stop words Gopher asks for.
FILLER = ["the", "and", "cats", "dogs", "fish", "bird", "frog", "lamb"]


def words(n: int) -> str:
    return " ".join(FILLER[i % len(FILLER)] + ("" if i % len(FILLER) < 2 else str(i)) for i in range(n))


def prose(n: int) -> str:
    return " ".join(["the", "and"] + ["word"] * (n - 2))


GQ = GopherQuality()


def test_gopher_word_count_boundaries():
    assert GQ(prose(50)) is None
    assert GQ(prose(49)) == "gopher_quality:too_few_words"
    assert GopherQuality(max_words=60)(prose(61)) == "gopher_quality:too_many_words"


def test_gopher_mean_word_length_boundaries():
    # "the" "and" (3) + 48 words of length L: mean = (6 + 48 L) / 50
    assert GQ(" ".join(["the", "and"] + ["ab"] * 98)) == "gopher_quality:mean_word_length"  # mean 2.02
    assert GQ(" ".join(["the", "and"] + ["abc"] * 48)) is None  # mean exactly 3
    assert GQ(" ".join(["the", "and"] + ["abcdefghij"] * 48)) is None  # mean 9.72
    assert GQ(" ".join(["the", "and"] + ["abcdefghijk"] * 48)) == "gopher_quality:mean_word_length"  # 10.68


def test_gopher_symbol_ratio_boundary():
    base = prose(100)
    assert GQ(base + " #" * 10) is None  # 10 symbols / 100 words (the '#' is not a word) = 0.1
    assert GQ(base + " #" * 11) == "gopher_quality:symbol_ratio"
    assert GQ(base + " ..." * 11) == "gopher_quality:symbol_ratio"


def test_gopher_bullet_and_ellipsis_lines():
    lines = [f"- the and item {i} word word" for i in range(10)]
    assert GQ("\n".join(lines)) == "gopher_quality:bullet_lines"  # 100 % > 90 %
    assert GQ("\n".join([*lines[:9], "the and item word word word"])) is None  # exactly 90 %
    ell = [f"the and line {i} word word..." for i in range(3)] + [f"the and line {i} word word." for i in range(7)]
    assert GQ("\n".join(ell)) is None  # 30 %
    assert GQ("\n".join(ell[:4] + ell[5:])) == "gopher_quality:ellipsis_lines"  # 4/9 > 30 %


def test_gopher_alpha_words_and_stop_words():
    assert GQ(" ".join(["the", "and"] + ["word"] * 78 + ["1234"] * 20)) is None  # exactly 80 % alphabetic
    assert GQ(" ".join(["the", "and"] + ["word"] * 77 + ["1234"] * 21)) == "gopher_quality:alpha_words"
    assert GQ(" ".join(["the"] + ["word"] * 60)) == "gopher_quality:stop_words"  # only one stop word


def test_duplicate_fraction_helpers():
    assert duplicate_fractions(["a", "b", "a", "a"]) == (0.5, 0.5)
    w = ["a", "b", "a", "b", "a", "b", "c"]
    assert top_ngram_char_fraction(w, 2) == pytest.approx(6 / 7)  # "a b" x3 covers 6 of 7 characters
    assert duplicate_ngram_char_fraction(["x", "y", "z", "w", "x", "y", "z", "w"], 4) == 1.0
    assert duplicate_ngram_char_fraction(["x", "y", "z", "w", "v"], 2) == 0.0


def test_gopher_repetition_line_and_paragraph_boundaries():
    gr = GopherRepetition()
    uniq = [" ".join(f"w{i}x{j}" for j in range(6)) for i in range(7)]  # 7 lines without shared words
    # 3 duplicate lines out of 10 = 30 % (allowed); character fraction stays under 20 % with short duplicates
    short = "\n".join(uniq + ["ok"] * 4)
    assert duplicate_fractions([s for s in short.split("\n")])[0] == pytest.approx(3 / 11)
    assert GopherRepetition(max_dup_para_frac=1, max_dup_para_char_frac=1)(short) is None
    assert gr("\n\n".join(uniq + [uniq[0]] * 4)) == "gopher_repetition:dup_paragraphs"  # 4 / 11 > 30 %
    assert gr("\n".join(uniq[:5] + ["ok"] * 5)) == "gopher_repetition:dup_lines"  # 4 / 10 > 30 %


def test_gopher_repetition_ngrams():
    gr = GopherRepetition()
    text = " ".join(f"w{i}" for i in range(200))
    assert gr(text) is None
    assert gr("buy cheap pills " * 30 + text).startswith("gopher_repetition:top_")
    assert gr(" ".join(f"w{i}" for i in range(40)) * 2 + " " + text) == "gopher_repetition:dup_5gram"


def test_c4_lines_and_page_rules():
    c4 = C4Filter()
    text = "\n\n".join(  # C4's lines are rendered paragraphs: here, blank-line separated
        [
            "This line ends properly.",
            "This one does not",
            "Too short.",
            "Please enable JavaScript to view it.",
            "Read our privacy policy today.",
            "Another good sentence here!",
            'He said "a third full sentence."',
        ]
    )
    kept, removed = c4.clean_lines(text)
    assert kept.split("\n\n") == [
        "This line ends properly.",
        "Another good sentence here!",
        'He said "a third full sentence."',
    ]
    assert removed == {
        "c4_line:no_terminal_punctuation": 1,
        "c4_line:too_few_words": 1,
        "c4_line:javascript": 1,
        "c4_line:policy": 1,
    }
    assert c4.page_reason(kept) is None  # exactly three sentences
    assert c4.page_reason("One sentence. Two sentences.") == "c4:too_few_sentences"
    assert c4.page_reason(kept + " Lorem ipsum dolor.") == "c4:lorem_ipsum"
    assert c4.page_reason(kept + " if (x) { y }.") == "c4:curly_bracket"


def test_fineweb_rules():
    fw = FineWebFilter()
    good = [f"Sentence number {i} of this long enough paragraph." for i in range(10)]
    assert fw("\n".join(good)) is None
    assert fw("\n".join(s.rstrip(".") for s in good)) == "fineweb:line_punctuation"
    assert fw("\n".join(good + good[:2])) == "fineweb:dup_line_chars"  # 2/12 of the characters > 10 %
    shorts = [f"Item {i}." for i in range(21)]
    assert fw("\n".join(good + shorts)) == "fineweb:short_lines"  # 21/31 > 0.67
    assert fw("\n".join(good + shorts[:20])) is None  # 20/30 < 0.67


def test_boilerplate_lines_removed_but_prose_kept():
    text = "Accept all cookies\nHome | News | Sport | Contact\nThe article text stays.\nAll rights reserved."
    long = "In this long sentence we explain why we use cookies in the bakery and why they taste good to everyone."
    out, removed = remove_boilerplate_lines(text + "\n" + long)
    assert out == "The article text stays.\n" + long and removed == 3


def test_pii_masking():
    text = "Mail jane.doe@uni.edu or call (555) 123-4567 / +1 555 123 4567; server 192.168.1.20, not 999.1.1.1."
    out, counts = mask_pii(text)
    assert counts == {"email": 1, "ip": 1, "phone": 2}
    assert "jane" not in out and "192.168" not in out and "999.1.1.1" in out  # not a valid IPv4 address
    assert mask_pii("Version 1.2.3 released in 1993.")[1] == {"email": 0, "ip": 0, "phone": 0}
