"""``llm-from-scratch run``: the whole pipeline, resumable; also registers ``eval`` and ``chat``."""

from __future__ import annotations

import argparse

HELP = """Run the whole pipeline: curate -> tokenizer -> shards -> pretrain -> SFT -> preference pairs -> DPO ->
RLHF -> evaluation, every artifact under --workdir, then write WORKDIR/report.md. Finished stages are skipped, so
re-running the same command after a crash (even SIGKILL) resumes: pretraining from its last checkpoint, any other
stage from its start. Scale out: launch the same command under torchrun (e.g. torchrun --standalone
--nproc_per_node=2 -m llm_from_scratch run ...): every rank pretrains with run.parallel (ddp by default, also fsdp,
tp), rank 0 runs the other stages (chapter 16)."""


def register(subparsers) -> None:
    from llm_from_scratch.eval.cli import register as register_eval

    p = subparsers.add_parser(
        "run", help="the whole pipeline, from raw text to an aligned chat model", description=HELP
    )
    p.add_argument("--preset", choices=["tiny", "book"], default=None, help="tiny: CI smoke run; book (default)")
    p.add_argument("--config", metavar="FILE", help="TOML or YAML file of per-stage overrides (see config.yaml)")
    p.add_argument("--set", metavar="SECTION.KEY=VALUE", action="append", default=[], help="override one field")
    p.add_argument("--workdir", metavar="DIR", help="where every artifact goes (default: <cache>/runs/<preset>)")
    p.add_argument("--stop-after", metavar="STAGE", help="stop after this stage (curate, tokenizer, ..., eval)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config (YAML) and exit")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_run)
    register_eval(subparsers)


def _run(args: argparse.Namespace) -> int:
    from llm_from_scratch.pipeline_run.config import dump_yaml, load_config, parse_set
    from llm_from_scratch.pipeline_run.stages import default_workdir, run_pipeline

    config = load_config(args.config, args.preset, parse_set(args.set))
    if args.print_config:
        print(dump_yaml(config), end="")
        return 0
    workdir = args.workdir or default_workdir(config.run.preset)
    run_pipeline(config, workdir, progress=not args.quiet, stop_after=args.stop_after)
    return 0
