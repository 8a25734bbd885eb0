"""Preference pairs from the fine-tuned model's own samples, ranked by the verifier.

For each training prompt the SFT model samples ``samples_per_prompt`` replies. The verifier
(:mod:`llm_from_scratch.align.verifier`) splits them into acceptable and unacceptable; a prompt with at least one
of each yields one pair: *chosen* = the first acceptable sample, *rejected* = the first unacceptable one. Prompts
whose samples all pass or all fail carry no preference and are dropped. Nothing is written by hand: the pairs are
a deterministic function of the model, the seed and the verifier.
"""

from __future__ import annotations

from dataclasses import dataclass

from llm_from_scratch.utils import Range, check_ranges


@dataclass(frozen=True)
class PreferenceConfig:
    n_prompts: int = 1024
    samples_per_prompt: int = 4
    max_new_tokens: int = 48
    temperature: float = 1.0
    seed: int = 7

    def validate(self) -> PreferenceConfig:
        """One ``ValueError`` naming the field, its value and the range when a setting cannot work (the config
        loader calls it before any stage runs)."""
        return check_ranges(
            self,
            {
                "n_prompts": Range(ge=1, integer=True),
                "samples_per_prompt": Range(ge=2, integer=True),  # a pair needs two replies to the same prompt
                "max_new_tokens": Range(ge=1, integer=True),
                "temperature": Range(gt=0),
            },
        )


def build_pairs(model, tokenizer, prompts: list[list[int]], config: PreferenceConfig) -> tuple[list[dict], dict]:
    """``(pairs, stats)``; each pair is ``{"prompt", "chosen", "rejected"}`` (token ids, replies with ``<|end|>``
    when the model wrote it) plus the decoded texts for reading."""
    from llm_from_scratch.align.chat import end_id
    from llm_from_scratch.align.evaluate import decode_reply
    from llm_from_scratch.align.sampling import sample_replies
    from llm_from_scratch.align.verifier import rates, verify

    end = end_id(tokenizer)
    s = sample_replies(
        model,
        prompts,
        end,
        n=config.samples_per_prompt,
        max_new_tokens=config.max_new_tokens,
        temperature=config.temperature,
        seed=config.seed,
    )
    texts = [decode_reply(tokenizer, t, end) for t in s.tokens]
    checks = verify(texts, s.ended)
    by_prompt: dict[int, list[int]] = {}
    for j, i in enumerate(s.prompt_index):
        by_prompt.setdefault(i, []).append(j)
    pairs = []
    for i, js in by_prompt.items():
        good = [j for j in js if checks[j]["ok"]]
        bad = [j for j in js if not checks[j]["ok"]]
        if good and bad:
            w, lose = good[0], bad[0]
            pairs.append(
                {
                    "prompt": list(prompts[i]),
                    "chosen": s.tokens[w],
                    "rejected": s.tokens[lose],
                    "chosen_text": texts[w],
                    "rejected_text": texts[lose],
                    "rejected_why": [k for k in ("ended", "brief") if not checks[lose][k]]
                    + (["flagged"] if checks[lose]["flagged"] else []),
                }
            )
    stats = {"prompts": len(prompts), "samples": len(texts), "pairs": len(pairs), "sample_rates": rates(checks)}
    return pairs, stats
