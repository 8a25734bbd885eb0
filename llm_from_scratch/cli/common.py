"""The flags every stage command shares, and the resolver they describe.

`--preset NAME` (a file in `llm_from_scratch/pipeline/configs`), `--config FILE` (TOML or YAML tables of
overrides), `--set SECTION.KEY=VALUE` (repeatable), `--out DIR` (the artifact root; `--workdir` is the same
flag) and `--quiet`. Unknown keys and wrongly typed values fail before any work, naming the valid keys.
"""

from __future__ import annotations

import argparse
import os

from llm_from_scratch.pipeline.presets import PRESET_NAMES  # a glob of a folder: no heavy import


def add_common_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("configuration (the same for every stage)")
    g.add_argument("--preset", choices=PRESET_NAMES, default=None, help="base settings (default: book)")
    g.add_argument("--config", metavar="FILE", help="TOML or YAML file of per-section overrides")
    g.add_argument(
        "--set", metavar="SECTION.KEY=VALUE", action="append", default=[], help="override one field (repeatable)"
    )
    g.add_argument(
        "--out",
        "--workdir",
        dest="out",
        metavar="DIR",
        help="artifact root where every stage's output lives and is reused from "
        "(default: $LLM_FROM_SCRATCH_CACHE, else ~/.cache/llm-from-scratch)",
    )
    g.add_argument("--quiet", action="store_true", help="no progress bars or per-stage lines")


def load_args_config(args: argparse.Namespace, extra: dict | None = None):
    from llm_from_scratch.pipeline.config import load_config, merge_tables, parse_set

    return load_config(args.config, args.preset, merge_tables(extra or {}, parse_set(args.set)))


def artifacts(args: argparse.Namespace, extra: dict | None = None, env=None):
    """The resolver the flags describe; logs `<stage>: reused <path>` / `built` lines unless `--quiet`."""
    from llm_from_scratch.pipeline.resolver import Artifacts

    rank0 = int(os.environ.get("RANK", "0")) == 0
    log = None if args.quiet or not rank0 else print
    return Artifacts(
        load_args_config(args, extra), args.out, progress=not args.quiet and rank0, log=log, env=env,
        device=getattr(args, "device", None),
    )  # fmt: skip
