"""Language-model metrics on held-out text: cross-entropy, perplexity and bits per byte.

The windows and the loss are the trainer's own (`llm_from_scratch.train.data.eval_windows`,
`llm_from_scratch.train.trainer.evaluate`), so the report card's numbers are the numbers the training curves
show; only the set of models evaluated (base, SFT, DPO, RLHF) is new here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from llm_from_scratch.utils import Range, check_ranges


@dataclass(frozen=True)
class EvalConfig:
    """What the evaluation stage measures, and on how much held-out data."""

    ppl_batches: int = 8  # validation windows: ppl_batches x ppl_batch_size sequences of the model's context
    ppl_batch_size: int = 8
    cloze_items: int = 300  # next-line multiple-choice questions from held-out documents
    cloze_choices: int = 4  # the true next line and choices - 1 lines from other held-out documents
    cloze_context_lines: int = 3
    cloze_min_chars: int = 12
    cloze_max_chars: int = 120
    cloze_seed: int = 0
    align_prompts: int = 256  # held-out chat prompts for the alignment checks (verifier rates, KL to SFT)
    align_samples: int = 2
    align_max_new_tokens: int = 48
    align_temperature: float = 1.0
    align_seed: int = 1234
    sample_tokens: int = 40  # sample generations shown in the report
    sample_temperature: float = 0.8
    sample_seed: int = 0

    def validate(self) -> EvalConfig:
        """One `ValueError` naming the field, its value and the range (the config loader calls it)."""
        return check_ranges(
            self,
            {
                "ppl_batches": Range(ge=1, integer=True),
                "ppl_batch_size": Range(ge=1, integer=True),
                "cloze_items": Range(ge=1, integer=True),
                "cloze_choices": Range(ge=2, integer=True),
                "cloze_context_lines": Range(ge=1, integer=True),
                "cloze_min_chars": Range(ge=1, integer=True),
                "cloze_max_chars": Range(ge=1, integer=True),
                "align_prompts": Range(ge=1, integer=True),
                "align_samples": Range(ge=1, integer=True),
                "align_max_new_tokens": Range(ge=1, integer=True),
                "align_temperature": Range(gt=0),
                "sample_tokens": Range(ge=1, integer=True),
                "sample_temperature": Range(ge=0),
            },
        )


def heldout_lm_metrics(model, val_tokens: np.ndarray, bytes_per_token: float, config: EvalConfig) -> dict:
    """`{"loss", "ppl", "bpb"}` of `model` on fixed, evenly spaced windows of the validation token stream."""
    from llm_from_scratch.train.data import eval_windows
    from llm_from_scratch.train.metrics import bits_per_byte, perplexity
    from llm_from_scratch.train.trainer import evaluate

    block = model.config.context_length
    windows = eval_windows(val_tokens, config.ppl_batch_size, block, config.ppl_batches)
    device = str(model.tok_emb.weight.device)
    loss = evaluate(model, windows, device, None)
    return {"loss": loss, "ppl": perplexity(loss), "bpb": bits_per_byte(loss, bytes_per_token)}
