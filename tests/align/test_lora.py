"""LoRA from scratch: exact start, merge/unmerge, full rank matches full fine-tuning, adapters of the wrong shape."""

import copy

import pytest
import torch
from torch import nn

from llm_from_scratch.align.lora import (
    LoRAConfig,
    LoRALinear,
    apply_lora,
    load_lora,
    lora_layers,
    lora_state_dict,
    merge_lora,
    trainable_parameters,
    unmerge_lora,
)


def _perturb_adapters(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in lora_layers(model).values():
            m.lora_B.copy_(torch.randn(m.lora_B.shape, generator=g) * 0.05)


def test_adapter_starts_as_the_base_model_and_counts_its_parameters(model):
    idx = torch.randint(0, model.config.vocab_size, (2, 12))
    before = model(idx)[0]
    apply_lora(model, LoRAConfig(rank=4))
    assert torch.equal(model(idx)[0], before)  # B = 0: the adapted model *is* the pretrained one
    layers = lora_layers(model)
    assert len(layers) == 4 * model.config.n_layers
    expected = sum(4 * (m.base.in_features + m.base.out_features) for m in layers.values())
    assert trainable_parameters(model) == expected


def test_merge_and_unmerge_are_the_same_function(model):
    idx = torch.randint(0, model.config.vocab_size, (2, 12))
    base_weights = copy.deepcopy(model.state_dict())
    apply_lora(model, LoRAConfig(rank=4))
    _perturb_adapters(model)
    unmerged = model(idx)[0]
    assert not torch.allclose(unmerged, model(idx)[0] * 0)  # sanity: not trivially zero
    merge_lora(model)
    torch.testing.assert_close(model(idx)[0], unmerged, atol=1e-5, rtol=1e-5)
    unmerge_lora(model)
    torch.testing.assert_close(model(idx)[0], unmerged, atol=1e-5, rtol=1e-5)
    for name, m in lora_layers(model).items():
        torch.testing.assert_close(m.base.weight, base_weights[f"{name}.weight"], atol=1e-6, rtol=0)


def test_full_rank_lora_reaches_full_fine_tuning():
    """With r = min(in, out), B A can be any matrix: fitting the same target, LoRA and full fine-tuning of the layer
    end at the same weights (gradient descent takes different paths, so compared at convergence)."""
    torch.manual_seed(0)
    d_in, d_out = 12, 8
    x = torch.randn(256, d_in)
    target = nn.Linear(d_in, d_out, bias=False)
    y = target(x).detach()
    start = nn.Linear(d_in, d_out, bias=False)

    full = copy.deepcopy(start)
    opt = torch.optim.Adam(full.parameters(), lr=0.02)
    for _ in range(1500):
        opt.zero_grad()
        ((full(x) - y) ** 2).mean().backward()
        opt.step()

    lora = LoRALinear(copy.deepcopy(start), rank=min(d_in, d_out), alpha=min(d_in, d_out))
    opt = torch.optim.Adam([lora.lora_A, lora.lora_B], lr=0.02)
    for _ in range(1500):
        opt.zero_grad()
        ((lora(x) - y) ** 2).mean().backward()
        opt.step()
    lora.merge()
    torch.testing.assert_close(lora.base.weight, full.weight, atol=2e-3, rtol=0)
    torch.testing.assert_close(full.weight, target.weight, atol=2e-3, rtol=0)
    assert not lora.base.weight.requires_grad  # only A and B were trained


def test_low_rank_cannot_fit_a_full_rank_update():
    torch.manual_seed(0)
    x = torch.randn(256, 12)
    target = nn.Linear(12, 8, bias=False)
    y = target(x).detach()
    lora = LoRALinear(nn.Linear(12, 8, bias=False), rank=1, alpha=1)
    opt = torch.optim.Adam([lora.lora_A, lora.lora_B], 0.02)
    for _ in range(800):
        opt.zero_grad()
        loss = ((lora(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
    assert loss.item() > 1e-2  # a rank-1 update cannot reach a random target: the rank is a real constraint


def test_adapter_round_trip_and_wrong_shape_is_one_clear_error(model):
    from llm_from_scratch.model import Transformer

    apply_lora(model, LoRAConfig(rank=4))
    _perturb_adapters(model)
    saved = lora_state_dict(model)
    other = copy.deepcopy(model)
    _perturb_adapters(other, seed=1)
    load_lora(other, saved)
    idx = torch.randint(0, model.config.vocab_size, (1, 8))
    torch.testing.assert_close(other(idx)[0], model(idx)[0])

    wider = Transformer(model.config.replace(d_model=model.config.d_model * 2))
    apply_lora(wider, LoRAConfig(rank=4))
    before = lora_state_dict(wider)
    with pytest.raises(ValueError, match="another shape"):
        load_lora(wider, saved)
    assert all(torch.equal(before[k], v) for k, v in lora_state_dict(wider).items())  # nothing half-loaded
    with pytest.raises(ValueError, match="no LoRA adapters"):
        load_lora(Transformer(model.config), saved)


def _pairs(tok, n=12):
    from llm_from_scratch.align.chat import Example
    from llm_from_scratch.align.sft import tokenize_examples

    examples = [
        Example(({"role": "user", "content": f"What is {i} + {i + 3}?"},), str(2 * i + 3)) for i in range(10, 10 + n)
    ]
    return tokenize_examples(tok, examples, max_prompt=32, max_reply=8)


def test_lora_sft_trains_only_the_adapters_and_saves_a_merged_plain_model(tok, model, monkeypatch):
    """Through the SFT loop: until the merge, every pretrained weight is bit-identical and only A, B moved; the
    merged model computes what the adapted one did (1e-5); what is left is a plain model with the same tensors."""
    import llm_from_scratch.align.lora as lora_mod
    from llm_from_scratch.align.sft import SFTConfig, train_sft

    original = copy.deepcopy(model.state_dict())
    idx = torch.randint(0, model.config.vocab_size, (2, 12))
    seen = {}
    real_merge = lora_mod.merge_and_unload

    def checked_merge(m):
        base = {k.replace(".base.", "."): v for k, v in m.state_dict().items() if "lora_" not in k}
        seen["base_identical"] = all(torch.equal(base[k], original[k]) for k in original)
        seen["trained_B"] = all(layer.lora_B.abs().sum() > 0 for layer in lora_layers(m).values())
        seen["trainable"] = {n for n, p in m.named_parameters() if p.requires_grad}
        m.eval()
        seen["adapted_logits"] = m(idx)[0].detach()
        return real_merge(m)

    monkeypatch.setattr(lora_mod, "merge_and_unload", checked_merge)
    pairs = _pairs(tok)
    cfg = SFTConfig(steps=4, batch_size=4, lr=1e-2, eval_interval=4, eval_examples=4, lora_rank=2, lora_alpha=4)
    train_sft(model, pairs, pairs[:4], cfg.validate())

    assert seen["base_identical"] and seen["trained_B"]
    assert seen["trainable"] and all(".lora_A" in n or ".lora_B" in n for n in seen["trainable"])
    torch.testing.assert_close(model(idx)[0], seen["adapted_logits"], atol=1e-5, rtol=1e-5)
    assert not lora_layers(model) and set(model.state_dict()) == set(original)  # a plain Transformer again
    changed = {k for k in original if not torch.equal(model.state_dict()[k], original[k])}
    assert changed and all(k.endswith(TARGET_WEIGHTS) for k in changed)  # only the adapted projections moved
    for k in changed:  # and each by a matrix of rank <= r
        assert torch.linalg.matrix_rank(model.state_dict()[k] - original[k], atol=1e-6) <= 2


TARGET_WEIGHTS = tuple(f"{t}.weight" for t in ("attn.qkv", "attn.proj", "ffn.gate_up", "ffn.down"))


def test_rank_zero_or_below_is_one_clear_error(model):
    from llm_from_scratch.align.sft import SFTConfig

    for rank in (0, -3):
        with pytest.raises(ValueError, match="rank must be >= 1"):
            apply_lora(model, LoRAConfig(rank=rank))
    assert not lora_layers(model)  # nothing wrapped by the failed calls
    with pytest.raises(ValueError, match="lora_rank"):
        SFTConfig(lora_rank=-1).validate()
    with pytest.raises(ValueError, match="lora_alpha"):
        SFTConfig(lora_rank=4, lora_alpha=0).validate()


def test_full_fine_tuning_keeps_its_artifact_key():
    """`lora_rank = 0` (full fine-tuning) leaves the SFT stage's key as it was before LoRA existed."""
    from dataclasses import asdict

    from llm_from_scratch.align.sft import SFTConfig

    full = SFTConfig()
    assert full.to_dict() == {k: v for k, v in asdict(full).items() if not k.startswith("lora_")}
    assert SFTConfig(lora_rank=8).to_dict()["lora_rank"] == 8


def test_recorded_book_comparison_is_used_only_for_the_models_it_was_recorded_for(tmp_path, monkeypatch):
    import json

    from llm_from_scratch.experiments import lora_sft
    from llm_from_scratch.pipeline import Artifacts

    art = Artifacts("tiny", tmp_path / "artifacts")
    lora = {"rank": 8, "alpha": 16.0, "lr": 5e-3}
    built = []
    monkeypatch.setattr(lora_sft, "book_comparison", lambda a, *args: built.append(args) or {"rows": "built"})
    path = tmp_path / "lora_book.json"
    keys = {"full_key": art.key("sft"), "lora_key": lora_sft._lora_art(art, **lora).key("sft")}
    path.write_text(json.dumps({**keys, "rows": "recorded"}))
    assert lora_sft.load_book_comparison(art, **lora, path=path)["rows"] == "recorded"
    assert not built
    # another LoRA rank keys another LoRA stage: the record does not apply, the rows are built
    assert lora_sft.load_book_comparison(art, **{**lora, "rank": 4}, path=path)["rows"] == "built"
    path.write_text(json.dumps({**keys, "full_key": "0" * 12, "rows": "recorded"}))  # another SFT model
    assert lora_sft.load_book_comparison(art, **lora, path=path)["rows"] == "built"
    assert len(built) == 2
