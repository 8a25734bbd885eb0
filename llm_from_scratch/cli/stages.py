"""One command per registered stage (`curate`, `tokenizer`, `shards`, `pretrain`, `sft`, `preferences`,
`dpo`, `reward`, `rlhf`, `eval`) and `run` (all of them, then the report card).

Each builds its stage, and every input it lacks, under the artifact root, or finds it there: `pretrain --preset
tiny` followed by `run --preset tiny` trains once (`pretrain: reused <path>`). Your own text goes in through
`data.sources` (`curate FILE_OR_FOLDER ...` sets it): every later stage then trains on it.
"""

from __future__ import annotations

import argparse
import json
import os

from llm_from_scratch.cli.common import add_common_args, artifacts, load_args_config

PARALLEL = ("none", "ddp", "ddp-scratch", "fsdp", "tp", "tp-dtensor")


def _stage(args: argparse.Namespace) -> int:
    extra = {"data": {"sources": [str(p) for p in args.inputs]}} if getattr(args, "inputs", None) else None
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if args.stage == "pretrain" and args.parallel != "none":
        return _pretrain_parallel(args, extra)
    if world > 1:
        raise RuntimeError(
            f"{args.stage} runs as one of WORLD_SIZE={world} torchrun processes without a parallel strategy: every "
            "rank would build the same files; pass --parallel ddp, fsdp or tp to pretrain (the other stages run in one "
            "process, or use `run` under torchrun)"
        )
    art = artifacts(args, extra)
    out = art.ensure(args.stage)
    _summary(args.stage, art, out)
    return 0


def _pretrain_parallel(args: argparse.Namespace, extra: dict | None) -> int:
    """Pretraining under torchrun: rank 0 builds the data stages while the others wait, then every rank trains."""
    from llm_from_scratch.distributed.launch import cleanup_distributed, main_rank_first, setup_distributed
    from llm_from_scratch.distributed.parallel import TRAIN_TIMEOUT_S, launch_hint

    if int(os.environ.get("WORLD_SIZE", "1")) == 1:
        example = "torchrun --standalone --nproc_per_node=2 -m llm_from_scratch.cli pretrain --preset tiny "
        raise RuntimeError(launch_hint(args.parallel, example + f"--parallel {args.parallel}"))
    env = setup_distributed(timeout_s=TRAIN_TIMEOUT_S)
    try:
        config = load_args_config(args, {**(extra or {}), "run": {"parallel": args.parallel}})
        from llm_from_scratch.pipeline.resolver import Artifacts

        art = Artifacts(config, args.out, progress=not args.quiet and env.is_main, env=env,
                        log=print if env.is_main and not args.quiet else None)  # fmt: skip
        main_rank_first(env, lambda: art.ensure("shards"))
        out = art.ensure("pretrain")
        if env.is_main:
            _summary("pretrain", art, out)
    finally:
        cleanup_distributed()
    return 0


def _summary(stage: str, art, out) -> None:
    """One line of what the stage produced; the metrics are in `out/stage.json`."""
    m = art.results[stage]["metrics"]
    if stage == "curate":
        print(f"curate: kept {m['kept']}, rejected {m['rejected']} -> {out / 'corpus.jsonl'}")
        if m.get("input_files_skipped"):
            print(f"curate: {m['input_files_skipped']} damaged input files skipped (names and reasons in stats.json)")
    elif stage == "pretrain":
        print(f"pretrain: val loss {m['val_loss']:.4f}, bits per byte {m['val_bpb']:.4f}; checkpoints in {out}")
        if m.get("sample"):
            print("sample:", m["sample"])
    else:
        print(f"{stage}: {out}")


def _run(args: argparse.Namespace) -> int:
    from llm_from_scratch.pipeline.config import dump_yaml
    from llm_from_scratch.pipeline.run import run_pipeline

    config = load_args_config(args)
    if args.print_config:
        print(dump_yaml(config), end="")
        return 0
    run_pipeline(config, args.out, run_dir=args.run_dir, progress=not args.quiet, stop_after=args.stop_after)
    return 0


