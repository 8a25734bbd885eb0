"""The alignment artifacts as cached functions: ``sft_model``, ``preference_pairs``, ``dpo_model``,
``reward_model``, ``rlhf_model``. Each is built on first use into ``cache_dir()/align/`` under a key made of its
config and the keys of its inputs, and loaded afterwards, so the three chapters share them."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch

from llm_from_scratch.align.dpo import DPO_PRESETS, DPOConfig, train_dpo
from llm_from_scratch.align.evaluate import EVAL_PRESETS
from llm_from_scratch.align.grpo import GRPO_PRESETS, GRPOConfig, train_grpo
from llm_from_scratch.align.preferences import PREFERENCE_PRESETS, build_pairs
from llm_from_scratch.align.reward import REWARD_PRESETS, RewardModel, train_reward_model
from llm_from_scratch.align.sft import SFT_PRESETS, SFTConfig, tokenize_examples, train_sft
from llm_from_scratch.utils import atomic_path, cache_dir, config_key

PRESETS = ("tiny", "book")


def _check(preset: str) -> None:
    if preset not in PRESETS:
        raise ValueError(f"unknown alignment preset {preset!r}; choose one of {list(PRESETS)}")


def base_key(preset: str) -> str:
    """The pretrained run's directory name, which already hashes its model, train and tokenizer configs."""
    from llm_from_scratch.train.pretrained import run_dir

    return run_dir(preset).name


def base_model(preset: str, progress: bool = False):
    """``(model, tokenizer)``: the pretrained model of ``preset`` (trained on first use by the train stage)."""
    from llm_from_scratch.train.pretrained import pretrained_model

    _check(preset)
    return pretrained_model(preset, device="cpu", progress=progress)


def _dir(kind: str, preset: str, key_parts: dict) -> Path:
    return cache_dir() / "align" / f"{kind}-{preset}-{config_key(key_parts)}"


def _save(directory: Path, model, log, extra: dict | None = None) -> None:
    from llm_from_scratch.train.checkpoint import save_model

    save_model(directory / "model", model, model.config if hasattr(model, "config") else model.body.config)
    with atomic_path(directory / "log.json") as tmp:
        tmp.write_text(json.dumps({"log": log, **(extra or {})}))


def _load_log(directory: Path) -> dict:
    return json.loads((directory / "log.json").read_text())


def _load_policy(directory: Path):
    from llm_from_scratch.train.checkpoint import load_model

    return load_model(directory / "model", "cpu")


def sft_key(preset: str, config: SFTConfig | None = None) -> str:
    config = config or SFT_PRESETS[preset]
    return config_key({"sft": asdict(config), "base": base_key(preset)})


def sft_data(preset: str, tokenizer, config: SFTConfig | None = None):
    """Tokenized (train, held-out) dialogue examples for ``preset``."""
    from llm_from_scratch.align.data import dialogue_examples

    config = config or SFT_PRESETS[preset]
    train, held = dialogue_examples()
    return (
        tokenize_examples(tokenizer, train, config.max_prompt, config.max_reply),
        tokenize_examples(tokenizer, held, config.max_prompt, config.max_reply),
    )


def sft_run(preset: str = "book", config: SFTConfig | None = None, progress: bool = False):
    """``(model, tokenizer, log)`` of supervised fine-tuning from the pretrained model (cached)."""
    _check(preset)
    config = config or SFT_PRESETS[preset]
    directory = cache_dir() / "align" / f"sft-{preset}-{sft_key(preset, config)}"
    base, tok = base_model(preset, progress)
    if (directory / "log.json").exists():
        return _load_policy(directory), tok, _load_log(directory)["log"]
    train, held = sft_data(preset, tok, config)
    log = train_sft(base, train, held, config, progress)
    _save(directory, base, log)
    return base, tok, log


def sft_model(preset: str = "book", progress: bool = False):
    """``(model, tokenizer)``: the supervised fine-tuned chat model of ``preset``."""
    model, tok, _ = sft_run(preset, progress=progress)
    return model, tok


def held_out_examples(preset: str):
    """The held-out prompts every evaluation uses (a fixed shuffle of the held-out plays and questions)."""
    from llm_from_scratch.align.data import dialogue_examples

    _, held = dialogue_examples()
    g = torch.Generator().manual_seed(0)
    order = torch.randperm(len(held), generator=g).tolist()
    return [held[i] for i in order[: EVAL_PRESETS[preset].n_prompts]]


