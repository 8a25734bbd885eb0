"""The chapters' small character model: training, caching, attention maps, RoPE extension helpers."""

import torch

from llm_from_scratch.experiments.charlm import (
    attention_maps,
    char_data,
    per_position_loss,
    save_char_tokenizer,
    train_char_model,
    with_rope_scaling,
)


def test_train_caches_and_reloads(tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_FROM_SCRATCH_CACHE", str(tmp_path))
    model, data, history = train_char_model("tiny", progress=False)
    assert history["val_loss"][-1] < history["val_loss"][0] + 0.5 and len(history["step"]) >= 2
    again, _, history2 = train_char_model("tiny", progress=False)
    assert history2 == history
    assert all(torch.equal(again.state_dict()[k], v) for k, v in model.state_dict().items())
    assert data.decode(data.encode("ROMEO:\n")) == "ROMEO:\n"


def test_attention_maps_are_the_weights_the_model_uses(tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_FROM_SCRATCH_CACHE", str(tmp_path))
    model, data, _ = train_char_model("tiny", progress=False)
    idx = data.encode("To be, or not to be")[None]
    maps = attention_maps(model, idx)
    assert len(maps) == model.config.n_layers and maps[0].shape == (1, model.config.n_heads, idx.shape[1], idx.shape[1])
    assert torch.allclose(maps[0].sum(-1), torch.ones(1, model.config.n_heads, idx.shape[1]), atol=1e-5)
    assert maps[0][0, 0].triu(1).abs().max() == 0  # causal
    # the weights reproduce the layer's attention output
    layer, c = model.layers[0], model.config
    with torch.no_grad():
        x = model.tok_emb(idx)
        v = layer.attn.qkv(layer.attn_norm(x)).view(1, idx.shape[1], -1, c.head_dim).transpose(1, 2)[:, -c.n_kv_heads :]
        v = v.repeat_interleave(c.n_heads // c.n_kv_heads, dim=1)
        y = (maps[0] @ v).transpose(1, 2).reshape(1, idx.shape[1], -1)
        T = idx.shape[1]
        expected = layer.attn(layer.attn_norm(x), model.rope_cos[:T], model.rope_sin[:T])
    assert torch.allclose(layer.attn.proj(y), expected, atol=1e-5)


def test_rope_scaling_helpers(tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_FROM_SCRATCH_CACHE", str(tmp_path))
    model, data, _ = train_char_model("tiny", progress=False)
    trained = model.config.context_length
    for kind in (None, "linear", "ntk", "yarn"):
        long = with_rope_scaling(model, 4 * trained, kind)
        assert long.config.context_length == 4 * trained and long.config.rope_scaling == kind
        curve = per_position_loss(long, data.val, 4 * trained, batches=1, batch_size=2)
        assert curve.shape == (4 * trained,) and torch.isfinite(curve).all()
    same = with_rope_scaling(model, trained, "yarn")
    assert same.config.rope_scaling is None


def test_char_tokenizer_roundtrip(tmp_path):
    from tokenizers import Tokenizer

    chars = char_data().chars
    files = save_char_tokenizer(chars, tmp_path)
    tok = Tokenizer.from_file(str(files[0]))
    text = "KING:\nNow is the winter of our discontent!"
    assert tok.encode(text).ids == [chars.index(c) for c in text]
    assert tok.decode(tok.encode(text).ids) == text
