"""Group Relative Policy Optimization (Shao et al. 2024) with a KL penalty to the frozen reference.

For each prompt the policy samples a *group* of `G` replies; each reply's advantage is its reward minus the
group's mean, divided by the group's standard deviation. The reward is any callable
`reward_fn(prompt_ids, reply_ids) -> tensor`: a learned reward model, or a program that checks the answer
(`llm_from_scratch.align.skill.verifier_reward`, reinforcement learning with verifiable rewards).

Dr. GRPO (Liu et al. 2025, "Understanding R1-Zero-like training") found two biases in that recipe and removes them,
both options here: `advantage="mean"` drops the division by the group's std (which up-weights groups that are
nearly all right or all wrong), and `loss_norm="constant"` sums each reply's token losses and divides by the
fixed `max_new_tokens` instead of the reply's own length (which favours long wrong replies and short right ones).

No value network is needed (PPO's critic), which is what makes the method small enough for a CPU. The loss per
reply token is PPO's clipped surrogate plus `kl_coef` times the unbiased, always non-negative estimator
`exp(q) - q - 1` of KL(pi || ref) with `q = log ref - log pi` (Schulman's "k3").
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from llm_from_scratch.utils import Range, check_ranges


@dataclass(frozen=True)
class GRPOConfig:
    steps: int = 100
    prompts_per_step: int = 16
    group_size: int = 8  # more replies per problem: more groups with both a right and a wrong answer
    max_new_tokens: int = 8  # an answer is a few digits and <|end|>
    temperature: float = 1.0
    lr: float = 1e-4
    kl_coef: float = 0.05
    clip: float = 0.2
    ppo_epochs: int = 2
    grad_clip: float = 1.0
    advantage: str = "std"  # "std": GRPO's (r - mean) / std; "mean": Dr. GRPO's r - mean
    loss_norm: str = "seq"  # "seq": mean over each reply's tokens (GRPO); "constant": sum / max_new_tokens (Dr. GRPO)
    reward: str = "verifier"  # what the rlhf stage optimises: "verifier" (the skill's exact check) or "model" (learned)
    format_bonus: float = 0.0  # verifier reward only: added for a reply that is just a number and ends its turn
    seed: int = 0

    def validate(self) -> GRPOConfig:
        """One `ValueError` naming the field, its value and the range when a setting cannot work (the config
        loader calls it before any stage runs)."""
        check_ranges(
            self,
            {
                "steps": Range(ge=1, integer=True),
                "prompts_per_step": Range(ge=1, integer=True),
                "group_size": Range(ge=2, integer=True),  # the advantage is relative to the group: one is no group
                "max_new_tokens": Range(ge=1, integer=True),
                "temperature": Range(gt=0),
                "lr": Range(gt=0),
                "kl_coef": Range(ge=0),
                "clip": Range(gt=0, lt=1),
                "ppo_epochs": Range(ge=1, integer=True),
                "grad_clip": Range(ge=0),
                "format_bonus": Range(ge=0),
            },
        )
        for name, allowed in (("advantage", ADVANTAGES), ("loss_norm", LOSS_NORMS), ("reward", ("verifier", "model"))):
            if getattr(self, name) not in allowed:
                raise ValueError(f"rlhf.{name}={getattr(self, name)!r}: choose one of {list(allowed)}")
        return self


ADVANTAGES = ("std", "mean")
LOSS_NORMS = ("seq", "constant")


def group_advantages(rewards: torch.Tensor, group_size: int, eps: float = 1e-6, scale: str = "std") -> torch.Tensor:
    """`(r - mean_group) / (std_group + eps)` for rewards laid out group after group; `scale="mean"` keeps
    `r - mean_group` (Dr. GRPO). A group whose replies all scored the same gets advantage 0 either way."""
    if rewards.numel() == 0 or rewards.numel() % group_size:
        raise ValueError(
            f"{rewards.numel()} rewards do not split into groups of {group_size} (an empty or partial group)"
        )
    if scale not in ADVANTAGES:
        raise ValueError(f"advantage scale {scale!r}: choose one of {list(ADVANTAGES)}")
    r = rewards.view(-1, group_size)
    centred = r - r.mean(1, keepdim=True)
    return (centred if scale == "mean" else centred / (r.std(1, keepdim=True) + eps)).flatten()


def checked_rewards(reward_fn, prompts, replies) -> torch.Tensor:
    """`reward_fn`'s scores as a float tensor of one finite number per reply, or one clear error."""
    try:
        out = reward_fn(prompts, replies)
    except (ValueError, RuntimeError):
        raise
    except Exception as err:  # a bug in a user's reward function: name it, do not train on garbage
        raise RuntimeError(f"the reward function {reward_fn!r} raised {type(err).__name__}: {err}") from err
    try:
        t = torch.as_tensor(out, dtype=torch.float32).flatten().cpu()
    except (TypeError, ValueError):
        raise ValueError(f"the reward function returned {type(out).__name__}, not numbers (one per reply)") from None
    if t.numel() != len(replies):
        raise ValueError(f"the reward function returned {t.numel()} scores for {len(replies)} replies")
    if not torch.isfinite(t).all():
        raise ValueError("the reward function returned a NaN or infinite score")
    return t


