"""The stages of a run, each a function ``(ctx, out_dir) -> metrics`` whose outputs all land in ``out_dir``.

A stage's directory is ``WORKDIR/<stage>-<key>``, where the key hashes the stage's config and the key of every
stage it reads from: change a config field and that stage and everything downstream run again into fresh
directories, while the upstream ones are reused. ``stage.json`` (metrics and wall time) is written atomically
*last*, so its presence means the stage finished; a stage killed before that simply runs again, except pretraining,
which resumes from its latest checkpoint (the trainer saves one every ``pretrain.ckpt_interval`` steps and redraws
exactly the batches an uninterrupted run would draw). Every stage is seeded, so a resumed run ends with the same
metrics as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from llm_from_scratch.pipeline_run.config import RunConfig, dump_yaml
from llm_from_scratch.utils import CACHE_ENV, atomic_path, config_key

STAGE_NAMES = ("curate", "tokenizer", "shards", "pretrain", "sft", "preferences", "dpo", "rlhf", "eval")
# what each stage reads: its key includes theirs
INPUTS = {
    "curate": (),
    "tokenizer": ("curate",),
    "shards": ("tokenizer",),
    "pretrain": ("shards",),
    "sft": ("pretrain",),
    "preferences": ("sft",),
    "dpo": ("preferences",),
    "rlhf": ("preferences",),
    "eval": ("dpo", "rlhf"),
}
# the config sections each stage depends on
SECTIONS = {
    "curate": ("data",),
    "tokenizer": ("tokenizer",),
    "shards": ("shards",),
    "pretrain": ("model", "pretrain"),
    "sft": ("sft",),
    "preferences": ("preferences", "sft"),
    "dpo": ("dpo",),
    "rlhf": ("reward", "rlhf"),
    "eval": ("eval", "sft"),
}
MARKER = "stage.json"
RUN_FILE = "run.json"


@dataclass
class Context:
    config: RunConfig
    workdir: Path
    device: str
    progress: bool
    dirs: dict[str, Path] = field(default_factory=dict)
    results: dict[str, dict] = field(default_factory=dict)
    env: Any = None  # the torchrun process group (DistEnv) while pretraining runs on several ranks, else None

    def tokenizer(self):
        from llm_from_scratch.tokenizer.artifacts import load_tokenizer

        return load_tokenizer(self.dirs["tokenizer"] / "tokenizer.json")

    def model(self, stage: str):
        """The model a stage produced (the pretraining run's final checkpoint for ``pretrain``)."""
        return stage_model(self.dirs[stage], stage, self.device)


def stage_names(config: RunConfig) -> tuple[str, ...]:
    return tuple(s for s in STAGE_NAMES if s != "rlhf" or config.run.rlhf)


def stage_keys(config: RunConfig, world_size: int = 1) -> dict[str, str]:
    """The key of every stage: its config sections plus the keys of its inputs (a Merkle chain). Pretraining on
    ``world_size > 1`` ranks adds the strategy and the world size (a data-parallel global batch is larger)."""
    keys: dict[str, str] = {}
    for name in stage_names(config):
        parts = {s: asdict(getattr(config, s)) for s in SECTIONS[name]}
        if name == "pretrain":
            parts["model"].pop("vocab_size")  # follows the tokenizer, which is already in the key
            if world_size > 1:
                parts["distributed"] = {"parallel": config.run.parallel, "world_size": world_size}
        if name == "curate":  # the data stage versions its output format: a new version means a new corpus
            from llm_from_scratch.data.corpus import CORPUS_VERSION

            parts["corpus_version"] = CORPUS_VERSION
        inputs = {i: keys[i] for i in INPUTS[name] if i in keys}
        keys[name] = config_key({"stage": name, "config": parts, "inputs": inputs})
    return keys


def stage_dirs(config: RunConfig, workdir: Path, world_size: int = 1) -> dict[str, Path]:
    return {name: Path(workdir) / f"{name}-{key}" for name, key in stage_keys(config, world_size).items()}


def stage_model(directory: Path, stage: str, device: str = "cpu"):
    from llm_from_scratch.train.checkpoint import latest_checkpoint, load_model

    if stage == "pretrain":
        ckpt = latest_checkpoint(directory)
        if ckpt is None:
            raise FileNotFoundError(f"{directory} holds no checkpoint: the pretraining stage has not run")
        return load_model(ckpt, device)
    return load_model(directory / "model", device)


# ------------------------------------------------------------------------------------------------------ stages


def curate(ctx: Context, out: Path) -> dict:
    from llm_from_scratch.data.corpus import source_documents
    from llm_from_scratch.data.pipeline import run_pipeline as curate_documents

    cfg = ctx.config.data
    with atomic_path(out / "rejected.jsonl") as rej, atomic_path(out / "corpus.jsonl") as tmp:
        result = curate_documents(
            source_documents(cfg), cfg.pipeline, tmp, rej, workers=ctx.config.run.workers, progress=ctx.progress
        )
    stats = result.to_json()
    sources: dict[str, int] = {}
    with open(out / "corpus.jsonl", encoding="utf-8") as f:
        for line in f:
            src = json.loads(line)["source"]
            sources[src] = sources.get(src, 0) + 1
    return {**stats, "kept_by_source": sources, "bytes_out": (out / "corpus.jsonl").stat().st_size}


def tokenizer(ctx: Context, out: Path) -> dict:
    from llm_from_scratch.eval.cloze import heldout_documents
    from llm_from_scratch.tokenizer.artifacts import iter_jsonl_texts, train_from_config
    from llm_from_scratch.tokenizer.experiments import bytes_per_token

    corpus = ctx.dirs["curate"] / "corpus.jsonl"
    if ctx.config.tokenizer.kind != "bpe":
        raise ValueError("config: tokenizer.kind must be 'bpe' in a run (the chat template needs its special tokens)")
    tok = train_from_config(ctx.config.tokenizer, iter_jsonl_texts(corpus))
    with atomic_path(out / "tokenizer.json") as tmp:
        tok.save(tmp)
    held = heldout_documents(corpus, ctx.config.shards.val_fraction)
    return {
        "vocab_size": tok.vocab_size,
        "fingerprint": tok.fingerprint,
        "heldout_bytes_per_token": bytes_per_token(tok, held),
        "heldout_docs": len(held),
    }


def shards(ctx: Context, out: Path) -> dict:
    from llm_from_scratch.tokenizer.artifacts import iter_jsonl_texts
    from llm_from_scratch.tokenizer.shards import write_shards

    corpus = ctx.dirs["curate"] / "corpus.jsonl"
    cfg = ctx.config.shards
    s = write_shards(
        lambda: iter_jsonl_texts(corpus),
        ctx.tokenizer(),
        ctx.dirs["tokenizer"] / "tokenizer.json",
        out,
        cfg.shard_tokens,
        cfg.val_fraction,
        ctx.config.run.workers,
        ctx.progress,
    )
    meta = json.loads((out / "shards.json").read_text())
    return {
        "train_tokens": s.n_tokens("train"),
        "val_tokens": s.n_tokens("val"),
        "documents": meta["documents"],
        "files": len(s.train) + len(s.val),
        "val_bytes_per_token": s.bytes_per_token("val"),
    }


def token_data(ctx: Context):
    """The shards as the trainer's ``TokenData`` (what :func:`llm_from_scratch.train.data.shard_data` builds from
    the cache, here from the run's own directories)."""
    from llm_from_scratch.tokenizer.shards import ShardSet
    from llm_from_scratch.train.data import shards_token_data

    return shards_token_data(ShardSet.load(ctx.dirs["shards"]), ctx.tokenizer())


def pretrain(ctx: Context, out: Path) -> dict:
    from llm_from_scratch.distributed.parallel import is_data_parallel
    from llm_from_scratch.model import count_parameters, flops_per_token
    from llm_from_scratch.train.pretrained import SAMPLE_PROMPT
    from llm_from_scratch.train.trainer import train

    data = token_data(ctx)
    model_config = ctx.config.model.replace(vocab_size=data.vocab_size)
    cfg = ctx.config.pretrain
    parallel = ctx.config.run.parallel if ctx.env is not None else "none"
    result = train(
        model_config,
        data,
        cfg,
        out,
        device=ctx.device,
        progress=ctx.progress,
        sample_prompt=SAMPLE_PROMPT,
        parallel=parallel,
        env=ctx.env,
    )
    block = cfg.block_size or model_config.context_length
    ranks = ctx.env.world_size if ctx.env is not None and is_data_parallel(parallel) else 1
    tokens = cfg.max_steps * cfg.batch_size * cfg.grad_accum * block * ranks  # the global batch
    steps = [r for r in result.records if "tok_per_s" in r]
    return {
        "parameters": count_parameters(model_config),
        "flops_per_token": flops_per_token(model_config, block),
        "parallel": {"strategy": parallel, "world_size": ctx.env.world_size if ctx.env is not None else 1},
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


def _save_model(out: Path, model, log, extra: dict | None = None) -> None:
    from llm_from_scratch.train.checkpoint import save_model

    save_model(out / "model", model, model.config)
    with atomic_path(out / "log.json") as tmp:
        tmp.write_text(json.dumps({"log": log, **(extra or {})}))


def sft(ctx: Context, out: Path) -> dict:
    from llm_from_scratch.align.data import dialogue_examples
    from llm_from_scratch.align.sft import tokenize_examples, train_sft

    cfg = ctx.config.sft
    tok = ctx.tokenizer()
    train_ex, held_ex = dialogue_examples()
    train_data = tokenize_examples(tok, train_ex, cfg.max_prompt, cfg.max_reply)
    held_data = tokenize_examples(tok, held_ex, cfg.max_prompt, cfg.max_reply)
    model = ctx.model("pretrain")
    log = train_sft(model, train_data, held_data, cfg, ctx.progress)
    _save_model(out, model, log)
    val = [r["val_reply_loss"] for r in log if "val_reply_loss" in r]
    return {"examples": len(train_data), "val_reply_loss_before": val[0], "val_reply_loss_after": val[-1]}


def train_prompt_ids(tokenizer, n: int, max_prompt: int) -> list[list[int]]:
    """``n`` training prompts in a fixed shuffle (as :func:`llm_from_scratch.align.artifacts.train_prompts`)."""
    import torch

    from llm_from_scratch.align.chat import encode_prompt
    from llm_from_scratch.align.data import dialogue_examples

    train_ex, _ = dialogue_examples()
    order = torch.randperm(len(train_ex), generator=torch.Generator().manual_seed(1)).tolist()[:n]
    return [encode_prompt(tokenizer, train_ex[i].prompt, max_prompt) for i in order]


def preferences(ctx: Context, out: Path) -> dict:
    from llm_from_scratch.align.preferences import build_pairs

    tok = ctx.tokenizer()
    cfg = ctx.config.preferences
    pairs, stats = build_pairs(
        ctx.model("sft"), tok, train_prompt_ids(tok, cfg.n_prompts, ctx.config.sft.max_prompt), cfg
    )
    with atomic_path(out / "pairs.json") as tmp:
        tmp.write_text(json.dumps({"pairs": pairs, "stats": stats}))
    return stats


def _pairs(ctx: Context) -> list[dict]:
    return json.loads((ctx.dirs["preferences"] / "pairs.json").read_text())["pairs"]


def _tail_mean(log: list[dict], key: str, n: int = 5) -> float:
    vals = [r[key] for r in log if key in r][-n:]
    return sum(vals) / max(len(vals), 1)


def dpo(ctx: Context, out: Path) -> dict:
    from llm_from_scratch.align.dpo import train_dpo

    policy, reference = ctx.model("sft"), ctx.model("sft")
    log = train_dpo(policy, reference, _pairs(ctx), ctx.config.dpo, ctx.progress)
    _save_model(out, policy, log)
    return {
        "steps": len(log),
        "loss": _tail_mean(log, "loss"),
        "accuracy": _tail_mean(log, "accuracy"),
        "margin": _tail_mean(log, "margin"),
    }


def rlhf(ctx: Context, out: Path) -> dict:
    from llm_from_scratch.align.chat import end_id
    from llm_from_scratch.align.grpo import train_grpo
    from llm_from_scratch.align.reward import train_reward_model

    tok = ctx.tokenizer()
    pairs = _pairs(ctx)
    rm, rm_log, rm_metrics = train_reward_model(ctx.model("sft"), pairs, ctx.config.reward)
    policy, reference = ctx.model("sft"), ctx.model("sft")
    prompts = train_prompt_ids(tok, ctx.config.preferences.n_prompts, ctx.config.sft.max_prompt)
    log = train_grpo(policy, reference, rm.score, prompts, end_id(tok), ctx.config.rlhf, ctx.progress)
    _save_model(out, policy, log, {"reward_log": rm_log, "reward_metrics": rm_metrics})
    keys = sorted({k for r in log for k in r if k != "step" and isinstance(r[k], int | float)})
    return {"reward_model": rm_metrics, "steps": len(log), **{k: _tail_mean(log, k) for k in keys}}


def evaluate(ctx: Context, out: Path) -> dict:
    from llm_from_scratch.eval.cloze import build_cloze_items, heldout_documents
    from llm_from_scratch.eval.suite import evaluate_models

    cfg = ctx.config.eval
    held = heldout_documents(ctx.dirs["curate"] / "corpus.jsonl", ctx.config.shards.val_fraction)
    items = build_cloze_items(
        held, cfg.cloze_items, cfg.cloze_choices, cfg.cloze_context_lines, cfg.cloze_min_chars, cfg.cloze_max_chars,
        cfg.cloze_seed,
    )  # fmt: skip
    data = token_data(ctx)
    names = [s for s in ("pretrain", "sft", "dpo", "rlhf") if s in ctx.dirs]
    models = {("base" if s == "pretrain" else s): ctx.model(s) for s in names}
    results = evaluate_models(
        models, ctx.tokenizer(), data.val, data.bytes_per_token, items, cfg, ctx.config.sft.max_prompt, ctx.progress
    )
    with atomic_path(out / "cloze_items.json") as tmp:
        tmp.write_text(json.dumps([asdict(i) for i in items], indent=1))
    return results


STAGES: dict[str, Callable[[Context, Path], dict]] = {
    "curate": curate,
    "tokenizer": tokenizer,
    "shards": shards,
    "pretrain": pretrain,
    "sft": sft,
    "preferences": preferences,
    "dpo": dpo,
    "rlhf": rlhf,
    "eval": evaluate,
}


# ------------------------------------------------------------------------------------------------------ runner


def hardware() -> dict:
    import torch

    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpu_count"] = torch.cuda.device_count()
    return info


@contextlib.contextmanager
def _cache_in(path: Path):
    """Point ``cache_dir()`` into the work directory while the run lasts: anything a stage caches on its own (the
    data chapters' toxicity classifier, for one) lands there too, never in the user's shared cache."""
    old = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(path)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(CACHE_ENV, None)
        else:
            os.environ[CACHE_ENV] = old


def default_workdir(preset: str) -> Path:
    """``<user cache>/llm-from-scratch/runs/<preset>`` (or under ``$LLM_FROM_SCRATCH_CACHE``)."""
    from llm_from_scratch.utils import cache_dir

    return cache_dir() / "runs" / preset


def run_pipeline(
    config: RunConfig,
    workdir: str | Path,
    *,
    progress: bool = True,
    stop_after: str | None = None,
    report: bool = True,
    log: Callable[[str], None] = print,
) -> dict:
    """Run (or resume) every stage of ``config`` into ``workdir``; returns ``{stage: metrics}``.

    Finished stages are skipped; an interrupted one runs again (pretraining resumes from its checkpoint). Writes
    ``config.yaml`` (the resolved config) first and ``run.json`` and ``report.md`` last.

    Under ``torchrun`` (``WORLD_SIZE > 1``) the same call scales pretraining out: rank 0 builds the data stages
    while the other ranks wait, every rank then pretrains with ``config.run.parallel`` (DDP by default), and after
    pretraining rank 0 alone runs the rest, which fits one device. ``workdir`` must be visible to every rank (on
    several nodes: a shared file system).
    """
    import torch

    from llm_from_scratch.utils import pick_device

    workdir = Path(workdir).expanduser().resolve()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and config.run.parallel == "none":
        raise RuntimeError(
            f"`llm-from-scratch run` was launched as {world} torchrun processes but run.parallel is 'none': every "
            "rank would run every stage into the same files; pass --set run.parallel=ddp (or fsdp, tp), or run it "
            "in one process"
        )
    if stop_after is not None and stop_after not in STAGE_NAMES:
        raise ValueError(f"--stop-after {stop_after!r}: choose one of {list(STAGE_NAMES)}")
    env = None
    if world > 1:
        from llm_from_scratch.distributed.launch import cleanup_distributed, main_rank_first, setup_distributed
        from llm_from_scratch.distributed.parallel import TRAIN_TIMEOUT_S

        env = setup_distributed(timeout_s=TRAIN_TIMEOUT_S)
    main = env is None or env.is_main
    say = log if main else (lambda _message: None)
    if main:
        workdir.mkdir(parents=True, exist_ok=True)
        with atomic_path(workdir / "config.yaml") as tmp:
            tmp.write_text(dump_yaml(config))
    if config.run.threads:
        torch.set_num_threads(config.run.threads)
    device = env.device if env is not None else pick_device(None if config.run.device == "auto" else config.run.device)
    ctx = Context(config, workdir, device, progress and main, dirs=stage_dirs(config, workdir, world), env=env)
    names = stage_names(config)
    t_run = time.perf_counter()

    def run_stage(i: int, name: str) -> None:
        out = ctx.dirs[name]
        marker = out / MARKER
        if marker.exists():
            ctx.results[name] = json.loads(marker.read_text())
            say(f"[{i}/{len(names)}] {name}: done ({out.name}), skipped")
            return
        say(f"[{i}/{len(names)}] {name} -> {out.name}")
        out.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        metrics = STAGES[name](ctx, out)
        record = {"stage": name, "wall_s": time.perf_counter() - t0, "device": device, "metrics": metrics}
        if main:
            with atomic_path(marker) as tmp:
                tmp.write_text(json.dumps(record, indent=1, default=float))
        ctx.results[name] = record
        say(f"[{i}/{len(names)}] {name}: {record['wall_s']:.1f} s")

    with _cache_in(workdir / "cache"):
        try:
            for i, name in enumerate(names, 1):
                if ctx.env is not None and name in ("curate", "tokenizer", "shards"):
                    main_rank_first(ctx.env, lambda i=i, name=name: run_stage(i, name))  # the others then skip it
                else:
                    run_stage(i, name)
                if ctx.env is not None and name == "pretrain":
                    cleanup_distributed()  # the rest of the run is one process: rank 0's
                    ctx.env = None
                    if not main:
                        return ctx.results
                if name == stop_after:
                    break
        finally:
            if ctx.env is not None:  # stopped (or failed) before the end of pretraining
                cleanup_distributed()
    if not main:
        return ctx.results
    summary = {
        "preset": config.run.preset,
        "device": device,
        "hardware": hardware(),
        "processes": world,
        "dirs": {k: v.name for k, v in ctx.dirs.items()},
        "stages": ctx.results,
        "this_invocation_s": time.perf_counter() - t_run,
        "complete": all(n in ctx.results for n in names),
    }
    with atomic_path(workdir / RUN_FILE) as tmp:
        tmp.write_text(json.dumps(summary, indent=1, default=float))
    if report and summary["complete"]:
        from llm_from_scratch.pipeline_run.report import write_report

        write_report(workdir, config, summary)
        log(f"report: {workdir / 'report.md'}")
    return ctx.results


def find_model(workdir: str | Path, stage: str | None = None, device: str = "cpu"):
    """``(model, tokenizer, stage)`` of a run: ``stage`` (``pretrain``/``base``, ``sft``, ``dpo``, ``rlhf``), or the
    most aligned one that exists (DPO, then RLHF, then SFT, then the base model). A clear error if none does."""
    from llm_from_scratch.tokenizer.artifacts import load_tokenizer

    workdir = Path(workdir).expanduser()
    run_file = workdir / RUN_FILE
    hint = f"run `llm-from-scratch run --preset tiny --workdir {workdir}` first (about a minute on a laptop)"
    if not run_file.exists():
        raise FileNotFoundError(f"no trained model in {workdir} (no {RUN_FILE}): {hint}")
    dirs = {k: workdir / v for k, v in json.loads(run_file.read_text())["dirs"].items()}
    done = [s for s in ("dpo", "rlhf", "sft", "pretrain") if (dirs.get(s, workdir / "-") / MARKER).exists()]
    stage = {"base": "pretrain"}.get(stage, stage)
    if stage is None:
        if not done:
            raise FileNotFoundError(f"no trained model in {workdir}: no stage up to pretraining has finished; {hint}")
        stage = done[0]
    elif stage not in done:
        raise FileNotFoundError(f"{workdir}: stage {stage!r} has not finished (finished: {done or 'none'}); {hint}")
    return stage_model(dirs[stage], stage, device), load_tokenizer(dirs["tokenizer"] / "tokenizer.json"), stage


def replace_config(config: RunConfig, **sections) -> RunConfig:
    """``config`` with whole sections swapped, e.g. ``replace_config(c, pretrain=...)``."""
    return dataclasses.replace(config, **sections)
