"""The evaluation suite the report card prints: every model of a run on the same held-out data.

For each model (pretrained base, SFT, DPO, RLHF), capability first: held-out accuracy on the verifiable skill
(arithmetic questions whose answer a program checks exactly, `llm_from_scratch.align.skill`), then held-out
loss / perplexity / bits per byte, next-line cloze accuracy, and on held-out chat prompts the form checks
(`format_ok` = ends its turn, brief, clean; and its parts) with the KL to the SFT model; plus a few seeded
sample generations. The alignment checks reuse the align stage's sampler, verifier
and KL estimator, so the numbers agree with chapters 13 to 15.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from llm_from_scratch.eval.cloze import ClozeItem, score_cloze
from llm_from_scratch.eval.lm import EvalConfig, heldout_lm_metrics

TEXT_PROMPTS = ("**ROMEO**  \n", "The history of")  # continuations from the base model
CHAT_PROMPTS = ("What is your name?", "Tell me a joke.", "How do I get to the castle?")


@torch.no_grad()
def sample_generations(model, tokenizer, chat: bool, config: EvalConfig) -> list[dict]:
    """Seeded samples: chat replies for a chat model, text continuations for the base model."""
    from llm_from_scratch.align.chat import encode_prompt, end_id
    from llm_from_scratch.model import generate

    out = []
    device = model.tok_emb.weight.device
    for prompt in CHAT_PROMPTS if chat else TEXT_PROMPTS:
        ids = encode_prompt(tokenizer, [{"role": "user", "content": prompt}]) if chat else tokenizer.encode(prompt)
        n = min(config.sample_tokens, model.config.context_length - len(ids))
        g = torch.Generator(device=device).manual_seed(config.sample_seed)
        stop = [end_id(tokenizer)] if chat else []
        new = generate(
            model, torch.tensor([ids], device=device), n, temperature=config.sample_temperature, stop_tokens=stop,
            generator=g,
        )[0, len(ids) :].tolist()  # fmt: skip
        text = tokenizer.decode([t for t in new if t not in stop])
        out.append({"prompt": prompt, "output": text})
    return out


def evaluate_models(
    models: dict,
    tokenizer,
    val_tokens: np.ndarray,
    bytes_per_token: float,
    cloze_items: Sequence[ClozeItem],
    prompts: Sequence[list[int]],
    config: EvalConfig,
    progress: bool = False,
    skill_items: Sequence | None = None,
    skill_max_new_tokens: int = 8,
) -> dict:
    """`{name: metrics}` for `models` (`{"base": m, "sft": m, ...}`) on held-out text, cloze `items` and
    held-out chat `prompts` (token ids); chat metrics for all but `base`
    (the base model never saw the chat template, so its rates are reported too, as the "before" column)."""
    from llm_from_scratch.align.evaluate import alignment_metrics
    from llm_from_scratch.align.skill import skill_accuracy

    reference = models.get("sft")
    results = {}
    names = list(models)
    if progress:
        from tqdm.auto import tqdm

        names = tqdm(names, desc="eval", unit="model", dynamic_ncols=True)
    for name in names:
        model = models[name]
        skill = {}
        if skill_items:  # greedy answers to the held-out problems, checked exactly
            r = skill_accuracy(model, tokenizer, skill_items, max_new_tokens=skill_max_new_tokens)
            skill = {"accuracy": r["accuracy"], "problems": r["problems"]}
        lm = heldout_lm_metrics(model, val_tokens, bytes_per_token, config)
        cloze = score_cloze(model, tokenizer, cloze_items)
        a = alignment_metrics(
            model, reference if name != "sft" else None, tokenizer, prompts, n=config.align_samples,
            max_new_tokens=config.align_max_new_tokens, temperature=config.align_temperature, seed=config.align_seed,
        )  # fmt: skip
        align = {**a["rates"], "kl_to_sft": a["kl"]}
        samples = sample_generations(model, tokenizer, chat=name != "base", config=config)
        results[name] = {"skill": skill, "lm": lm, "cloze": cloze, "align": align, "samples": samples}
    return results