def grpo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    ref_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip: float,
    kl_coef: float,
    norm: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token clipped surrogate + KL penalty, averaged over each reply's tokens (or, with `norm`, summed and
    divided by that constant: Dr. GRPO), then over replies; also the mean per-token KL estimate. All log-prob
    tensors are `[B, T]` (0 outside `mask`)."""
    ratio = torch.exp(logp - old_logp)
    adv = advantages[:, None]
    surrogate = torch.minimum(ratio * adv, ratio.clamp(1 - clip, 1 + clip) * adv)
    q = ref_logp - logp
    kl = torch.exp(q) - q - 1
    per_token = -(surrogate - kl_coef * kl)
    n = mask.sum(1).clamp_min(1)
    loss = ((per_token * mask).sum(1) / (n if norm is None else norm)).mean()
    return loss, ((kl * mask).sum(1) / n).mean().detach()


def train_grpo(policy, reference, reward_fn, prompts, stop_id: int, config: GRPOConfig, progress=False) -> list[dict]:
    """Optimise `policy` in place; `reward_fn(prompt_ids, reply_ids) -> tensor` scores a batch of replies."""
    from llm_from_scratch.align.sampling import pack_pairs, sample_replies, token_logprobs
    from llm_from_scratch.train.optim import AdamW, param_groups
    from llm_from_scratch.utils import seed_everything

    if not prompts:
        raise ValueError("GRPO needs at least one prompt (got none)")
    longest = max(len(p) for p in prompts)
    if longest + config.max_new_tokens > policy.config.context_length:
        raise ValueError(
            f"a GRPO prompt of {longest} tokens + max_new_tokens={config.max_new_tokens} exceeds the context length "
            f"{policy.config.context_length}; cut the prompts or lower rlhf.max_new_tokens"
        )
    seed_everything(config.seed)
    device = policy.tok_emb.weight.device
    opt = AdamW(param_groups(policy, 0.0), lr=config.lr, betas=(0.9, 0.95))
    norm = float(config.max_new_tokens) if config.loss_norm == "constant" else None
    g = torch.Generator().manual_seed(config.seed)
    reference.eval()
    log = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=config.steps, desc="grpo", unit="step", dynamic_ncols=True)
    for step in range(config.steps):
        rows = torch.randint(0, len(prompts), (config.prompts_per_step,), generator=g).tolist()
        batch_prompts = [prompts[i] for i in rows]
        s = sample_replies(
            policy,
            batch_prompts,
            stop_id,
            n=config.group_size,
            max_new_tokens=config.max_new_tokens,
            temperature=config.temperature,
            seed=config.seed * 100_003 + step,
        )
        p_ids = [batch_prompts[i] for i in s.prompt_index]
        rewards = checked_rewards(reward_fn, p_ids, s.tokens)
        adv = group_advantages(rewards, config.group_size, scale=config.advantage).to(device)
        idx, labels = pack_pairs(p_ids, s.tokens)
        idx, labels = idx.to(device), labels.to(device)
        with torch.no_grad():
            ref, mask = token_logprobs(reference(idx)[0], labels)
        policy.train()
        old = None
        for _ in range(config.ppo_epochs):
            logp, _ = token_logprobs(policy(idx)[0], labels)
            if old is None:  # the policy has not moved yet: its log-probs are those of the policy that sampled
                old = logp.detach()  # (pi_old), with no separate forward pass
            loss, kl = grpo_loss(logp, old, ref, adv, mask.float(), config.clip, config.kl_coef, norm)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), config.grad_clip)
            opt.step()
        policy.eval()
        seq_kl = ((old - ref) * mask).sum(1).mean().item()  # sampled estimate of KL(pi_old || ref) per reply
        log.append(
            {
                "step": step + 1,
                "reward": rewards.mean().item(),
                "kl_token": kl.item(),
                "kl_seq": seq_kl,
                "reply_tokens": float(mask.sum(1).float().mean()),
            }
        )
        if bar is not None:
            bar.update(1)
            bar.set_postfix(reward=f"{log[-1]['reward']:.3f}", kl=f"{seq_kl:.3f}")
    if bar is not None:
        bar.close()
    return log
