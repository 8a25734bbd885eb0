"""The sentencepiece wrapper: same interface, same special-token ids, exact round trip of valid text."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_from_scratch.tokenizer.bpe import SPECIAL_TOKENS
from llm_from_scratch.tokenizer.spm import SentencePieceTokenizer, train_sentencepiece

# sentencepiece works on valid Unicode only (no lone surrogates), and it writes spaces as U+2581, so a U+2581 in
# the input comes back as a space: the one character it cannot round-trip with these settings.
VALID_TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\u2581"), max_size=200)


@pytest.fixture(scope="module", params=["bpe", "unigram"])
def spm_tok(request, plays):
    return train_sentencepiece(plays, vocab_size=800, model_type=request.param)


def test_special_tokens_have_ids_0_to_4(spm_tok):
    assert spm_tok.special_tokens == {s: i for i, s in enumerate(SPECIAL_TOKENS)}
    assert spm_tok.eot_id == 0 and spm_tok.vocab_size == 800
    ids = spm_tok.encode("<|user|>hi<|end|><|endoftext|>")
    assert ids[0] == 2 and ids[-2:] == [4, 0]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(VALID_TEXT, st.sampled_from(SPECIAL_TOKENS)), max_size=6))
def test_round_trip_valid_text(spm_tok, parts):
    text = "".join(parts)
    assert spm_tok.decode(spm_tok.encode(text)) == text


def test_whitespace_and_layout_survive(spm_tok):
    text = "  def f(x):\n\t\treturn   x  \n\n\nTHE END"
    assert spm_tok.decode(spm_tok.encode(text)) == text


def test_save_load(tmp_path, spm_tok):
    loaded = SentencePieceTokenizer.load(spm_tok.save(tmp_path / "t.model"))
    assert loaded.fingerprint == spm_tok.fingerprint
    assert loaded.encode("To be, or not to be") == spm_tok.encode("To be, or not to be")
