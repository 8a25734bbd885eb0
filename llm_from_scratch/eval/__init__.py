"""Stage 7 of the pipeline: evaluation. Held-out perplexity and bits per byte, a next-line multiple-choice cloze
task built from held-out real text and scored by log-likelihood, the alignment checks of the align stage, and
sample generations; plus the interactive chat that talks to the aligned model, and (`eval.external`, `eval --gguf`)
the same held-out bits per byte and cloze task for an outside model with its own tokenizer.
"""

from llm_from_scratch.eval.cloze import ClozeItem, build_cloze_items, score_cloze
from llm_from_scratch.eval.lm import EvalConfig, heldout_lm_metrics

__all__ = ["ClozeItem", "EvalConfig", "build_cloze_items", "heldout_lm_metrics", "score_cloze"]
