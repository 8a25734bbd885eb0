import torch


def test_stream_reply_concatenates_to_the_generated_reply(model, tok):
    """The streamed pieces join to exactly the decoded tokens that ``generate`` samples with the same seed."""
    from llm_from_scratch.align.chat import encode_prompt, end_id
    from llm_from_scratch.eval.chat import stream_reply
    from llm_from_scratch.model import generate

    msgs = [{"role": "user", "content": "Who goes there?"}]
    pieces = list(stream_reply(model, tok, msgs, max_new_tokens=12, temperature=1.0, top_p=0.9, seed=3))
    ids = encode_prompt(tok, msgs, model.config.context_length - 12)
    out = generate(
        model, torch.tensor([ids]), 12, temperature=1.0, top_p=0.9, stop_tokens=[end_id(tok)],
        generator=torch.Generator().manual_seed(3),
    )[0, len(ids) :].tolist()  # fmt: skip
    if end_id(tok) in out:
        out = out[: out.index(end_id(tok))]
    assert "".join(pieces) == tok.decode(out)
    assert len(pieces) >= 2  # streamed, not returned in one piece


def test_chat_loop_keeps_the_conversation_and_resets(model, tok):
    from llm_from_scratch.eval.chat import chat_loop

    lines = iter(["Hello there", "/reset", "Again", "/exit"])
    written = []
    msgs = chat_loop(model, tok, system="You are HAMLET.", read=lambda p: next(lines), write=written.append,
                     max_new_tokens=6, seed=0)  # fmt: skip
    assert [m["role"] for m in msgs] == ["system", "user", "assistant"]
    assert msgs[1]["content"] == "Again"
    assert written.count("model> ") == 2
