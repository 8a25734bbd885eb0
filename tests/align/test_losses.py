"""The bars of issue 8 on the losses: DPO's value at the reference, against an independent computation, its
gradient's direction; prompt tokens excluded from the SFT and DPO losses (perturbing their logits changes
nothing, perturbing a reply position does)."""

import math

import pytest
import torch

from llm_from_scratch.align.dpo import dpo_loss
from llm_from_scratch.align.sampling import pack_pairs, sequence_logprobs
from llm_from_scratch.align.sft import sft_loss


def test_dpo_loss_is_ln2_when_policy_equals_reference():
    torch.manual_seed(0)
    c, r = torch.randn(8) * 10, torch.randn(8) * 10
    loss, rc, rr = dpo_loss(c, r, c.clone(), r.clone(), beta=0.5)
    assert loss.item() == pytest.approx(math.log(2), abs=1e-7)
    assert torch.all(rc == 0) and torch.all(rr == 0)


def test_dpo_loss_matches_hand_computation():
    # hand-made batch of summed reply log-probs: (policy chosen, policy rejected, ref chosen, ref rejected)
    rows = [(-10.0, -12.0, -11.0, -11.5), (-3.0, -2.0, -3.5, -1.0), (-20.0, -25.0, -20.0, -25.0)]
    beta = 0.3
    expected = 0.0
    for pc, pr, rc, rr in rows:  # the formula of the issue, in plain Python floats
        z = beta * ((pc - rc) - (pr - rr))
        expected += -math.log(1.0 / (1.0 + math.exp(-z)))
    expected /= len(rows)
    t = torch.tensor(rows, dtype=torch.float64)
    loss, rew_c, rew_r = dpo_loss(t[:, 0], t[:, 1], t[:, 2], t[:, 3], beta)
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    assert rew_c.tolist() == pytest.approx([0.3, 0.15, 0.0])
    assert rew_r.tolist() == pytest.approx([-0.15, -0.3, 0.0])


def test_dpo_gradient_signs():
    """d loss / d log pi(y_w|x) = -beta sigmoid(-z) < 0 and d loss / d log pi(y_l|x) = +beta sigmoid(-z) > 0."""
    pc = torch.tensor([-5.0, -1.0], requires_grad=True)
    pr = torch.tensor([-4.0, -9.0], requires_grad=True)
    loss, _, _ = dpo_loss(pc, pr, torch.tensor([-5.0, -2.0]), torch.tensor([-4.0, -8.0]), beta=0.5)
    loss.backward()
    z = 0.5 * torch.tensor([0.0, 2.0])
    assert torch.allclose(pc.grad, -0.5 * torch.sigmoid(-z) / 2)
    assert torch.allclose(pr.grad, 0.5 * torch.sigmoid(-z) / 2)


def test_dpo_gradient_step_raises_chosen_log_ratio(tok, model, example):
    """One SGD step on the DPO loss of one pair raises log pi(y_w|x) - log ref(y_w|x) and lowers the rejected's."""
    import copy

    from llm_from_scratch.align.chat import encode_prompt, end_id

    ref = copy.deepcopy(model)
    p = encode_prompt(tok, example.prompt)
    chosen = [*tok.encode("Excellent well."), end_id(tok)]
    rejected = tok.encode("Nay, my lord, and more and more")
    idx, labels = pack_pairs([p, p], [chosen, rejected])

    def ratios():
        with torch.no_grad():
            return sequence_logprobs(model(idx)[0], labels) - sequence_logprobs(ref(idx)[0], labels)

    before = ratios()
    assert torch.allclose(before, torch.zeros(2))
    model.train()
    logp = sequence_logprobs(model(idx)[0], labels)
    with torch.no_grad():
        ref_logp = sequence_logprobs(ref(idx)[0], labels)
    loss, _, _ = dpo_loss(logp[:1], logp[1:], ref_logp[:1], ref_logp[1:], beta=0.1)
    loss.backward()
    with torch.no_grad():
        for q in model.parameters():
            q -= 1e-3 * q.grad
    after = ratios()
    assert after[0] > 0 > after[1]
    assert dpo_loss(*sequence_logprobs(model(idx)[0], labels).detach().split(1), *ref_logp.split(1))[0] < loss


