"""How each stage builds its artifact: `build(art, out) -> metrics`, everything written into `out`.

`art` is the resolver (`llm_from_scratch.pipeline.resolver.Artifacts`): it has already built (or found)
every input the registry declares, and hands them over as `art.corpus_path()`, `art.tokenizer()`,
`art.model("sft")` and so on. A build function never decides where anything lives or whether to rebuild it; it
only turns its inputs into files under `out` and returns the metrics recorded in `out/stage.json`. Every one is
seeded by its own config, so the same config gives the same artifact whichever command asked for it first.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from llm_from_scratch.utils import atomic_path

SAMPLE_PROMPT = "**ROMEO**  \n"  # the corpus writes speakers in bold, each followed by a line break


def curate(art, out: Path) -> dict:
    from llm_from_scratch.data.corpus import source_documents
    from llm_from_scratch.data.pipeline import run_pipeline

    cfg = art.config.data
    reports: list = []  # one per path source: the user's files read, skipped (name, reason) and ignored
    with (
        atomic_path(out / "rejected.jsonl") as rej,
        atomic_path(out / "stats.json") as stats_tmp,
        atomic_path(out / "corpus.jsonl") as tmp,
    ):
        result = run_pipeline(
            source_documents(cfg, reports), cfg.pipeline, tmp, rej, workers=art.config.run.workers,
            progress=art.progress,
        )  # fmt: skip
        if result.kept == 0:
            raise ValueError(
                f"curation kept no document of data.sources={list(cfg.sources)}: all {result.rejected} were "
                "rejected; look at the reasons with `llm-from-scratch curate` on a few files, or relax data.pipeline"
            )
        inputs = [r.to_dict() for r in reports]
        for skipped in (s for r in inputs for s in r["skipped"]):
            art.log(
                f"curate: skipped {skipped['file']}: {skipped['reason']} ({skipped['documents_kept']} documents kept)"
            )
        stats_tmp.write_text(json.dumps({**result.to_json(), "inputs": inputs}, indent=1))
    sources: dict[str, int] = {}
    with open(out / "corpus.jsonl", encoding="utf-8") as f:
        for line in f:
            src = json.loads(line)["source"]
            sources[src] = sources.get(src, 0) + 1
    skipped = sum(r["files_skipped"] for r in inputs)
    return {**result.to_json(), "kept_by_source": sources, "bytes_out": (out / "corpus.jsonl").stat().st_size,
            "input_files_skipped": skipped}  # fmt: skip


def tokenizer(art, out: Path) -> dict:
    from llm_from_scratch.eval.cloze import heldout_documents
    from llm_from_scratch.tokenizer.build import bytes_per_token, iter_jsonl_texts, train_from_config

    corpus = art.corpus_path()
    if art.config.tokenizer.kind != "bpe":
        raise ValueError(
            "config: tokenizer.kind must be 'bpe' in the pipeline (the chat template needs its special tokens)"
        )
    tok = train_from_config(art.config.tokenizer, iter_jsonl_texts(corpus), art.progress)
    with atomic_path(out / "tokenizer.json") as tmp:
        tok.save(tmp)
    held = heldout_documents(corpus, art.config.shards.val_fraction)
    return {
        "vocab_size": tok.vocab_size,
        "fingerprint": tok.fingerprint,
        "heldout_bytes_per_token": bytes_per_token(tok, held),
        "heldout_docs": len(held),
    }


def shards(art, out: Path) -> dict:
    from llm_from_scratch.tokenizer.build import iter_jsonl_texts
    from llm_from_scratch.tokenizer.shards import write_shards

    corpus = art.corpus_path()
    cfg = art.config.shards
    s = write_shards(
        lambda: iter_jsonl_texts(corpus),
        art.tokenizer(),
        art.tokenizer_path(),
        out,
        cfg.shard_tokens,
        cfg.val_fraction,
        art.config.run.workers,
        art.progress,
    )
    meta = json.loads((out / "shards.json").read_text())
    return {
        "train_tokens": s.n_tokens("train"),
        "val_tokens": s.n_tokens("val"),
        "documents": meta["documents"],
        "files": len(s.train) + len(s.val),
        "val_bytes_per_token": s.bytes_per_token("val"),
    }


def pretrain(art, out: Path) -> dict:
    from llm_from_scratch.distributed.parallel import is_data_parallel
    from llm_from_scratch.model import count_parameters, flops_per_token
    from llm_from_scratch.train.trainer import train

    data = art.token_data()
    model_config = art.config.model.replace(vocab_size=data.vocab_size)
    cfg = art.config.pretrain
    parallel = art.config.run.parallel if art.env is not None else "none"
    result = train(
        model_config,
        data,
        cfg,
        out,
        device=art.device,
        progress=art.progress,
        sample_prompt=SAMPLE_PROMPT,
        parallel=parallel,
        env=art.env,
    )
    block = cfg.block_size or model_config.context_length
    ranks = art.env.world_size if art.env is not None and is_data_parallel(parallel) else 1
    tokens = cfg.max_steps * cfg.batch_size * cfg.grad_accum * block * ranks  # the global batch
    steps = [r for r in result.records if "tok_per_s" in r]
    return {
        "parameters": count_parameters(model_config),
        "flops_per_token": flops_per_token(model_config, block),
        "parallel": {"strategy": parallel, "world_size": art.env.world_size if art.env is not None else 1},
        "steps": cfg.max_steps,
        "tokens": tokens,
        "train_flops": flops_per_token(model_config, block) * tokens,
        "val_loss": result.last("val_loss"),
        "val_ppl": result.last("val_ppl"),
        "val_bpb": result.last("val_bpb"),
        "train_seconds": result.last("elapsed"),
        "tok_per_s": sum(r["tok_per_s"] for r in steps) / max(len(steps), 1),
        "mfu": sum(r["mfu"] for r in steps) / max(len(steps), 1),
        "sample": result.last("sample"),
    }


def _save_model(art, out: Path, model, log: list[dict], extra: dict | None = None) -> None:
    """The model folder (weights, config, and the fingerprint of the tokenizer it was trained with) and its log."""
    from llm_from_scratch.model.checkpoint import save_model

    save_model(out / "model", model, model.config, art.tokenizer().fingerprint)
    with atomic_path(out / "log.json") as tmp:
        tmp.write_text(json.dumps({"log": log, **(extra or {})}))


def _tail_mean(log: list[dict], key: str, n: int = 5) -> float:
    vals = [r[key] for r in log if key in r][-n:]
    return sum(vals) / max(len(vals), 1)


def sft(art, out: Path) -> dict:
    from llm_from_scratch.align.sft import mix_skill, train_sft

    dialogue, held_data = art.sft_data()
    train_data = mix_skill(art.tokenizer(), dialogue, art.config.sft)  # + the verifiable skill's training problems
    model = art.model("pretrain")
    log = train_sft(model, train_data, held_data, art.config.sft, art.progress)
    _save_model(art, out, model, log)
    val = [r["val_reply_loss"] for r in log if "val_reply_loss" in r]
    return {"examples": len(train_data), "skill_examples": len(train_data) - len(dialogue),
            "val_reply_loss_before": val[0], "val_reply_loss_after": val[-1]}  # fmt: skip


def preferences(art, out: Path) -> dict:
    from llm_from_scratch.align.preferences import build_pairs, skill_pairs

    cfg = art.config.preferences
    model = art.model("sft")
    pairs, stats = build_pairs(model, art.tokenizer(), art.train_prompts(cfg.n_prompts), cfg)
    if cfg.skill_prompts:  # verified pairs: chosen = a right answer, rejected = a wrong one, by the exact check
        verified, skill_stats = skill_pairs(model, art.tokenizer(), art.config.sft.skill, cfg)
        pairs += verified
        stats = {**stats, "dialogue_pairs": stats["pairs"], "pairs": len(pairs), "skill": skill_stats}
    with atomic_path(out / "pairs.json") as tmp:
        tmp.write_text(json.dumps({"pairs": pairs, "stats": stats}))
    return stats


def dpo(art, out: Path) -> dict:
    from llm_from_scratch.align.dpo import train_dpo

    policy, reference = art.model("sft"), art.model("sft")
    log = train_dpo(policy, reference, art.pairs()[0], art.config.dpo, art.progress)
    _save_model(art, out, policy, log)
    return {
        "steps": len(log),
        "loss": _tail_mean(log, "loss"),
        "accuracy": _tail_mean(log, "accuracy"),
        "margin": _tail_mean(log, "margin"),
    }


def reward(art, out: Path) -> dict:
    from llm_from_scratch.align.reward import train_reward_model
    from llm_from_scratch.model.checkpoint import save_model

    sft_model = art.model("sft")
    rm, log, metrics = train_reward_model(sft_model, art.pairs()[0], art.config.reward)
    save_model(out / "model", rm, sft_model.config, art.tokenizer().fingerprint)
    with atomic_path(out / "log.json") as tmp:
        tmp.write_text(json.dumps({"log": log, "metrics": metrics}))
    return metrics


def rlhf(art, out: Path) -> dict:
    from llm_from_scratch.align.chat import end_id
    from llm_from_scratch.align.grpo import train_grpo
    from llm_from_scratch.align.skill import rl_prompts, verifier_reward

    cfg = art.config.rlhf
    policy, reference = art.model("sft"), art.model("sft")
    # the skill's training-side problems either way: only the reward differs, so the two runs compare
    prompts, answers = rl_prompts(art.tokenizer(), art.config.sft.skill)
    if cfg.reward == "verifier":  # RL with a verifiable reward: the exact check
        reward_fn = verifier_reward(art.tokenizer(), answers, cfg.format_bonus)
    else:  # the learned Bradley-Terry reward model of the preference pairs (which RL can fool: chapter 14)
        reward_fn = art.reward_model().score
    log = train_grpo(policy, reference, reward_fn, prompts, end_id(art.tokenizer()), cfg, art.progress)
    _save_model(art, out, policy, log)
    keys = sorted({k for r in log for k in r if k != "step" and isinstance(r[k], int | float)})
    rm = {"reward_model": art.stage_metrics("reward")} if cfg.reward == "model" else {}
    return {**rm, "reward_kind": cfg.reward, "steps": len(log), **{k: _tail_mean(log, k) for k in keys}}


def heldout_cloze(art) -> tuple[list, list]:
    """The config's held-out documents and the cloze items built from them (the eval stage's and `eval --gguf`'s)."""
    from llm_from_scratch.eval.cloze import build_cloze_items, heldout_documents

    cfg = art.config.eval
    held = heldout_documents(art.corpus_path(), art.config.shards.val_fraction)
    items = build_cloze_items(
        held, cfg.cloze_items, cfg.cloze_choices, cfg.cloze_context_lines, cfg.cloze_min_chars, cfg.cloze_max_chars,
        cfg.cloze_seed,
    )  # fmt: skip
    return held, items


def evaluate(art, out: Path) -> dict:
    from llm_from_scratch.eval.suite import evaluate_models

    cfg = art.config.eval
    _, items = heldout_cloze(art)
    data = art.token_data()
    models = {("base" if s == "pretrain" else s): art.model(s) for s in art.model_stages()}
    prompts = art.heldout_prompts(cfg.align_prompts)
    from llm_from_scratch.align.skill import chance_accuracy, heldout_problems

    skill = art.config.sft.skill
    results = evaluate_models(
        models, art.tokenizer(), data.val, data.bytes_per_token, items, prompts, cfg, art.progress,
        skill_items=heldout_problems(skill), skill_max_new_tokens=skill.max_new_tokens,
    )  # fmt: skip
    for r in results.values():
        r["skill"]["chance"] = chance_accuracy(skill)
    with atomic_path(out / "cloze_items.json") as tmp:
        tmp.write_text(json.dumps([asdict(i) for i in items], indent=1))
    return results
