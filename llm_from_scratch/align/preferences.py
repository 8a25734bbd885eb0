"""Preference pairs from the fine-tuned model's own samples, ranked by the verifier.

For each training prompt the SFT model samples `samples_per_prompt` replies. The verifier
(`llm_from_scratch.align.verifier`) splits them into format_ok and not; a prompt with at least one
of each yields one pair: *chosen* = the first format_ok sample, *rejected* = the first that is not. Prompts
whose samples all pass or all fail carry no preference and are dropped. Nothing is written by hand: the pairs are
a deterministic function of the model, the seed and the verifier.

Two kinds of pairs (`"kind"` of each pair):

* `"skill"` (`skill_pairs`): on training-side arithmetic problems, *chosen* is a sample whose answer the
  exact check verifies, *rejected* one it refutes: a real preference, the capability itself.
* `"dialogue"` (`build_pairs`): on open dialogue prompts nothing checks the answer, so the verifier of
  `llm_from_scratch.align.verifier` ranks the form (ends its turn, brief, not flagged by the profanity
  classifier). The reward model learns from these only: it stands for what a program cannot verify.
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
    skill_prompts: int = 2048  # training-side skill problems sampled for verified pairs (0 = dialogue pairs only)
    skill_samples: int = 8  # replies per skill problem: more samples, more problems with both a right and a wrong one
    seed: int = 7

    def validate(self) -> PreferenceConfig:
        """One `ValueError` naming the field, its value and the range when a setting cannot work (the config
        loader calls it before any stage runs)."""
        return check_ranges(
            self,
            {
                "n_prompts": Range(ge=1, integer=True),
                "samples_per_prompt": Range(ge=2, integer=True),  # a pair needs two replies to the same prompt
                "max_new_tokens": Range(ge=1, integer=True),
                "temperature": Range(gt=0),
                "skill_prompts": Range(ge=0, integer=True),
                "skill_samples": Range(ge=2, integer=True),
            },
        )


def build_pairs(model, tokenizer, prompts: list[list[int]], config: PreferenceConfig) -> tuple[list[dict], dict]:
    """`(pairs, stats)`; each pair is `{"prompt", "chosen", "rejected"}` (token ids, replies with `<|end|>`
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
        good = [j for j in js if checks[j]["format_ok"]]
        bad = [j for j in js if not checks[j]["format_ok"]]
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
                    "kind": "dialogue",
                }
            )
    stats = {"prompts": len(prompts), "samples": len(texts), "pairs": len(pairs), "sample_rates": rates(checks)}
    return pairs, stats


def skill_pairs(model, tokenizer, skill, config: PreferenceConfig) -> tuple[list[dict], dict]:
    """`(pairs, stats)` on `config.skill_prompts` training-side problems of `skill` (a `SkillConfig`):
    `skill_samples` replies each; chosen = the first verified correct, rejected = the first wrong one."""
    from llm_from_scratch.align.chat import encode_prompt, end_id
    from llm_from_scratch.align.evaluate import decode_reply
    from llm_from_scratch.align.sampling import sample_replies
    from llm_from_scratch.align.skill import problems, verify_answer

    end = end_id(tokenizer)
    items = problems(skill, config.skill_prompts, False, seed=skill.seed + 2)  # neither SFT's nor RL's draw
    prompts = [encode_prompt(tokenizer, p.prompt()) for p in items]
    s = sample_replies(
        model,
        prompts,
        end,
        n=config.skill_samples,
        max_new_tokens=skill.max_new_tokens,
        temperature=config.temperature,
        seed=config.seed + 1,
    )
    texts = [decode_reply(tokenizer, t, end) for t in s.tokens]
    right = [verify_answer(t, items[i].answer) for t, i in zip(texts, s.prompt_index, strict=True)]
    by_prompt: dict[int, list[int]] = {}
    for j, i in enumerate(s.prompt_index):
        by_prompt.setdefault(i, []).append(j)
    pairs = []
    for i, js in by_prompt.items():
        good = [j for j in js if right[j]]
        bad = [j for j in js if not right[j]]
        if good and bad:
            pairs.append(
                {
                    "prompt": prompts[i],
                    "chosen": s.tokens[good[0]],
                    "rejected": s.tokens[bad[0]],
                    "chosen_text": texts[good[0]],
                    "rejected_text": texts[bad[0]],
                    "rejected_why": ["wrong answer"],
                    "kind": "skill",
                }
            )
    stats = {
        "prompts": len(prompts),
        "samples": len(texts),
        "pairs": len(pairs),
        "sample_accuracy": sum(right) / max(len(right), 1),
    }
    return pairs, stats
