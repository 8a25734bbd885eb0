"""A reward model: the fine-tuned transformer with its vocabulary head replaced by one scalar, trained on
preference pairs with the Bradley-Terry loss `-log sigmoid(r(x, y_w) - r(x, y_l))` (Ouyang et al. 2022)."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from llm_from_scratch.align.sampling import hidden_states, pad_right
from llm_from_scratch.utils import Range, check_ranges


class RewardModel(nn.Module):
    """`r(x, y)`: a linear head on the final hidden state of the reply's last token (its `<|end|>` when the
    model wrote one), which has attended to the whole prompt and reply."""

    def __init__(self, body) -> None:
        super().__init__()
        self.body = copy.deepcopy(body)
        self.head = nn.Linear(body.config.d_model, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, idx: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        h = hidden_states(self.body, idx)  # right padded: causal attention never reaches the pads
        last = h[torch.arange(idx.shape[0], device=idx.device), lengths - 1]
        return self.head(last).squeeze(-1)

    @torch.no_grad()
    def score(self, prompts, replies, batch_size: int = 64) -> torch.Tensor:
        """Rewards of `prompt + reply` token-id lists, in batches."""
        self.eval()
        device = self.head.weight.device
        out = []
        for b in range(0, len(prompts), batch_size):
            chunk = zip(prompts[b : b + batch_size], replies[b : b + batch_size], strict=True)
            seqs = [list(p) + list(r) for p, r in chunk]
            lengths = torch.tensor([len(s) for s in seqs], device=device)
            out.append(self(pad_right(seqs, 0).to(device), lengths).cpu())
        return torch.cat(out) if out else torch.empty(0)


def bradley_terry_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> torch.Tensor:
    """`-log sigmoid(r_w - r_l)`: the negative log-likelihood of the observed preference under the
    Bradley-Terry model `P(y_w > y_l) = sigmoid(r_w - r_l)`."""
    return -F.logsigmoid(r_chosen - r_rejected).mean()


@dataclass(frozen=True)
class RewardConfig:
    epochs: int = 2
    batch_pairs: int = 16
    lr: float = 1e-4
    weight_decay: float = 0.0
    held_out_frac: float = 0.2
    seed: int = 0

    def validate(self) -> RewardConfig:
        """One `ValueError` naming the field, its value and the range when a setting cannot work (the config
        loader calls it before any stage runs)."""
        return check_ranges(
            self,
            {
                "epochs": Range(ge=1, integer=True),
                "batch_pairs": Range(ge=1, integer=True),
                "lr": Range(gt=0),
                "weight_decay": Range(ge=0),
                "held_out_frac": Range(gt=0, lt=1),
            },
        )


def _pair_batch(pairs, device):
    seqs = [p["prompt"] + p["chosen"] for p in pairs] + [p["prompt"] + p["rejected"] for p in pairs]
    lengths = torch.tensor([len(s) for s in seqs], device=device)
    return pad_right(seqs, 0).to(device), lengths


@torch.no_grad()
def pair_accuracy(rm: RewardModel, pairs) -> float:
    """Fraction of pairs whose chosen reply gets the higher reward."""
    if not pairs:
        return float("nan")
    rc = rm.score([p["prompt"] for p in pairs], [p["chosen"] for p in pairs])
    rr = rm.score([p["prompt"] for p in pairs], [p["rejected"] for p in pairs])
    return float((rc > rr).float().mean())


def train_reward_model(body, pairs, config: RewardConfig) -> tuple[RewardModel, list[dict], dict]:
    """Train `RewardModel(body)` on a split of `pairs`; return it, the step log, and train/held-out accuracy."""
    from llm_from_scratch.train.optim import AdamW, param_groups
    from llm_from_scratch.utils import seed_everything

    seed_everything(config.seed)
    g = torch.Generator().manual_seed(config.seed)
    order = torch.randperm(len(pairs), generator=g).tolist()
    n_val = max(1, int(len(pairs) * config.held_out_frac))
    val, train = [pairs[i] for i in order[:n_val]], [pairs[i] for i in order[n_val:]]
    rm = RewardModel(body)
    device = body.tok_emb.weight.device
    rm.to(device)
    opt = AdamW(param_groups(rm, config.weight_decay), lr=config.lr, betas=(0.9, 0.95))
    log = []
    for _ in range(config.epochs):
        perm = torch.randperm(len(train), generator=g).tolist()
        for b in range(0, len(train) - config.batch_pairs + 1, config.batch_pairs):
            batch = [train[i] for i in perm[b : b + config.batch_pairs]]
            rm.train()
            idx, lengths = _pair_batch(batch, device)
            r = rm(idx, lengths)
            k = len(batch)
            loss = bradley_terry_loss(r[:k], r[k:])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            log.append({"step": len(log) + 1, "loss": loss.item(), "accuracy": float((r[:k] > r[k:]).float().mean())})
    rm.eval()
    return rm, log, {"train_accuracy": pair_accuracy(rm, train), "held_out_accuracy": pair_accuracy(rm, val)}
