"""The chat template: turns framed by the special tokens the tokenizer reserved before pretraining.

A conversation renders as `<|system|>text<|end|><|user|>text<|end|><|assistant|>text<|end|>`. The model learns to
close its own turn with `<|end|>`, and decoding stops there. Because the five special tokens were reserved when
the tokenizer was trained, no embedding row has to be added after pretraining: the rows of the turn markers are
simply untrained (the pretraining corpus never contains them) until fine-tuning gives them a meaning.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

SYSTEM, USER, ASSISTANT, END = "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"
ROLE_TOKENS = {"system": SYSTEM, "user": USER, "assistant": ASSISTANT}
_ROLE_OF = {v: k for k, v in ROLE_TOKENS.items()}
_TURN = re.compile(r"(<\|system\|>|<\|user\|>|<\|assistant\|>)(.*?)(<\|end\|>|$)", re.S)

Message = dict  # {"role": "system" | "user" | "assistant", "content": str}


def render_chat(messages: Sequence[Message], add_generation_prompt: bool = False) -> str:
    """The text of `messages` in the chat template; with `add_generation_prompt` an open assistant turn
    follows, which is where the model starts writing."""
    out = []
    for m in messages:
        if m["role"] not in ROLE_TOKENS:
            raise ValueError(f"unknown chat role {m['role']!r}: use one of {sorted(ROLE_TOKENS)}")
        if any(t in m["content"] for t in (*ROLE_TOKENS.values(), END)):
            raise ValueError("a message contains a chat special token; strip it from user text before rendering")
        out.append(f"{ROLE_TOKENS[m['role']]}{m['content']}{END}")
    if add_generation_prompt:
        out.append(ASSISTANT)
    return "".join(out)


def parse_chat(text: str) -> list[Message]:
    """The messages of a rendered conversation (the inverse of `render_chat`); a last turn without
    `<|end|>` (a reply cut off by the token budget) is returned as it stands."""
    return [{"role": _ROLE_OF[m.group(1)], "content": m.group(2)} for m in _TURN.finditer(text)]


@dataclass(frozen=True)
class Example:
    """One training example: the conversation so far (ending with a user turn) and the assistant's reply."""

    prompt: tuple[Message, ...]
    response: str
    source: str = ""


def special_id(tokenizer, token: str) -> int:
    try:
        return tokenizer.special_tokens[token]
    except KeyError:
        raise ValueError(
            f"the tokenizer has no special token {token!r}; the chat chapters need a tokenizer trained with the "
            "reserved tokens <|endoftext|> <|system|> <|user|> <|assistant|> <|end|>"
        ) from None


def end_id(tokenizer) -> int:
    """The id that ends a turn: generation stops on it (a real model's tokenizer names its own, e.g. SmolLM2's
    `<|im_end|>`)."""
    if hasattr(tokenizer, "encode_chat"):
        return tokenizer.eot_id
    return special_id(tokenizer, END)


def encode_prompt(tokenizer, prompt: Sequence[Message], max_tokens: int | None = None) -> list[int]:
    """Token ids of the prompt plus the open assistant turn. Over `max_tokens`, the *start* of the last user
    message is cut (the end of what was said matters most for the reply); the turn structure is kept. A tokenizer
    with its own chat template (a GGUF model's) renders the prompt with it, and is cut from the left."""
    if hasattr(tokenizer, "encode_chat"):
        ids = tokenizer.encode_chat(list(prompt))
        return ids if max_tokens is None else ids[-max_tokens:]
    ids = tokenizer.encode(render_chat(prompt, add_generation_prompt=True))
    if max_tokens is None or len(ids) <= max_tokens:
        return ids
    *head, last = prompt
    fixed = len(tokenizer.encode(render_chat([*head, {"role": "user", "content": ""}], True)))
    budget = max_tokens - fixed
    if budget < 1:  # a budget too small even for the template (tiny preset): keep the last tokens
        return ids[-max_tokens:]
    content = tokenizer.decode(tokenizer.encode(last["content"])[-budget:])
    for t in (*ROLE_TOKENS.values(), END):
        content = content.replace(t, "")
    return tokenizer.encode(render_chat([*head, {"role": "user", "content": content}], True))[-max_tokens:]


def encode_example(
    tokenizer, prompt: Sequence[Message], response: str, max_prompt: int | None = None
) -> tuple[list[int], list[int]]:
    """`(ids, labels)` of a prompt and its reply. `labels` is `ids` shifted left by one with `-100` where
    the next token belongs to the prompt: the loss is taken on the reply's tokens and its closing `<|end|>` only."""
    p = encode_prompt(tokenizer, prompt, max_prompt)
    r = [*tokenizer.encode(response), end_id(tokenizer)]
    ids = p + r
    labels = [-100] * (len(p) - 1) + r + [-100]
    return ids, labels
