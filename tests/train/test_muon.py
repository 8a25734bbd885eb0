"""Muon: the Newton-Schulz iteration against its SVD form and torch's, the update rule against torch.optim.Muon,
the parameter split, and Muon inside the trainer (learning, checkpoints, bit-identical resume)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from llm_from_scratch.train.muon import NS_COEFFS, Muon, muon_param_groups, newton_schulz
from llm_from_scratch.train.trainer import TrainConfig, train


def _svd_reference(g: torch.Tensor, steps: int = 5) -> torch.Tensor:
    """The same iteration computed on the singular values: U p(...p(S / ||G||_F)) V^T with p the quintic."""
    u, s, vh = torch.linalg.svd(g.double(), full_matrices=False)
    a, b, c = NS_COEFFS
    s = s / g.double().norm()
    for _ in range(steps):
        s = a * s + b * s**3 + c * s**5
    return (u * s) @ vh


@pytest.mark.parametrize("shape", [(32, 48), (48, 32), (64, 64)])
def test_newton_schulz_is_the_quintic_applied_to_the_singular_values(shape):
    g = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    out = newton_schulz(g)
    torch.testing.assert_close(out.double(), _svd_reference(g), atol=2e-4, rtol=1e-3)


def test_newton_schulz_approximates_the_polar_factor():
    g = torch.randn(64, 96, generator=torch.Generator().manual_seed(1))
    u, _, vh = torch.linalg.svd(g, full_matrices=False)
    out = newton_schulz(g)
    s = torch.linalg.svdvals(out)
    assert s.min() > 0.5 and s.max() < 1.3  # every direction gets a step of about the same size
    cos = (out * (u @ vh)).sum() / (out.norm() * (u @ vh).norm())
    assert cos > 0.97
    more = newton_schulz(g, steps=30)  # the quintic's fixed points lie near, not at, 1: still about orthogonal
    assert (torch.linalg.svdvals(more) - 1).abs().max() < 0.35


def test_newton_schulz_matches_torch_within_bfloat16():
    from torch.optim._muon import _zeropower_via_newtonschulz

    g = torch.randn(48, 80, generator=torch.Generator().manual_seed(2))
    ref = _zeropower_via_newtonschulz(g, NS_COEFFS, 5, 1e-7).float()  # torch iterates in bfloat16
    assert (newton_schulz(g) - ref).abs().max() < 0.05


def test_muon_steps_match_torch_optim_muon(monkeypatch):
    """Momentum, Nesterov, decoupled decay and the shape scaling equal torch's, given the same (fp32) iteration."""
    import torch.optim._muon as tm

    monkeypatch.setattr(tm, "_zeropower_via_newtonschulz", lambda g, coeffs, steps, eps: newton_schulz(g, steps))
    torch.manual_seed(0)
    w0 = torch.randn(40, 24)
    ours_p, ref_p = torch.nn.Parameter(w0.clone()), torch.nn.Parameter(w0.clone())
    ours = Muon([{"params": [ours_p], "use_muon": True}], lr=0.02, momentum=0.9, weight_decay=0.1)
    ref = torch.optim.Muon([ref_p], lr=0.02, momentum=0.9, weight_decay=0.1, nesterov=True)
    for step in range(4):
        grad = torch.randn(40, 24, generator=torch.Generator().manual_seed(step))
        ours_p.grad, ref_p.grad = grad.clone(), grad.clone()
        ours.step()
        ref.step()
    torch.testing.assert_close(ours_p.data, ref_p.data, atol=1e-6, rtol=1e-5)
    assert not torch.equal(ours_p.data, w0)


