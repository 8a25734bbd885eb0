"""``llm-from-scratch eval`` and ``llm-from-scratch chat``: the models of a run (``llm-from-scratch run``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers) -> None:
    e = subparsers.add_parser(
        "eval",
        help="held-out perplexity, bits per byte and next-line cloze accuracy of a run's models",
        description="Evaluate the models of a finished run (see `llm-from-scratch run`) on held-out text: "
        "loss, perplexity, bits per byte, and the next-line multiple-choice cloze task. Prints one JSON object.",
    )
    e.add_argument("--workdir", metavar="DIR", help="the run's work directory (default: <cache>/runs/<preset>)")
    e.add_argument("--preset", choices=["tiny", "book"], default="book", help="locates the default workdir")
    e.add_argument("--model", action="append", choices=["base", "sft", "dpo", "rlhf"], help="(repeatable) default: all")
    e.add_argument("--items", type=int, default=None, help="cloze questions (default: the run's eval.cloze_items)")
    e.set_defaults(func=_eval)

    c = subparsers.add_parser(
        "chat",
        help="chat with a run's aligned model in the terminal (streaming)",
        description="Interactive chat with the aligned model of a run: type a message, the reply streams token by "
        "token. /reset starts over, /exit or Ctrl-D quits. Train a model first with `llm-from-scratch run`.",
    )
    c.add_argument("--workdir", metavar="DIR", help="the run's work directory (default: <cache>/runs/<preset>)")
    c.add_argument("--preset", choices=["tiny", "book"], default="book", help="locates the default workdir")
    c.add_argument("--model", choices=["base", "sft", "dpo", "rlhf"], help="default: DPO, else RLHF, else SFT")
    c.add_argument("--temperature", type=float, default=0.8, help="0 = greedy (default 0.8)")
    c.add_argument("--top-p", type=float, default=0.95, help="nucleus sampling mass (default 0.95; 1 = off)")
    c.add_argument("--max-new-tokens", type=int, default=64)
    c.add_argument("--system", default=None, help="system message, e.g. 'You are HAMLET.'")
    c.add_argument("--seed", type=int, default=None, help="sampling seed (default: unseeded)")
    c.add_argument("--message", action="append", help="(repeatable) answer these messages and exit, no prompt")
    c.set_defaults(func=_chat)


def _workdir(args):
    from llm_from_scratch.pipeline_run.stages import default_workdir

    return Path(args.workdir) if args.workdir else default_workdir(args.preset)


def _check_sampling(args) -> None:
    if args.temperature < 0:
        raise ValueError(f"--temperature must be >= 0, got {args.temperature}")
    if not 0 < args.top_p <= 1:
        raise ValueError(f"--top-p must be in (0, 1], got {args.top_p}")
    if args.max_new_tokens < 1:
        raise ValueError(f"--max-new-tokens must be >= 1, got {args.max_new_tokens}")


def _chat(args: argparse.Namespace) -> int:
    from llm_from_scratch.eval.chat import chat_loop
    from llm_from_scratch.pipeline_run.stages import find_model

    _check_sampling(args)
    model, tok, stage = find_model(_workdir(args), args.model)
    sampling = {"temperature": args.temperature, "top_p": None if args.top_p >= 1 else args.top_p,
                "max_new_tokens": args.max_new_tokens, "seed": args.seed}  # fmt: skip
    if args.message:
        queue = iter(args.message)

        def read(prompt: str) -> str:
            line = next(queue, None)
            if line is None:
                raise EOFError
            print(prompt + line)
            return line

        chat_loop(model, tok, system=args.system, read=read, **sampling)
        return 0
    print(f"chatting with the {stage} model of {_workdir(args)} (/reset, /exit)")
    chat_loop(model, tok, system=args.system, **sampling)
    return 0


def _eval(args: argparse.Namespace) -> int:
    import dataclasses

    from llm_from_scratch.eval.cloze import build_cloze_items, heldout_documents, score_cloze
    from llm_from_scratch.eval.lm import heldout_lm_metrics
    from llm_from_scratch.pipeline_run.config import config_from_dict, read_config_file
    from llm_from_scratch.pipeline_run.stages import Context, find_model, stage_dirs, token_data

    workdir = _workdir(args)
    find_model(workdir)  # a clear error when the run never trained a model
    config = config_from_dict(read_config_file(workdir / "config.yaml"))
    cfg = config.eval if args.items is None else dataclasses.replace(config.eval, cloze_items=args.items)
    ctx = Context(config, workdir, "cpu", False, dirs=stage_dirs(config, workdir))
    held = heldout_documents(ctx.dirs["curate"] / "corpus.jsonl", config.shards.val_fraction)
    items = build_cloze_items(
        held, cfg.cloze_items, cfg.cloze_choices, cfg.cloze_context_lines, cfg.cloze_min_chars, cfg.cloze_max_chars,
        cfg.cloze_seed,
    )  # fmt: skip
    data = token_data(ctx)
    out = {}
    for name in args.model or ["base", "sft", "dpo", "rlhf"]:
        try:
            model, tok, _ = find_model(workdir, name)
        except FileNotFoundError:
            if args.model:
                raise
            continue  # e.g. a run without RLHF
        out[name] = {
            "lm": heldout_lm_metrics(model, data.val, data.bytes_per_token, cfg),
            "cloze": score_cloze(model, tok, items),
        }
    print(json.dumps(out, indent=1))
    return 0