def train_prompts(preset: str, tokenizer, n: int) -> list[list[int]]:
    """``n`` training prompts (a fixed shuffle of the SFT training examples' prompts), as token ids."""
    from llm_from_scratch.align.chat import encode_prompt
    from llm_from_scratch.align.data import dialogue_examples

    train, _ = dialogue_examples()
    g = torch.Generator().manual_seed(1)
    order = torch.randperm(len(train), generator=g).tolist()[:n]
    return [encode_prompt(tokenizer, train[i].prompt, SFT_PRESETS[preset].max_prompt) for i in order]


def preference_pairs(preset: str = "book") -> tuple[list[dict], dict]:
    """``(pairs, stats)``: verifier-ranked pairs of the SFT model's own samples (cached as JSON)."""
    _check(preset)
    config = PREFERENCE_PRESETS[preset]
    path = cache_dir() / "align" / f"pairs-{preset}-{config_key({'pref': asdict(config), 'sft': sft_key(preset)})}.json"
    if path.exists():
        data = json.loads(path.read_text())
        return data["pairs"], data["stats"]
    model, tok = sft_model(preset)
    pairs, stats = build_pairs(model, tok, train_prompts(preset, tok, config.n_prompts), config)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps({"pairs": pairs, "stats": stats}))
    return pairs, stats


def dpo_run(preset: str = "book", config: DPOConfig | None = None, progress: bool = False):
    """``(policy, tokenizer, log)``: DPO from the SFT model (also the frozen reference) on the preference pairs."""
    _check(preset)
    config = config or DPO_PRESETS[preset]
    pref_key = config_key({"pref": asdict(PREFERENCE_PRESETS[preset]), "sft": sft_key(preset)})
    directory = _dir("dpo", preset, {"dpo": asdict(config), "pairs": pref_key})
    reference, tok = sft_model(preset)
    if (directory / "log.json").exists():
        return _load_policy(directory), tok, _load_log(directory)["log"]
    pairs, _ = preference_pairs(preset)
    policy = _load_policy(_sft_dir(preset))
    log = train_dpo(policy, reference, pairs, config, progress)
    _save(directory, policy, log)
    return policy, tok, log


def dpo_model(preset: str = "book", beta: float | None = None, progress: bool = False):
    """``(model, tokenizer)`` after DPO (``beta`` overrides the preset's)."""
    config = DPO_PRESETS[preset]
    if beta is not None:
        config = DPOConfig(**{**asdict(config), "beta": beta})
    model, tok, _ = dpo_run(preset, config, progress)
    return model, tok


def _sft_dir(preset: str) -> Path:
    return cache_dir() / "align" / f"sft-{preset}-{sft_key(preset)}"


def reward_model(preset: str = "book"):
    """``(reward_model, log, metrics)``: Bradley-Terry reward model on the preference pairs (cached)."""
    from llm_from_scratch.train.checkpoint import load_model_weights, save_model

    _check(preset)
    config = REWARD_PRESETS[preset]
    pref_key = config_key({"pref": asdict(PREFERENCE_PRESETS[preset]), "sft": sft_key(preset)})
    directory = _dir("reward", preset, {"reward": asdict(config), "pairs": pref_key})
    sft, _ = sft_model(preset)
    if (directory / "log.json").exists():
        rm = RewardModel(sft)
        load_model_weights(directory / "model", rm, strict_config=False)
        data = _load_log(directory)
        return rm.eval(), data["log"], data["metrics"]
    pairs, _ = preference_pairs(preset)
    rm, log, metrics = train_reward_model(sft, pairs, config)
    save_model(directory / "model", rm, sft.config)
    with atomic_path(directory / "log.json") as tmp:
        tmp.write_text(json.dumps({"log": log, "metrics": metrics}))
    return rm, log, metrics