def _batch(tok, example):
    from llm_from_scratch.align.chat import encode_prompt, end_id

    p = encode_prompt(tok, example.prompt)
    r = [*tok.encode(example.response), end_id(tok)]
    p2 = encode_prompt(tok, ({"role": "user", "content": "Who's there?"},))
    r2 = [*tok.encode("Nay, answer me."), end_id(tok)]
    idx, labels = pack_pairs([p, p2], [r, r2])
    return idx, labels, [len(p), len(p2)]


@pytest.mark.parametrize("which", ["sft", "dpo"])
def test_prompt_logits_do_not_enter_the_loss(tok, model, example, which):
    idx, labels, plen = _batch(tok, example)
    with torch.no_grad():
        logits, _ = model(idx)

    def value(lg):
        if which == "sft":
            return sft_loss(lg, labels)
        return sequence_logprobs(lg, labels)

    base = value(logits)
    perturbed = logits.clone()
    g = torch.Generator().manual_seed(0)
    for b, n in enumerate(plen):  # positions 0 .. n-2 predict prompt tokens; n-1 predicts the reply's first token
        perturbed[b, : n - 1] += 5 * torch.randn(perturbed[b, : n - 1].shape, generator=g)
    # padding positions after the reply are also outside the loss
    short = 1 if plen[1] + 1 < idx.shape[1] else 0
    pad_from = (labels[1] != -100).nonzero().max().item() + 1
    perturbed[1, pad_from:] += 7.0 * short
    assert torch.allclose(value(perturbed), base, atol=1e-6, rtol=0)
    reply_pos = logits.clone()
    reply_pos[0, plen[0]] += 5 * torch.randn(reply_pos.shape[-1], generator=g)
    assert not torch.allclose(value(reply_pos), base, atol=1e-4, rtol=0)


def test_sft_unmasked_ablation_counts_prompt_tokens(tok, example):
    from llm_from_scratch.align.chat import encode_prompt, end_id
    from llm_from_scratch.align.sft import batch_labels

    p = encode_prompt(tok, example.prompt)
    r = [*tok.encode(example.response), end_id(tok)]
    idx_m, lab_m = batch_labels([(p, r)], mask_prompt=True)
    idx_u, lab_u = batch_labels([(p, r)], mask_prompt=False)
    assert torch.equal(idx_m, idx_u)
    assert int((lab_m != -100).sum()) == len(r)
    assert int((lab_u != -100).sum()) == len(p) + len(r) - 1


def test_rpo_term_adds_the_chosen_nll_per_token(tok, model, example):
    """``nll_weight`` adds weight x the chosen replies' mean per-token NLL to the DPO loss (RPO): at the reference
    the loss is ln 2 + weight x NLL, and training with it keeps the chosen reply's likelihood up."""
    import copy

    from llm_from_scratch.align.chat import encode_prompt, end_id
    from llm_from_scratch.align.dpo import DPOConfig, train_dpo

    p = encode_prompt(tok, example.prompt)
    chosen = [*tok.encode("Excellent well."), end_id(tok)]
    rejected = tok.encode("Nay, my lord, and more and more")
    idx, labels = pack_pairs([p], [chosen])
    with torch.no_grad():
        start = sequence_logprobs(model(idx)[0], labels).item()
    pairs = [{"prompt": p, "chosen": chosen, "rejected": rejected}] * 4
    config = DPOConfig(epochs=3, batch_pairs=2, lr=1e-3, warmup_frac=0.0, nll_weight=1.0)
    log = train_dpo(model, copy.deepcopy(model), pairs, config)
    nll_per_token = -start / len(chosen)
    assert log[0]["loss"] == pytest.approx(math.log(2), rel=1e-6)  # the DPO part, at the reference
    assert log[0]["nll"] == pytest.approx(nll_per_token, rel=1e-5)
    with torch.no_grad():
        assert sequence_logprobs(model(idx)[0], labels).item() > start
