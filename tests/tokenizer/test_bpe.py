"""Byte-level BPE: the published merge example, equality with a naive trainer, round trips, files, HF parity."""

import itertools
import json
import re
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_from_scratch.tokenizer.bpe import SPECIAL_TOKENS, BPETokenizer, count_words, train_bpe, train_tokenizer
from llm_from_scratch.tokenizer.pretokenize import GPT2_PATTERN, pretokenize

ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=200)  # includes lone surrogates


def naive_bpe(word_counts: dict[bytes, int], n_merges: int) -> list[tuple[bytes, bytes]]:
    """The textbook algorithm: recount every pair after every merge; ties to the greatest byte pair."""
    words = {tuple(bytes([b]) for b in w): c for w, c in word_counts.items()}
    merges = []
    for _ in range(n_merges):
        pairs = Counter()
        for w, c in words.items():
            for p in itertools.pairwise(w):
                pairs[p] += c
        if not pairs:
            break
        best = max(pairs, key=lambda p: (pairs[p], p))
        merges.append(best)
        new = {}
        for w, c in words.items():
            out, i = [], 0
            while i < len(w):
                if i < len(w) - 1 and (w[i], w[i + 1]) == best:
                    out.append(w[i] + w[i + 1])
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            new[tuple(out)] = new.get(tuple(out), 0) + c
        words = new
    return merges


def merge_bytes(vocab, merges):
    return [(vocab[a], vocab[b]) for a, b in merges]


def test_hand_checked_merges_with_tie_break():
    # Sennrich et al.'s example as used in Stanford CS336 (assignment 1): words split on whitespace.
    # Hand count: "es" and "st" both occur 9 times; the tie goes to the greater pair (s,t) > (e,s). Then (e,st) 9;
    # (o,w) and (l,o) tie at 7, (o,w) is greater; (l,ow) 7; (w,est), (n,e), (e,w) tie at 6: (w,est) > (n,e) > (e,w).
    text = "low low low low low lower lower widest widest widest newest newest newest newest newest newest"
    vocab, merges = train_bpe(Counter(w.encode() for w in text.split()), vocab_size=5 + 256 + 6)
    assert merge_bytes(vocab, merges) == [(b"s", b"t"), (b"e", b"st"), (b"o", b"w"), (b"l", b"ow"), (b"w", b"est"),
                                          (b"n", b"e")]  # fmt: skip


def test_special_tokens_come_first_then_bytes():
    vocab, _ = train_bpe(Counter({b"ab": 3}), vocab_size=262)
    assert [vocab[i].decode() for i in range(5)] == list(SPECIAL_TOKENS)
    assert vocab[5] == b"\x00" and vocab[260] == b"\xff" and vocab[261] == b"ab"


@settings(max_examples=40, deadline=None)
@given(st.lists(st.text("abcde ", min_size=1, max_size=12), min_size=1, max_size=30), st.integers(1, 40))
def test_incremental_training_equals_naive_recount(words, n_merges):
    counts = count_words(words, pattern=GPT2_PATTERN)
    vocab, merges = train_bpe(counts, vocab_size=5 + 256 + n_merges)
    assert merge_bytes(vocab, merges) == naive_bpe(counts, n_merges)


def test_real_text_equals_naive_recount(plays):
    counts = count_words([plays[0][:20_000]])
    vocab, merges = train_bpe(counts, vocab_size=5 + 256 + 60)
    assert merge_bytes(vocab, merges) == naive_bpe(counts, 60)


@settings(max_examples=200, deadline=None)
@given(ANY_TEXT)
def test_round_trip_any_text(small_bpe, text):
    assert small_bpe.decode(small_bpe.encode(text)) == text


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(ANY_TEXT, st.sampled_from(SPECIAL_TOKENS)), max_size=8))
def test_special_tokens_round_trip_and_are_never_split(small_bpe, parts):
    text = "".join(parts)
    ids = small_bpe.encode(text)
    assert small_bpe.decode(ids) == text
    n_special = sum(text.count(s) for s in SPECIAL_TOKENS)
    assert sum(i < len(SPECIAL_TOKENS) for i in ids) == n_special


def test_special_tokens_are_not_learned_from_text():
    tok = train_tokenizer(["<|endoftext|>hello<|endoftext|>" * 50], vocab_size=300)
    assert not any(b"<|" in t for i, t in tok.vocab.items() if i >= 5)
    assert tok.encode("hello<|endoftext|>")[-1] == tok.eot_id == 0


@settings(max_examples=100, deadline=None)
@given(st.text(st.sampled_from("ab \n\t1.<|>endoftx"), max_size=80), st.lists(st.integers(0, 80), max_size=6))
def test_encode_iterable_equals_encode(small_bpe, text, cuts):
    text = text + "<|endoftext|>" + text
    cuts = sorted(set(c % (len(text) + 1) for c in cuts))
    chunks = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    assert list(small_bpe.encode_iterable(chunks)) == small_bpe.encode(text)


def test_encode_iterable_streams_a_file(tmp_path, small_bpe, plays):
    path = tmp_path / "play.txt"
    path.write_text(plays[1], encoding="utf-8")
    with open(path, encoding="utf-8") as f:
        assert list(small_bpe.encode_iterable(f)) == small_bpe.encode(plays[1])


