"""``llm-from-scratch generate`` on both checkpoint layouts."""

import torch

from llm_from_scratch.cli import main
from llm_from_scratch.model import Transformer, generate
from llm_from_scratch.model.checkpoint import load_model, save_model
from llm_from_scratch.model.hf import export_hf
from llm_from_scratch.pipeline import preset_config


def test_native_checkpoint_roundtrip(tmp_path):
    torch.manual_seed(0)
    model = Transformer(preset_config("tiny").model)
    save_model(tmp_path, model)
    back = load_model(tmp_path)
    assert all(torch.equal(back.state_dict()[k], v) for k, v in model.state_dict().items())


def test_generate_command_prints_greedy_ids(tmp_path, capsys):
    torch.manual_seed(0)
    model = Transformer(preset_config("tiny").model).eval()
    export_hf(model, tmp_path)
    expected = generate(model, torch.tensor([[5, 6, 7]]), 6)[0, 3:].tolist()
    rc = main(["generate", str(tmp_path), "--prompt-ids", "5 6 7", "--max-new-tokens", "6", "--temperature", "0"])
    assert rc == 0
    assert capsys.readouterr().out.split() == [str(t) for t in expected]


def test_generate_command_without_tokenizer_is_a_clear_error(tmp_path, capsys):
    export_hf(Transformer(preset_config("tiny").model), tmp_path)
    assert main(["generate", str(tmp_path), "--prompt", "hello"]) == 2
    assert "no tokenizer found" in capsys.readouterr().err
    assert main(["generate", str(tmp_path / "missing"), "--prompt-ids", "1"]) == 2


def test_generate_finds_the_tokenizer_of_a_run_and_refuses_a_mismatched_one(tmp_path, capsys):
    """A pretraining checkpoint inside a run (WORKDIR/pretrain-*/step-N) is encoded with WORKDIR/tokenizer-*/;
    --tokenizer with another fingerprint than the checkpoint recorded is refused."""
    from llm_from_scratch.tokenizer.bpe import train_tokenizer
    from llm_from_scratch.train.checkpoint import save_checkpoint as save_train_checkpoint
    from llm_from_scratch.train.optim import AdamW

    text = ["But soft, what light through yonder window breaks? It is the east, and Juliet is the sun."] * 20
    tok = train_tokenizer(text, 300)
    other = train_tokenizer([t.upper() for t in text], 300)
    (tmp_path / "tokenizer-abc").mkdir()
    tok.save(tmp_path / "tokenizer-abc" / "tokenizer.json")
    other.save(tmp_path / "other.json")
    torch.manual_seed(0)
    model = Transformer(preset_config("tiny").model).eval()
    run = tmp_path / "pretrain-def"
    ckpt = save_train_checkpoint(
        run, 1, model, AdamW(model.parameters()), model.config, {"tokenizer_fingerprint": tok.fingerprint}
    )
    prompt = "It is the east"
    expected = tok.decode(generate(model, torch.tensor([tok.encode(prompt)]), 5, temperature=0.0)[0, -5:].tolist())
    args = ["generate", str(ckpt), "--prompt", prompt, "--max-new-tokens", "5", "--temperature", "0", "--stop"]
    assert main(args) == 0
    assert capsys.readouterr().out.rstrip("\n") == expected
    assert main([*args, "--tokenizer", str(tmp_path / "other.json")]) == 2
    assert "was trained with tokenizer" in capsys.readouterr().err
