"""The book's pretrained model as a cached artifact: trained on first use, loaded afterwards."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from llm_from_scratch.train.checkpoint import latest_checkpoint, load_model
from llm_from_scratch.train.trainer import LOG_FILE, PRESETS, TrainConfig, TrainResult, _read_log, train
from llm_from_scratch.utils import cache_dir, config_key

SAMPLE_PROMPT = "**ROMEO**  \n"  # the corpus writes speakers in bold, each followed by a line break


def run_config(preset: str = "book"):
    """The (model config, train config) pair of a preset; the model's vocabulary follows the tokenizer's."""
    from llm_from_scratch.model import get_config

    if preset not in PRESETS:
        raise ValueError(f"unknown pretraining preset {preset!r}; choose one of {sorted(PRESETS)}")
    return get_config(preset), PRESETS[preset]


def run_dir(
    preset: str = "book", train_config: TrainConfig | None = None, parallel: str = "none", world_size: int = 1
) -> Path:
    """``cache_dir()/train/<preset>-<key>``: keyed by the model and train configs and the tokenizer fingerprint.

    A parallel run (``parallel`` other than ``none``) is another run, with ``world_size`` times the batch under data
    parallelism: ``<preset>-<parallel>x<world_size>-<key>``, its key including both (the single-process key, which
    later stages depend on, is unchanged)."""
    from llm_from_scratch.train.data import shard_data

    model_config, default = run_config(preset)
    data = shard_data(preset)
    spec = {
        "model": model_config.replace(vocab_size=data.vocab_size).to_dict(),
        "train": dataclasses.asdict(train_config or default),
        "tokenizer": data.fingerprint,
    }
    if parallel == "none":
        return cache_dir() / "train" / f"{preset}-{config_key(spec)}"
    key = config_key({**spec, "parallel": parallel, "world_size": world_size})
    return cache_dir() / "train" / f"{preset}-{parallel}x{world_size}-{key}"


def pretrained_run(
    preset: str = "book", device: str | None = None, progress: bool = True, parallel: str = "none"
) -> TrainResult:
    """The finished pretraining run of ``preset`` (model and log), training it first if the cache lacks it.

    An interrupted build resumes from its last checkpoint the next time it is asked for. ``parallel`` runs it under
    ``torchrun`` (every rank calls this; rank 0 builds the data first), in its own run directory (:func:`run_dir`).
    """
    from llm_from_scratch.train.data import shard_data

    model_config, config = run_config(preset)
    env = None
    if parallel != "none":
        from llm_from_scratch.distributed.launch import main_rank_first, setup_distributed
        from llm_from_scratch.distributed.parallel import TRAIN_TIMEOUT_S, launch_hint

        env = setup_distributed(timeout_s=TRAIN_TIMEOUT_S)
        if env.world_size == 1:
            example = f"torchrun --standalone --nproc_per_node=2 -m llm_from_scratch.cli pretrain --preset {preset} "
            raise RuntimeError(launch_hint(parallel, example + f"--parallel {parallel}"))
        data = main_rank_first(env, lambda: shard_data(preset))  # one rank builds the cached shards, not all
    else:
        data = shard_data(preset)
    model_config = model_config.replace(vocab_size=data.vocab_size)
    directory = run_dir(preset, parallel=parallel, world_size=env.world_size if env else 1)
    ckpt = latest_checkpoint(directory) if directory.exists() else None
    if ckpt is not None and ckpt.name == f"step-{config.max_steps:08d}":
        return TrainResult(
            model=load_model(ckpt, device or "cpu"), records=_read_log(directory / LOG_FILE), run_dir=directory
        )
    return train(
        model_config,
        data,
        config,
        directory,
        device=device,
        progress=progress,
        sample_prompt=SAMPLE_PROMPT,
        parallel=parallel,
        env=env,
    )


def pretrained_checkpoint(preset: str = "book") -> Path:
    """Directory of the final checkpoint (``model.safetensors``, ``config.json``, ``train_state.*``)."""
    result = pretrained_run(preset)
    return latest_checkpoint(result.run_dir)


def pretrained_model(preset: str = "book", device: str | None = None, progress: bool = True):
    """``(model, tokenizer)``: the pretrained Transformer of ``preset`` in eval mode and its tokenizer."""
    from llm_from_scratch.tokenizer import book_tokenizer

    result = pretrained_run(preset, device, progress)
    return result.model.eval(), book_tokenizer(preset)