def test_adamw_groups_inside_muon_equal_torch_adamw():
    torch.manual_seed(0)
    w0 = torch.randn(10)
    ours_p, ref_p = torch.nn.Parameter(w0.clone()), torch.nn.Parameter(w0.clone())
    ours = Muon([{"params": [ours_p], "use_muon": False}], lr=1e-2, betas=(0.9, 0.95), weight_decay=0.1)
    ref = torch.optim.AdamW([ref_p], lr=1e-2, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    for step in range(5):
        grad = torch.randn(10, generator=torch.Generator().manual_seed(step))
        ours_p.grad, ref_p.grad = grad.clone(), grad.clone()
        ours.step()
        ref.step()
    torch.testing.assert_close(ours_p.data, ref_p.data)


def test_param_groups_give_muon_only_the_hidden_matrices(tiny_config):
    from llm_from_scratch.model import Transformer

    for tied in (True, False):
        model = Transformer(tiny_config.replace(tie_embeddings=tied))
        groups = muon_param_groups(model, 0.1, 20.0)
        names = {id(p): n for n, p in model.named_parameters()}
        muon = {names[id(p)] for p in groups[0]["params"]}
        assert muon and all(
            n.startswith("layers.") and n.endswith(("qkv.weight", "proj.weight", "gate_up.weight", "down.weight"))
            for n in muon
        )
        rest = {names[id(p)] for g in groups[1:] for p in g["params"]}
        assert "tok_emb.weight" in rest and "norm.weight" in rest
        assert tied or "lm_head.weight" in rest
        assert len(muon) + len(rest) == len(list(model.parameters()))
        assert groups[0]["lr_mult"] == 20.0 and groups[2]["weight_decay"] == 0.0


def test_a_wrapped_models_head_stays_with_adamw(tiny_config):
    from llm_from_scratch.model import Transformer

    wrapper = torch.nn.Module()
    wrapper.module = Transformer(tiny_config.replace(tie_embeddings=False))  # as DDP wraps it
    muon = {id(p) for p in muon_param_groups(wrapper, 0.1, 20.0)[0]["params"]}
    assert id(wrapper.module.lm_head.weight) not in muon and len(muon) == 4 * tiny_config.n_layers


def test_muon_rejects_a_vector_in_a_muon_group():
    with pytest.raises(ValueError, match="2-D"):
        Muon([{"params": [torch.nn.Parameter(torch.zeros(3))], "use_muon": True}])


CFG = TrainConfig(
    max_steps=12,
    batch_size=4,
    grad_accum=2,
    peak_lr=3e-3,
    warmup_frac=0.1,
    eval_interval=4,
    eval_batches=2,
    log_interval=2,
    ckpt_interval=3,
    seed=7,
    optimizer="muon",
    muon_lr=0.02,
    schedule="wsd",
    decay_frac=0.3,
)


def _curve(records: list[dict]) -> list[tuple]:
    keys = ("loss", "lr", "grad_norm", "val_loss", "sample")
    return [(r["step"], *(r.get(k) for k in keys)) for r in records]


def test_muon_trains_and_resumes_bit_for_bit(tmp_path, char_data, tiny_config):
    full = train(tiny_config, char_data, CFG, tmp_path / "full", progress=False)
    _, val = full.series("val_loss")
    assert val[-1] < val[0] - 0.3
    first = train(tiny_config, char_data, CFG, tmp_path / "split", stop_at=5, progress=False)
    assert first.records[-1]["step"] <= 5
    resumed = train(tiny_config, char_data, CFG, tmp_path / "split", progress=False)
    assert _curve(resumed.records) == _curve(full.records)
    for (name, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    from safetensors.torch import load_file

    state = load_file(tmp_path / "full" / "step-00000012" / "train_state.safetensors")
    assert any(k.endswith("momentum_buffer") for k in state)  # Muon's state is in the pickle-free checkpoint
    assert any(k.endswith("exp_avg_sq") for k in state)  # and AdamW's, for the embeddings and norms


def test_muon_run_differs_from_adamw_and_the_default_is_unchanged(tmp_path, char_data, tiny_config):
    adamw = dataclasses.replace(CFG, optimizer="adamw", schedule="cosine", decay_frac=0.2, max_steps=4)
    a = train(tiny_config, char_data, adamw, None, progress=False)
    m = train(tiny_config, char_data, dataclasses.replace(adamw, optimizer="muon"), None, progress=False)
    assert a.last("loss") != m.last("loss")
    assert "optimizer" not in adamw.to_dict()  # defaults are left out: existing run keys stay valid
    assert dataclasses.replace(adamw, optimizer="muon").to_dict()["optimizer"] == "muon"


def test_bad_optimizer_is_one_clear_error(char_data, tiny_config):
    with pytest.raises(ValueError, match="optimizer must be one of"):
        train(tiny_config, char_data, dataclasses.replace(CFG, optimizer="sgd"), None, progress=False)
