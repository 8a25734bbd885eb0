"""The full model: parameter and FLOP accounting, initialisation, training signal, torch.compile."""

import math

import pytest
import torch

from llm_from_scratch.model import ARCHITECTURES, Transformer, count_parameters, flops_per_token
from llm_from_scratch.pipeline import preset_config


@pytest.mark.parametrize("name", ["tiny", "book", "small"])
def test_parameter_count_formula_matches_the_module(name):
    for tie in (True, False):
        config = (ARCHITECTURES[name] if name in ARCHITECTURES else preset_config(name).model).replace(
            tie_embeddings=tie
        )
        assert Transformer(config).num_parameters() == count_parameters(config)


def test_reference_configs_have_their_published_sizes():
    # meta-llama/Llama-3.2-1B: 1,235,814,400 parameters (tied embeddings)
    assert count_parameters(ARCHITECTURES["llama-3.2-1b"]) == 1_235_814_400
    # GPT-2 small has 124,439,808; ours lacks its 786,432 learned positions and LayerNorm biases
    assert abs(count_parameters(ARCHITECTURES["gpt2-124m"]) - 124_439_808) / 124_439_808 < 0.01


def test_flops_follow_the_6n_rule_plus_attention():
    config = ARCHITECTURES["llama-3.2-1b"]
    n_matmul = count_parameters(config) - 2 * config.n_layers * config.d_model - config.d_model  # no norm gains
    # tied: the head matrix is the embedding, used once as a matmul; the lookup costs no FLOPs
    assert flops_per_token(config, seq_len=1) == pytest.approx(6 * n_matmul, rel=1e-3)
    extra = flops_per_token(config, 2048) - flops_per_token(config, 1)
    assert extra == 12 * config.n_layers * config.d_model * 2047
    assert flops_per_token(config, 2048, training=False) * 3 == flops_per_token(config, 2048)


def test_initial_loss_is_near_log_vocab_and_residual_projections_are_scaled():
    torch.manual_seed(0)
    config = preset_config("tiny").model
    model = Transformer(config)
    idx, targets = torch.randint(0, config.vocab_size, (2, 4, 64))  # targets independent of the inputs
    _, loss = model(idx, targets)
    assert abs(loss.item() - math.log(config.vocab_size)) < 0.1
    std = model.layers[0].ffn.down.weight.std().item()
    assert std == pytest.approx(0.02 / math.sqrt(2 * config.n_layers), rel=0.1)
    assert model.lm_head.weight is model.tok_emb.weight


def test_a_few_steps_overfit_one_batch():
    torch.manual_seed(0)
    model = Transformer(preset_config("tiny").model)
    idx = torch.randint(0, 512, (2, 32))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        _, loss = model(idx[:, :-1], idx[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_dropout_only_in_training_mode():
    torch.manual_seed(0)
    model = Transformer(preset_config("tiny").model.replace(dropout=0.5))
    idx = torch.randint(0, 512, (1, 16))
    model.eval()
    assert torch.equal(model(idx)[0], model(idx)[0])
    model.train()
    assert not torch.equal(model(idx)[0], model(idx)[0])


@pytest.mark.slow
def test_torch_compile_fullgraph_matches_eager():
    torch.manual_seed(0)
    model = Transformer(preset_config("tiny").model)
    idx = torch.randint(0, 512, (2, 32))
    compiled = torch.compile(model, fullgraph=True)
    eager_logits, eager_loss = model(idx, idx)
    logits, loss = compiled(idx, idx)
    assert (logits - eager_logits).abs().max() < 1e-4 and abs(loss.item() - eager_loss.item()) < 1e-5
