"""Direct Preference Optimization (Rafailov et al. 2023), written out.

The loss of one pair, with `beta` the strength of the implicit KL constraint to the frozen reference:

    -log sigmoid(beta * [(log pi(y_w|x) - log ref(y_w|x)) - (log pi(y_l|x) - log ref(y_l|x))])

Each `log pi(y|x)` is the *sum* of the reply tokens' log-probabilities (the prompt's tokens are excluded).
`beta * (log pi - log ref)` is the *implicit reward* of a reply: DPO is the reward-model loss of RLHF with the
reward expressed through the policy itself.

`nll_weight > 0` adds `nll_weight` times the chosen replies' mean per-token negative log-likelihood (the SFT-loss
regulariser of Liu et al. 2024, "Provably mitigating overoptimization in RLHF", often called the RPO objective):
DPO alone only fixes the *difference* of the two log-ratios, and both log-probabilities may fall
together ("likelihood displacement", Razin et al. 2024), which a small model pays for with replies that drift off.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from llm_from_scratch.utils import Range, check_ranges


def dpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float = 0.1,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean DPO loss over the batch and the implicit rewards `beta * log(pi / ref)` of chosen and rejected."""
    chosen_reward = beta * (policy_chosen - ref_chosen)
    rejected_reward = beta * (policy_rejected - ref_rejected)
    loss = -F.logsigmoid(chosen_reward - rejected_reward).mean()  # logsigmoid: no overflow for large margins
    return loss, chosen_reward.detach(), rejected_reward.detach()


@dataclass(frozen=True)
class DPOConfig:
    beta: float = 0.1
    epochs: int = 2
    batch_pairs: int = 16
    lr: float = 1e-4
    warmup_frac: float = 0.1
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    # NLL anchor (Liu et al. 2024): + weight x mean NLL per token of the chosen replies; 0 = plain DPO. Both
    # presets use 1.0: on an earlier book-model run with form-only pairs, plain DPO drifted far from SFT
    nll_weight: float = 1.0
    seed: int = 0

    def validate(self) -> DPOConfig:
        """One `ValueError` naming the field, its value and the range when a setting cannot work (the config
        loader calls it before any stage runs)."""
        return check_ranges(
            self,
            {
                "beta": Range(gt=0),
                "epochs": Range(ge=1, integer=True),
                "batch_pairs": Range(ge=1, integer=True),
                "lr": Range(gt=0),
                "warmup_frac": Range(ge=0, le=1),
                "weight_decay": Range(ge=0),
                "grad_clip": Range(ge=0),
                "nll_weight": Range(ge=0),
            },
        )


def train_dpo(policy, reference, pairs, config: DPOConfig, progress: bool = False) -> list[dict]:
    """Optimise `policy` in place on `pairs` (`{"prompt", "chosen", "rejected"}` token-id lists); the
    reference's log-probabilities are computed once up front (it is frozen). Returns one log record per step."""
    from llm_from_scratch.align.sampling import pack_pairs, reply_logprobs
    from llm_from_scratch.train.optim import AdamW, param_groups
    from llm_from_scratch.train.schedule import lr_at
    from llm_from_scratch.utils import seed_everything

    seed_everything(config.seed)
    if not pairs:
        raise ValueError("no preference pairs: the sampled replies were all acceptable or all unacceptable")
    device = policy.tok_emb.weight.device
    ref = _reference_logprobs(reference, pairs, device)
    opt = AdamW(param_groups(policy, config.weight_decay), lr=config.lr, betas=(0.9, 0.95))
    g = torch.Generator().manual_seed(config.seed)
    n = len(pairs)
    steps_per_epoch = max(1, n // config.batch_pairs)
    total = steps_per_epoch * config.epochs
    log, step = [], 0
    policy.train()
    bar = _bar(total, progress, "dpo")
    for _ in range(config.epochs):
        order = torch.randperm(n, generator=g).tolist()
        for s in range(steps_per_epoch):
            batch = order[s * config.batch_pairs : (s + 1) * config.batch_pairs]
            prompts = [pairs[i]["prompt"] for i in batch]
            replies = [pairs[i]["chosen"] for i in batch] + [pairs[i]["rejected"] for i in batch]
            idx, labels = pack_pairs(prompts + prompts, replies)
            logp = reply_logprobs(policy, idx.to(device), labels.to(device))
            k = len(batch)
            loss, rc, rr = dpo_loss(logp[:k], logp[k:], ref[batch, 0], ref[batch, 1], config.beta)
            chosen_tokens = (labels[:k] != -100).sum(-1).clamp_min(1).to(logp.device)
            nll = (-logp[:k] / chosen_tokens).mean()  # per token of the chosen replies
            objective = loss + config.nll_weight * nll if config.nll_weight else loss
            for group in opt.param_groups:
                group["lr"] = lr_at(step, config.lr, total, config.warmup_frac, 0.1)
            opt.zero_grad(set_to_none=True)
            objective.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), config.grad_clip)
            opt.step()
            step += 1
            log.append(
                {
                    "step": step,
                    "loss": loss.item(),  # the DPO loss alone; the objective adds nll_weight x nll
                    "nll": nll.item(),
                    "chosen_reward": rc.mean().item(),
                    "rejected_reward": rr.mean().item(),
                    "margin": (rc - rr).mean().item(),
                    "accuracy": (rc > rr).float().mean().item(),
                }
            )
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.3f}", acc=f"{log[-1]['accuracy']:.2f}")
    if bar is not None:
        bar.close()
    policy.eval()
    return log


@torch.no_grad()
def _reference_logprobs(reference, pairs, device, batch: int = 32) -> torch.Tensor:
    from llm_from_scratch.align.sampling import pack_pairs, reply_logprobs

    reference.eval()
    rows = []
    for b in range(0, len(pairs), batch):
        chunk = pairs[b : b + batch]
        prompts = [p["prompt"] for p in chunk]
        idx, labels = pack_pairs(prompts + prompts, [p["chosen"] for p in chunk] + [p["rejected"] for p in chunk])
        logp = reply_logprobs(reference, idx.to(device), labels.to(device)).cpu()
        rows.append(torch.stack([logp[: len(chunk)], logp[len(chunk) :]], dim=1))
    return torch.cat(rows)


def _bar(total: int, enabled: bool, desc: str):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="step", dynamic_ncols=True)
