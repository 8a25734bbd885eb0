"""The ``llm-from-scratch`` command: one sub-command per pipeline stage.

Each stage lives in its own module, which exposes ``register(subparsers)``; that function adds the stage's
sub-command and sets ``func`` to the handler. Handlers import their heavy dependencies lazily, so
``llm-from-scratch --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from llm_from_scratch import __version__

# Module paths, in pipeline order. A stage appears here when its first real code lands.
STAGES: list[str] = [
    "llm_from_scratch.info",
    "llm_from_scratch.data.cli",
    "llm_from_scratch.tokenizer.cli",
    "llm_from_scratch.model.cli",
    "llm_from_scratch.train.cli",
    "llm_from_scratch.distributed.cli",
    "llm_from_scratch.align.cli",
    "llm_from_scratch.pipeline_run.cli",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llm-from-scratch",
        description="Build a language model from raw text to an aligned chat model, one stage at a time.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(title="stages", metavar="<stage>")
    for module in STAGES:
        importlib.import_module(module).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except (ValueError, RuntimeError, FileNotFoundError) as err:
        # Bad input gets one clear line, not a traceback; the message says what, where and how to fix.
        print(f"llm-from-scratch: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
