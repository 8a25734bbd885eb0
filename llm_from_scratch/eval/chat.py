"""Interactive chat in the terminal: the chat template, streamed tokens, temperature and top-p.

Tokens are decoded as they arrive. A BPE token can end in the middle of a multi-byte character, so the loop
decodes the whole reply so far and prints only what is new, holding back a trailing replacement character until
the next token completes it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator

import torch


def stream_reply(
    model,
    tokenizer,
    messages: list[dict],
    max_new_tokens: int = 64,
    temperature: float = 0.8,
    top_p: float | None = 0.95,
    seed: int | None = None,
) -> Iterator[str]:
    """Yield the assistant's reply to `messages` piece by piece, as `llm_from_scratch.model.stream` samples
    it; stops at `<|end|>`. The conversation is cut from the left to leave room for the reply."""
    from llm_from_scratch.align.chat import encode_prompt, end_id
    from llm_from_scratch.model import stream

    limit = model.config.context_length
    max_new_tokens = min(max_new_tokens, limit // 2)
    ids = encode_prompt(tokenizer, messages, limit - max_new_tokens)
    device = model.tok_emb.weight.device
    g = torch.Generator(device=device).manual_seed(seed) if seed is not None else None
    end = end_id(tokenizer)
    new: list[int] = []
    shown = ""
    for tok in stream(
        model, torch.tensor([ids], device=device), max_new_tokens, temperature=temperature, top_p=top_p,
        stop_tokens=[end], generator=g,
    ):  # fmt: skip
        t = int(tok[0])
        if t == end:
            break
        new.append(t)
        text = tokenizer.decode(new)
        if text.endswith("\ufffd"):
            continue  # an incomplete UTF-8 character: wait for the rest
        yield text[len(shown) :]
        shown = text
    text = tokenizer.decode(new)
    if len(text) > len(shown):
        yield text[len(shown) :]


def chat_loop(
    model,
    tokenizer,
    *,
    system: str | None = None,
    read: Callable[[str], str] = input,
    write: Callable[[str], None] | None = None,
    **sampling,
) -> list[dict]:
    """Read user turns until EOF or `/exit`; `/reset` forgets the conversation. Returns the conversation."""
    write = write or (lambda s: (sys.stdout.write(s), sys.stdout.flush()))
    start = [{"role": "system", "content": system}] if system else []
    messages = list(start)
    while True:
        try:
            line = read("you> ").strip()
        except (EOFError, KeyboardInterrupt):
            write("\n")
            return messages
        if line in ("/exit", "/quit"):
            return messages
        if line == "/reset":
            messages = list(start)
            continue
        if not line:
            continue
        messages.append({"role": "user", "content": line})
        write("model> ")
        turn = dict(sampling)
        if turn.get("seed") is not None:  # reproducible, but not the same random draws at every turn
            turn["seed"] += len(messages)
        reply = "".join(piece for piece in _echo(stream_reply(model, tokenizer, messages, **turn), write))
        write("\n")
        messages.append({"role": "assistant", "content": reply.strip()})


def _echo(pieces: Iterator[str], write: Callable[[str], None]) -> Iterator[str]:
    for piece in pieces:
        write(piece)
        yield piece
