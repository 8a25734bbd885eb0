"""Bad configs fail early with a message that names the problem."""

import pytest

from llm_from_scratch.model import ModelConfig, Transformer, get_config
from llm_from_scratch.pipeline import preset_config


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"d_model": 100, "n_heads": 3}, "n_heads=3 does not divide d_model=100"),
        ({"n_heads": 4, "n_kv_heads": 3}, "n_kv_heads=3 does not divide n_heads=4"),
        ({"d_model": 12, "n_heads": 4}, "head_dim .* is odd"),
        ({"vocab_size": 0}, "vocab_size must be a positive integer"),
        ({"n_layers": 2.5}, "n_layers must be a positive integer"),
        ({"dropout": 1.0}, "dropout must be in"),
        ({"rope_scaling": "magic"}, "rope_scaling must be one of"),
        ({"rope_scaling": "yarn", "rope_factor": 4.0}, "rope_original_context"),
        ({"rope_scaling": "linear", "rope_factor": 0.5, "rope_original_context": 64}, "rope_factor must be >= 1"),
    ],
)
def test_invalid_configs_raise_clear_value_errors(changes, message):
    with pytest.raises(ValueError, match=message):
        preset_config("tiny").model.replace(**changes)
    with pytest.raises(ValueError, match=message):
        Transformer(ModelConfig(**{**preset_config("tiny").model.to_dict(), **changes}))


def test_unknown_preset_and_unknown_field():
    with pytest.raises(ValueError, match="unknown architecture 'huge'"):
        get_config("huge")
    with pytest.raises(ValueError, match="unknown fields"):
        ModelConfig.from_dict({**preset_config("tiny").model.to_dict(), "n_embd": 3})


def test_context_extension_config():
    c = preset_config("book").model.with_context_extension("yarn", 4)
    assert c.context_length == 4 * preset_config("book").model.context_length and c.rope_original_context == 256
