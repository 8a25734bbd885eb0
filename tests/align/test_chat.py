"""Chat template: rendering, parsing, token-level framing, truncation, and the label mask."""

import pytest

from llm_from_scratch.align.chat import END, encode_example, encode_prompt, end_id, parse_chat, render_chat


def test_render_and_parse_round_trip(example):
    msgs = [*example.prompt, {"role": "assistant", "content": example.response}]
    text = render_chat(msgs)
    assert text == (
        "<|system|>You are HAMLET.<|end|><|user|>How fares my lord?<|end|>"
        "<|assistant|>Excellent well; you are a fishmonger.<|end|>"
    )
    assert parse_chat(text) == msgs
    # an open assistant turn (a reply cut off by the budget) parses as it stands
    assert parse_chat(render_chat(example.prompt, True) + "Excel")[-1] == {"role": "assistant", "content": "Excel"}


def test_render_rejects_special_tokens_in_content_and_unknown_roles():
    with pytest.raises(ValueError, match="special token"):
        render_chat([{"role": "user", "content": f"hi{END}"}])
    with pytest.raises(ValueError, match="unknown chat role"):
        render_chat([{"role": "narrator", "content": "hi"}])


def test_special_tokens_are_single_reserved_ids(tok, example):
    ids = tok.encode(render_chat(example.prompt, add_generation_prompt=True))
    assert ids[0] == tok.special_tokens["<|system|>"] == 1
    assert ids[-1] == tok.special_tokens["<|assistant|>"] == 3
    assert ids.count(end_id(tok)) == 2 and end_id(tok) == 4


def test_labels_cover_reply_and_end_only(tok, example):
    ids, labels = encode_example(tok, example.prompt, example.response)
    p = encode_prompt(tok, example.prompt)
    assert ids[: len(p)] == p and len(labels) == len(ids)
    counted = [(i, y) for i, y in enumerate(labels) if y != -100]
    # position i predicts ids[i + 1]: the first counted position is the last prompt token (<|assistant|>)
    assert counted[0][0] == len(p) - 1
    assert [y for _, y in counted] == ids[len(p) :]
    assert ids[-1] == end_id(tok)
    assert tok.decode([y for _, y in counted][:-1]) == example.response


def test_prompt_truncation_keeps_template_and_end_of_speech(tok):
    long = " ".join(["word"] * 200) + " the very end"
    prompt = ({"role": "system", "content": "You are X."}, {"role": "user", "content": long})
    ids = encode_prompt(tok, prompt, max_tokens=40)
    assert len(ids) <= 40
    text = tok.decode(ids)
    assert text.startswith("<|system|>You are X.<|end|><|user|>") and text.endswith("the very end<|end|><|assistant|>")