def rlhf_run(preset: str = "book", config: GRPOConfig | None = None, progress: bool = False):
    """``(policy, tokenizer, log)``: GRPO from the SFT model against the reward model, KL-penalised to SFT."""
    from llm_from_scratch.align.chat import end_id

    _check(preset)
    config = config or GRPO_PRESETS[preset]
    pref_key = config_key({"pref": asdict(PREFERENCE_PRESETS[preset]), "sft": sft_key(preset)})
    rm_key = config_key({"reward": asdict(REWARD_PRESETS[preset]), "pairs": pref_key})
    directory = _dir("rlhf", preset, {"grpo": asdict(config), "reward": rm_key})
    reference, tok = sft_model(preset)
    if (directory / "log.json").exists():
        return _load_policy(directory), tok, _load_log(directory)["log"]
    rm, _, _ = reward_model(preset)
    policy = _load_policy(_sft_dir(preset))
    prompts = train_prompts(preset, tok, PREFERENCE_PRESETS[preset].n_prompts)
    log = train_grpo(policy, reference, rm.score, prompts, end_id(tok), config, progress)
    _save(directory, policy, log)
    return policy, tok, log


def rlhf_model(preset: str = "book", progress: bool = False):
    """``(model, tokenizer)`` after reward modelling and GRPO."""
    model, tok, _ = rlhf_run(preset, progress=progress)
    return model, tok


STAGES = ("base", "sft", "dpo", "rlhf")


def stage_models(preset: str, stage: str):
    """``(policy, reference, tokenizer)``: each stage is compared with the model it started from."""
    if stage == "base":
        model, tok = base_model(preset)
        return model, None, tok
    if stage == "sft":
        base, _ = base_model(preset)
        model, tok = sft_model(preset)
        return model, base, tok
    reference, tok = sft_model(preset)
    model = dpo_model(preset)[0] if stage == "dpo" else rlhf_model(preset)[0]
    return model, reference, tok


def evaluation(preset: str = "book", stage: str = "sft") -> dict:
    """Held-out evaluation of one stage (cached as JSON): verifier rates, KL to its starting point, held-out
    pretraining perplexity, and the replies themselves."""
    from llm_from_scratch.align.evaluate import evaluate_policy

    _check(preset)
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; choose one of {list(STAGES)}")
    keys = {"eval": asdict(EVAL_PRESETS[preset]), "sft": sft_key(preset), "stage": stage}
    if stage == "dpo":
        keys["dpo"] = asdict(DPO_PRESETS[preset])
    if stage == "rlhf":
        keys["grpo"], keys["reward"] = asdict(GRPO_PRESETS[preset]), asdict(REWARD_PRESETS[preset])
    if stage in ("dpo", "rlhf"):
        keys["pref"] = asdict(PREFERENCE_PRESETS[preset])
    path = cache_dir() / "align" / f"eval-{stage}-{preset}-{config_key(keys)}.json"
    if path.exists():
        return json.loads(path.read_text())
    model, reference, tok = stage_models(preset, stage)
    examples = held_out_examples(preset)
    result = evaluate_policy(
        model, reference, tok, examples, preset, EVAL_PRESETS[preset], SFT_PRESETS[preset].max_prompt
    )
    result["prompts"] = [ex.prompt for ex in examples]
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(result))
    return result


def dpo_sweep(preset: str, field: str, values: tuple[float, ...]) -> list[dict]:
    """DPO with one ``DPOConfig`` field set to each of ``values`` (everything else as the preset): held-out
    acceptance, KL to SFT, perplexity and the final implicit-reward margin of each (cached as JSON; the models
    themselves are cached by ``dpo_run``)."""
    from llm_from_scratch.align.evaluate import evaluate_policy

    _check(preset)
    ev = EVAL_PRESETS[preset]
    key = config_key(
        {field: list(values), "dpo": asdict(DPO_PRESETS[preset]), "eval": asdict(ev), "sft": sft_key(preset)}
    )
    path = cache_dir() / "align" / f"dpo-sweep-{field}-{preset}-{key}.json"
    if path.exists():
        return json.loads(path.read_text())
    reference, tok = sft_model(preset)
    examples = held_out_examples(preset)
    rows = []
    for value in values:
        config = DPOConfig(**{**asdict(DPO_PRESETS[preset]), field: value})
        model, _, log = dpo_run(preset, config)
        e = evaluate_policy(model, reference, tok, examples, preset, ev, SFT_PRESETS[preset].max_prompt)
        rows.append({field: value, **e["rates"], "kl": e["kl"], "ppl": e["ppl"], "margin": log[-1]["margin"]})
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(rows))
    return rows


def beta_sweep(preset: str = "book", betas: tuple[float, ...] = (0.03, 0.1, 0.3, 1.0)) -> list[dict]:
    """:func:`dpo_sweep` over ``beta``."""
    return dpo_sweep(preset, "beta", betas)