def test_merges_first_learned_are_frequent_pairs(small_bpe):
    assert small_bpe.decode([small_bpe.vocab_size - 1]) != ""
    assert " the" in {small_bpe.decode([i]) for i in range(261, 300)}


def test_save_load_round_trip(tmp_path, small_bpe, plays):
    loaded = BPETokenizer.load(small_bpe.save(tmp_path / "tok.json"))
    assert loaded.fingerprint == small_bpe.fingerprint
    assert loaded.encode(plays[2][:5000]) == small_bpe.encode(plays[2][:5000])


def test_load_rejects_other_format(tmp_path):
    path = tmp_path / "tok.json"
    path.write_text('{"format": "something-else", "version": 1}')
    with pytest.raises(ValueError, match=r"tok\.json.*format"):
        BPETokenizer.load(path)


def test_gpt2_files_match_huggingface_tokenizers(tmp_path, plays):
    from tokenizers import ByteLevelBPETokenizer

    ours = train_tokenizer(plays, vocab_size=700, pattern="gpt2")
    vocab, merges = ours.save_gpt2(tmp_path)
    hf = ByteLevelBPETokenizer(str(vocab), str(merges), add_prefix_space=False)
    reloaded = BPETokenizer.from_gpt2_files(vocab, merges, pattern="gpt2")
    text = plays[2][:20_000] + " Ελληνικά, русский, 12345 + x_1 = f(y);\n\tdone"
    assert hf.encode(text).ids == ours.encode(text)
    assert reloaded.encode(text) == ours.encode(text)


def test_pretokenize_patterns():
    assert pretokenize("I'll pay 12345 now!!", "gpt4") == ["I", "'ll", " pay", " ", "123", "45", " now", "!!"]
    assert pretokenize("I'll pay 12345 now!!", "gpt2") == ["I", "'ll", " pay", " 12345", " now", "!!"]
    # single digits (PaLM, Llama, SmolLM2): the default, so that numbers are spelled digit by digit
    assert pretokenize("I'll pay 12345 now!!", "digits") == ["I", "'ll", " pay", " ", *"12345", " now", "!!"]
    text = "  x\n\n  def f():\r\n"
    assert "".join(pretokenize(text, "gpt4")) == text
    assert "".join(pretokenize(text + " 3.14159", "digits")) == text + " 3.14159"


def test_truncated_equals_a_shorter_training_run(plays):
    long = train_tokenizer(plays[:1], vocab_size=500)
    short = train_tokenizer(plays[:1], vocab_size=350)
    cut = long.truncated(350)
    assert cut.merges == short.merges and cut.fingerprint == short.fingerprint
    assert cut.encode(plays[1][:3000]) == short.encode(plays[1][:3000])


def _saved(tmp_path, small_bpe) -> tuple:
    path = small_bpe.save(tmp_path / "tok.json")
    return path, json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d.update(pattern="gpt5"), r"unknown pattern name 'gpt5'"),
        (lambda d: d.update(pattern=r"\p{L}+"), "does not cover all of the text"),
        (lambda d: d.update(pattern="(unclosed"), "not a valid regular expression|does not cover"),
        (lambda d: d.pop("merges"), "field 'merges' is missing"),
        (lambda d: d.update(merges=[*d["merges"][:3], "Ġzz qq"]), r"merge #3 'Ġzz qq' joins tokens that are not"),
        (lambda d: d["vocab"].update({"Ġzzzq": 300}), "id 300 is given to two tokens"),
        (lambda d: d["vocab"].update({"x": -1}), "has id -1, not a non-negative integer"),
        (lambda d: d.update(special_tokens={"<|endoftext|>": "zero"}), "has id 'zero'"),
    ],
)
def test_bad_tokenizer_json_is_one_error_naming_the_file(tmp_path, small_bpe, edit, message):
    path, data = _saved(tmp_path, small_bpe)
    edit(data)
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}: .*({message})"):
        BPETokenizer.load(path)


def test_truncated_or_repeated_key_tokenizer_json_names_the_file(tmp_path, small_bpe):
    path, _ = _saved(tmp_path, small_bpe)
    text = path.read_text(encoding="utf-8")
    path.write_text(text[: len(text) // 2], encoding="utf-8")
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}: truncated or invalid JSON"):
        BPETokenizer.load(path)
    path.write_text('{"format": "a", "format": "b"}', encoding="utf-8")
    with pytest.raises(ValueError, match="key 'format' appears twice"):
        BPETokenizer.load(path)


def test_training_with_an_unknown_pattern_name_is_refused(plays):
    with pytest.raises(ValueError, match="unknown pattern name 'gtp4'"):
        train_tokenizer(plays[:1], 300, pattern="gtp4")


def test_save_creates_the_folder_and_writes_atomically(tmp_path, small_bpe):
    path = small_bpe.save(tmp_path / "new" / "dir" / "tok.json")
    assert BPETokenizer.load(path).fingerprint == small_bpe.fingerprint
    assert sorted(p.name for p in path.parent.iterdir()) == ["tok.json"]
