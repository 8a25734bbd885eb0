"""The tokenizer stored in a GGUF file, loaded into our own byte-level BPE (`BPETokenizer`).

A GGUF file of a GPT-2-style tokenizer (`tokenizer.ggml.model == "gpt2"`) carries the vocabulary as GPT-2
printable strings (`tokenizer.ggml.tokens`, space written `Ġ`), the merges in rank order
(`tokenizer.ggml.merges`, `"a b"`), a type per token (1 normal, 3 control, 4 user-defined, ...) and the name
of the pre-tokenizer (`tokenizer.ggml.pre`). Nothing needs training: our BPE encoder applies the lowest-ranked
merge first, exactly as Hugging Face's and llama.cpp's do, once the text is cut into the same words.
"""

from __future__ import annotations

from pathlib import Path

from llm_from_scratch.tokenizer.bpe import BPETokenizer, _from_printable
from llm_from_scratch.tokenizer.pretokenize import GPT2_PATTERN, GPT4_PATTERN

CONTROL, USER_DEFINED = 3, 4

# SmolLM's pre-tokenizer is two steps: every digit on its own (HF `Digits(individual_digits=True)`), then GPT-2's
# regex inside the pieces between digits. One regex does both: a digit alternative first, and GPT-2's
# "whitespace run not followed by a non-space" made to also stop before a digit, where a piece ends.
SMOLLM_PATTERN = r"""\p{N}|'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?[^\s\p{L}\p{N}]+|\s+(?![^\s\p{N}])|\s+"""

# llama.cpp's name of a pre-tokenizer -> our regex (GPT-4's cl100k regex is the one Llama 3 uses).
PRE_TOKENIZERS = {
    "default": GPT2_PATTERN,
    "gpt2": GPT2_PATTERN,
    "smollm": SMOLLM_PATTERN,
    "llama-bpe": GPT4_PATTERN,
    "llama3": GPT4_PATTERN,
}


class GGUFTokenizer(BPETokenizer):
    """Our BPE with a GGUF file's vocabulary, merges, pre-tokenizer and special (control) tokens."""

    bos_id: int | None = None
    eos_id: int | None = None
    chat_template: str | None = None

    @classmethod
    def from_metadata(cls, metadata: dict, source: str | Path = "<metadata>") -> GGUFTokenizer:
        kind = metadata.get("tokenizer.ggml.model")
        if kind != "gpt2":
            raise ValueError(
                f"{source}: tokenizer model {kind!r} is not supported; only byte-level BPE ('gpt2', as in "
                "SmolLM2, Llama 3, GPT-2) is; use a GGUF file with a GPT-2-style tokenizer"
            )
        tokens = metadata.get("tokenizer.ggml.tokens")
        merges = metadata.get("tokenizer.ggml.merges")
        if not tokens or not merges:
            raise ValueError(
                f"{source}: the tokenizer has no {'vocabulary' if not tokens else 'merges'} "
                "(tokenizer.ggml.tokens / tokenizer.ggml.merges); re-convert the model with llama.cpp's converter"
            )
        pre = metadata.get("tokenizer.ggml.pre", "default")
        if pre not in PRE_TOKENIZERS:
            raise ValueError(
                f"{source}: pre-tokenizer {pre!r} is not known here; known: {sorted(PRE_TOKENIZERS)} "
                "(add its regex to llm_from_scratch.tokenizer.gguf_tokenizer.PRE_TOKENIZERS)"
            )
        types = metadata.get("tokenizer.ggml.token_type") or [1] * len(tokens)
        # Control and user-defined tokens are matched whole in the text, like our reserved special tokens.
        specials = {
            t: i for i, (t, kind) in enumerate(zip(tokens, types, strict=True)) if kind in (CONTROL, USER_DEFINED)
        }
        special_ids = set(specials.values())
        vocab = {i: (t.encode() if i in special_ids else _from_printable(t)) for i, t in enumerate(tokens)}
        ids_of = {b: i for i, b in vocab.items() if i not in special_ids}
        pairs = []
        for line in merges:
            left, right = line.split(" ")
            pairs.append((ids_of[_from_printable(left)], ids_of[_from_printable(right)]))
        # A byte the vocabulary lacks (SmolLM2 has no token for a few control characters such as U+0004) is
        # dropped from the text, as Hugging Face's BPE does without an unknown token. Our BPE wants an id for
        # each of the 256 bytes, so such a byte gets a negative placeholder id that encoding never emits.
        missing = [b for b in range(256) if bytes([b]) not in ids_of]
        vocab |= {-1 - k: bytes([b]) for k, b in enumerate(missing)}
        tok = cls(vocab, pairs, specials, PRE_TOKENIZERS[pre])
        tok._drop = {b: None for b in missing if b < 0x80}  # bytes >= 0x80 here never occur in UTF-8 text
        tok.bos_id = metadata.get("tokenizer.ggml.bos_token_id")
        tok.eos_id = metadata.get("tokenizer.ggml.eos_token_id")
        tok.chat_template = metadata.get("tokenizer.chat_template")
        return tok

    _drop: dict[int, None] | None = None

    def _encode_word(self, word: str) -> tuple[int, ...]:
        return super()._encode_word(word.translate(self._drop)) if self._drop else super()._encode_word(word)

    def render_chat(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        """The conversation as the model's own chat template writes it (the chat code calls this when present)."""
        if not self.chat_template:
            raise ValueError("this GGUF file has no tokenizer.chat_template; pass a plain prompt instead of a chat")
        return apply_chat_template(self.chat_template, messages, add_generation_prompt)

    def encode_chat(self, messages: list[dict], add_generation_prompt: bool = True) -> list[int]:
        return self.encode(self.render_chat(messages, add_generation_prompt))

    @property
    def eot_id(self) -> int:
        """The end-of-sequence id the file names (`<|im_end|>` for SmolLM2-Instruct), else `<|endoftext|>`."""
        return self.eos_id if self.eos_id is not None else super().eot_id


def apply_chat_template(template: str, messages: list[dict], add_generation_prompt: bool = True) -> str:
    """Render a chat template from a model file (a Jinja2 template, as in `tokenizer.chat_template`) for
    `messages` (`[{"role": "user", "content": "..."}, ...]`).

    The template runs in Jinja2's immutable sandbox, as Hugging Face runs it: a template is code shipped inside a
    model file, so it must not reach Python attributes or mutate anything.
    """
    try:
        from jinja2.sandbox import ImmutableSandboxedEnvironment
    except ImportError as exc:  # jinja2 comes with torch; this is for a stripped-down environment
        raise RuntimeError("rendering a chat template needs jinja2: pip install jinja2") from exc
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    return env.from_string(template).render(messages=messages, add_generation_prompt=add_generation_prompt)
