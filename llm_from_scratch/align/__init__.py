"""Stage 6 of the pipeline: alignment. A chat template, supervised fine-tuning with prompt-token masking,
preference pairs ranked by a verifier, a Bradley-Terry reward model with GRPO, and DPO, each evaluated on
held-out prompts against its starting point.

The capability, the same in all three chapters (see `llm_from_scratch.align.skill`): held-out accuracy on
arithmetic questions whose answer a program checks exactly. The secondary row, `format_ok`
(`llm_from_scratch.align.verifier`): the reply ends its turn with `<|end|>`, is at most `MAX_WORDS` words
long, and no segment is flagged by the profanity classifier of the data chapters.
"""

from llm_from_scratch.align.chat import ASSISTANT, END, SYSTEM, USER, encode_example, parse_chat, render_chat
from llm_from_scratch.align.dpo import dpo_loss
from llm_from_scratch.align.verifier import MAX_WORDS, verify

__all__ = [
    "ASSISTANT",
    "END",
    "MAX_WORDS",
    "SYSTEM",
    "USER",
    "dpo_loss",
    "encode_example",
    "parse_chat",
    "render_chat",
    "verify",
]