def _eval(args: argparse.Namespace) -> int:
    art = artifacts(args)
    if args.gguf:
        return _eval_gguf(args, art)
    art.ensure("eval")
    print(json.dumps(art.results["eval"]["metrics"], indent=1, default=float))
    return 0


def _eval_gguf(args: argparse.Namespace, art) -> int:
    """`eval --gguf FILE`: a real model's bits per byte and cloze accuracy on this run's held-out documents, each
    measured with the model's own tokenizer (`llm_from_scratch.eval.external`)."""
    from llm_from_scratch.eval.external import evaluate_external
    from llm_from_scratch.model.gguf import load_gguf
    from llm_from_scratch.pipeline.build import heldout_cloze

    if args.max_bytes < 0:
        raise ValueError(f"--max-bytes must be 0 (all the held-out text) or more, not {args.max_bytes}")
    model, tokenizer, _ = load_gguf(args.gguf, art.device)  # a bad file fails here, before the corpus is built
    held, items = heldout_cloze(art)
    result = {"model": str(args.gguf), **evaluate_external(model, tokenizer, held, items, args.max_bytes or None)}
    print(json.dumps(result, indent=1, default=float))
    return 0


def register(subparsers) -> None:
    from llm_from_scratch.pipeline.registry import STAGES

    for spec in STAGES:
        p = subparsers.add_parser(
            spec.name,
            help=spec.help.split(" -> ")[-1] if spec.name != "eval" else "evaluate every model of the run",
            description=f"{spec.title} (chapters {spec.chapters}). In: {spec.help.replace(' -> ', '. Out: ', 1)}. "
            f"Builds every missing input stage first ({', '.join(spec.inputs) or 'none'}); reuses a finished "
            f"artifact. Config sections: {', '.join(spec.sections)}.",
        )
        if spec.name == "curate":
            p.add_argument(
                "inputs", nargs="*", metavar="INPUT",
                help="your own text: folders, .txt, .jsonl, .gz, .warc/.wet (sets data.sources; default: the book's)",
            )  # fmt: skip
        if spec.name == "pretrain":
            p.add_argument("--parallel", default="none", choices=PARALLEL, help="strategy under torchrun")
        if spec.name in ("pretrain", "sft", "dpo", "rlhf", "reward", "preferences", "eval"):
            p.add_argument("--device", default=None, help="cpu, cuda, cuda:N or mps (default: run.device)")
        if spec.name == "eval":
            p.add_argument(
                "--gguf", metavar="FILE",
                help="evaluate a GGUF model instead ('smollm2': the bundled one): bits per byte on the held-out "
                "documents and the cloze task, with the model's own tokenizer",
            )  # fmt: skip
            p.add_argument(
                "--max-bytes", type=int, default=100_000, metavar="N",
                help="with --gguf: bits per byte on the opening N bytes of the held-out text, an equal share of "
                "each document (default: 100000; 0: all of it)",
            )  # fmt: skip
        add_common_args(p)
        p.set_defaults(func=_eval if spec.name == "eval" else _stage, stage=spec.name)
    p = subparsers.add_parser(
        "run",
        help="every stage, raw text to an aligned model, then report.md (resumable)",
        description="Build or reuse every stage of the config in order under the artifact root, then write "
        "config.yaml, run.json and report.md (with figures) into the run folder (ROOT/runs/<preset>).",
    )
    add_common_args(p)
    p.add_argument("--run-dir", metavar="DIR", help="where the report goes (default: ROOT/runs/<preset>)")
    p.add_argument("--stop-after", metavar="STAGE", help="stop after this stage (curate, tokenizer, ..., eval)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config (YAML) and exit")
    p.set_defaults(func=_run)
