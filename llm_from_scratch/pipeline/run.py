"""`llm-from-scratch run`: every stage of a config, in order, through the resolver, then the report card.

The runner adds nothing to how a stage is built or found (that is `llm_from_scratch.pipeline.resolver.
Artifacts`'s job, shared with the chapters and every stage command): it walks the registry in order, prints one line
per stage, and writes `config.yaml` (the resolved config) first and `run.json` and `report.md` last into the
run's folder, `ROOT/runs/<preset>` by default. Every stage is seeded, so a resumed run ends with the same metrics
as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

from llm_from_scratch.pipeline.config import RunConfig, dump_yaml
from llm_from_scratch.pipeline.registry import MODEL_STAGES
from llm_from_scratch.pipeline.resolver import Artifacts
from llm_from_scratch.utils import atomic_path, cache_dir

RUN_FILE = "run.json"
DATA_STAGES = ("curate", "tokenizer", "shards")


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


def default_run_dir(root: Path, preset: str) -> Path:
    """Where `run` writes its config, summary and report: `ROOT/runs/<preset>`."""
    return Path(root) / "runs" / preset


def run_pipeline(
    config: RunConfig,
    root: str | Path | None = None,
    *,
    run_dir: str | Path | None = None,
    progress: bool = True,
    stop_after: str | None = None,
    report: bool = True,
    log: Callable[[str], None] = print,
) -> dict:
    """Build (or find) every stage of `config` under the artifact `root`; returns `{stage: record}`.

    Finished stages are reused; an interrupted one builds again (pretraining resumes from its checkpoint). Writes
    `config.yaml` into `run_dir` (default `ROOT/runs/<preset>`) first, and `run.json` and `report.md` last.

    Under `torchrun` (`WORLD_SIZE > 1`) the same call scales pretraining out: rank 0 builds the data stages
    while the other ranks wait, every rank then pretrains with `config.run.parallel` (DDP by default), and after
    pretraining rank 0 alone runs the rest, which fits one device. `root` must be visible to every rank (on
    several nodes: a shared file system).
    """
    import torch

    root = Path(root).expanduser().resolve() if root else cache_dir()
    run_dir = Path(run_dir).expanduser().resolve() if run_dir else default_run_dir(root, config.run.preset)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and config.run.parallel == "none":
        raise RuntimeError(
            f"`llm-from-scratch run` was launched as {world} torchrun processes but run.parallel is 'none': every "
            "rank would run every stage into the same files; pass --set run.parallel=ddp (or fsdp, tp), or run it "
            "in one process"
        )
    env = None
    if world > 1:
        from llm_from_scratch.distributed.launch import setup_distributed
        from llm_from_scratch.distributed.parallel import TRAIN_TIMEOUT_S

        env = setup_distributed(timeout_s=TRAIN_TIMEOUT_S)
    main = env is None or env.is_main
    if config.run.threads:
        torch.set_num_threads(config.run.threads)
    art = Artifacts(config, root, progress=progress and main, env=env)
    names = art.stages()
    if stop_after is not None and stop_after not in names:
        raise ValueError(f"--stop-after {stop_after!r}: choose one of {list(names)}")
    if main:
        with atomic_path(run_dir / "config.yaml") as tmp:
            tmp.write_text(dump_yaml(config))
    say = log if main else (lambda _message: None)
    t_run = time.perf_counter()
    with contextlib.ExitStack() as stack:
        if env is not None:
            from llm_from_scratch.distributed.launch import cleanup_distributed

            stack.callback(lambda: art.env is not None and cleanup_distributed())  # stopped before pretraining ended
        for i, name in enumerate(names, 1):
            art.log = lambda message, i=i: say(f"[{i}/{len(names)}] {message}")
            if art.env is not None and name in DATA_STAGES:
                from llm_from_scratch.distributed.launch import main_rank_first

                main_rank_first(art.env, lambda name=name: art.ensure(name))  # the others then find it built
            else:
                art.ensure(name)
            if art.env is not None and name == "pretrain":
                from llm_from_scratch.distributed.launch import cleanup_distributed

                cleanup_distributed()  # the rest of the run is one process: rank 0's
                art.env = None
                if not main:
                    return art.results
            if name == stop_after:
                break
    if not main:
        return art.results
    summary = {
        "preset": config.run.preset,
        "device": art.device,
        "hardware": hardware(),
        "processes": world,
        "root": str(root),
        "dirs": {k: str(v) for k, v in art.dirs().items()},
        "stages": art.results,
        "this_invocation_s": time.perf_counter() - t_run,
        "complete": all(n in art.results for n in names),
    }
    with atomic_path(run_dir / RUN_FILE) as tmp:
        tmp.write_text(json.dumps(summary, indent=1, default=float))
    if report and summary["complete"]:
        from llm_from_scratch.pipeline.report import write_report

        write_report(run_dir, config, summary)
        log(f"report: {run_dir / 'report.md'}")
    return art.results


def find_model(art: Artifacts, stage: str | None = None):
    """`(model, tokenizer, stage)`: `stage` (`base`/`pretrain`, `sft`, `dpo`, `rlhf`) of `art`'s
    config, or the most aligned one that has been built (DPO, then RLHF, then SFT, then the base model). Never
    trains: a clear error says which command builds it."""
    stage = {"base": "pretrain"}.get(stage, stage)
    order = ("dpo", "rlhf", "sft", "pretrain")
    done = [s for s in order if s in art.stages() and art.done(s)]
    preset = art.config.run.preset
    hint = f"build it with `llm-from-scratch {stage or 'run'} --preset {preset}` (with the same --set/--config/--out)"
    if stage is None:
        if not done:
            raise FileNotFoundError(f"no trained model of preset {preset!r} under {art.root}: {hint}")
        stage = done[0]
    elif stage not in MODEL_STAGES:
        raise ValueError(f"unknown model {stage!r}: choose one of ['base', 'sft', 'dpo', 'rlhf']")
    elif stage not in done:
        raise FileNotFoundError(
            f"the {stage} model of preset {preset!r} has not been built under {art.root} (built: {done or 'none'}); "
            + hint
        )
    return art.model(stage), art.tokenizer(), stage
