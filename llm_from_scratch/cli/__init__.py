"""The `llm-from-scratch` command: one sub-command per pipeline stage, plus the tools that use their artifacts.

The stage commands are generated from the registry (`llm_from_scratch.pipeline.registry`) and all take the
same flags (`.common`); each module here exposes `register(subparsers)`. Handlers import their heavy
dependencies lazily, so `llm-from-scratch --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from llm_from_scratch import __version__

# the modules that add sub-commands, in the order --help lists them
COMMANDS: list[str] = [
    "llm_from_scratch.cli.info",
    "llm_from_scratch.cli.stages",
    "llm_from_scratch.cli.use",
    "llm_from_scratch.cli.generate",
    "llm_from_scratch.cli.distributed",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llm-from-scratch",
        description="Build a language model from raw text to an aligned chat model, one stage at a time.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(title="stages", metavar="<stage>")
    for module in COMMANDS:
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
    except OSError as err:  # permissions, a full disk: the file and the reason, which say what to fix
        where = f" {err.filename}" if err.filename else ""
        print(f"llm-from-scratch: error:{where}: {err.strerror or err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("llm-from-scratch: interrupted; finished artifacts are kept, the next call resumes", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
