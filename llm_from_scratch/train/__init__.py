"""Pretraining: AdamW from scratch, the warmup + cosine schedule, checkpoints, the trainer, the book's model."""

from llm_from_scratch.train.optim import AdamW, param_groups
from llm_from_scratch.train.schedule import lr_at

__all__ = ["AdamW", "lr_at", "param_groups"]
