"""The interface the training and alignment stages code against."""

import dataclasses

import pytest
import torch

from llm_from_scratch.model import ARCHITECTURES, ModelConfig, Transformer, generate
from llm_from_scratch.pipeline import preset_config


def test_config_is_frozen_with_presets():
    config = preset_config("tiny").model
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.d_model = 3  # type: ignore[misc]
    for config in (preset_config("tiny").model, preset_config("book").model, *ARCHITECTURES.values()):
        assert config.validate() is config


def test_forward_returns_logits_and_mean_loss_with_ignore_index():
    torch.manual_seed(0)
    config = preset_config("tiny").model
    model = Transformer(config)
    idx = torch.randint(0, config.vocab_size, (2, 16))
    targets = idx.roll(-1, dims=1)
    logits, loss = model(idx)
    assert logits.shape == (2, 16, config.vocab_size) and loss is None
    targets[:, -4:] = -100
    _, loss = model(idx, targets)
    expected = torch.nn.functional.cross_entropy(
        logits[:, :-4].reshape(-1, config.vocab_size), targets[:, :-4].reshape(-1)
    )
    assert torch.allclose(loss, expected, atol=1e-6)


def test_state_dict_keys_are_stable():
    keys = set(Transformer(preset_config("tiny").model).state_dict())
    expected = {"tok_emb.weight", "norm.weight", "lm_head.weight"}
    for i in range(preset_config("tiny").model.n_layers):
        for part in ("attn_norm", "attn.qkv", "attn.proj", "ffn_norm", "ffn.gate_up", "ffn.down"):
            expected.add(f"layers.{i}.{part}.weight")
    assert keys == expected


def test_generate_extends_the_prompt():
    torch.manual_seed(0)
    model = Transformer(preset_config("tiny").model)
    prompt = torch.zeros(1, 3, dtype=torch.long)
    out = generate(model, prompt, 5)
    assert out.shape == (1, 8) and torch.equal(out[:, :3], prompt)


def test_config_roundtrip(tmp_path):
    config = preset_config("book").model.replace(dropout=0.1)
    config.save(tmp_path / "config.json")
    assert ModelConfig.load(tmp_path / "config.json") == config
