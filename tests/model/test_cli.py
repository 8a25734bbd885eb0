"""``llm-from-scratch generate`` on both checkpoint layouts."""

import torch

from llm_from_scratch.cli import main
from llm_from_scratch.model import PRESETS, Transformer, generate
from llm_from_scratch.model.checkpoint import load_model, save_checkpoint
from llm_from_scratch.model.hf import export_hf


def test_native_checkpoint_roundtrip(tmp_path):
    torch.manual_seed(0)
    model = Transformer(PRESETS["tiny"])
    save_checkpoint(model, tmp_path)
    back = load_model(tmp_path)
    assert all(torch.equal(back.state_dict()[k], v) for k, v in model.state_dict().items())


def test_generate_command_prints_greedy_ids(tmp_path, capsys):
    torch.manual_seed(0)
    model = Transformer(PRESETS["tiny"]).eval()
    export_hf(model, tmp_path)
    expected = generate(model, torch.tensor([[5, 6, 7]]), 6)[0, 3:].tolist()
    rc = main(["generate", str(tmp_path), "--prompt-ids", "5 6 7", "--max-new-tokens", "6", "--temperature", "0"])
    assert rc == 0
    assert capsys.readouterr().out.split() == [str(t) for t in expected]


def test_generate_command_without_tokenizer_is_a_clear_error(tmp_path, capsys):
    export_hf(Transformer(PRESETS["tiny"]), tmp_path)
    assert main(["generate", str(tmp_path), "--prompt", "hello"]) == 2
    assert "no tokenizer.json or tokenizer.model" in capsys.readouterr().err
    assert main(["generate", str(tmp_path / "missing"), "--prompt-ids", "1"]) == 2
