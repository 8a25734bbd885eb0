"""``llm-from-scratch sft | dpo | rlhf``: build (or load from the cache) an aligned model and evaluate it on
held-out prompts against its starting point; ``--chat`` answers one message with the resulting model."""

from __future__ import annotations

import argparse


def _print_eval(preset: str, stage: str, start: str) -> None:
    from llm_from_scratch.align.artifacts import evaluation

    before, after = evaluation(preset, start), evaluation(preset, stage)
    for name, e in ((start, before), (stage, after)):
        r = e["rates"]
        print(
            f"{name:5s} acceptable {r['ok']:.3f} (ended {r['ended']:.3f}, brief {r['brief']:.3f}, "
            f"flagged {r['flagged']:.3f}); KL to its start {e['kl']:.3f} nats; held-out perplexity {e['ppl']:.2f}"
        )
    print(f"({len(after['replies'])} replies to {len(after['prompts'])} held-out prompts)")


def _chat(model, tok, message: str, system: str | None, seed: int) -> None:
    from llm_from_scratch.align.chat import encode_prompt, end_id
    from llm_from_scratch.align.evaluate import decode_reply
    from llm_from_scratch.align.sampling import sample_replies

    prompt = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": message}]
    ids = encode_prompt(tok, prompt, model.config.context_length - 64)
    s = sample_replies(model, [ids], end_id(tok), n=1, max_new_tokens=64, temperature=0.8, seed=seed)
    print(decode_reply(tok, s.tokens[0], end_id(tok)) + ("" if s.ended[0] else " [cut off]"))


def _run(args: argparse.Namespace) -> int:
    from llm_from_scratch.align import artifacts as A

    if args.command == "sft":
        model, tok, log = A.sft_run(args.preset, progress=not args.quiet)
        print(f"SFT: held-out reply loss {log[0]['val_reply_loss']:.3f} -> {log[-1]['val_reply_loss']:.3f}")
        start = "base"
    elif args.command == "dpo":
        if args.beta is not None:
            model, tok = A.dpo_model(args.preset, beta=args.beta, progress=not args.quiet)
        else:
            model, tok, log = A.dpo_run(args.preset, progress=not args.quiet)
            print(
                f"DPO: {len(log)} steps, last reward accuracy {log[-1]['accuracy']:.2f}, margin {log[-1]['margin']:.3f}"
            )
        start = "sft"
    else:
        _, _, metrics = A.reward_model(args.preset)
        print(f"reward model: held-out pair accuracy {metrics['held_out_accuracy']:.3f}")
        model, tok, log = A.rlhf_run(args.preset, progress=not args.quiet)
        print(f"GRPO: reward {log[0]['reward']:.3f} -> {log[-1]['reward']:.3f}, KL per reply {log[-1]['kl_seq']:.3f}")
        start = "sft"
    if args.chat:
        _chat(model, tok, args.chat, args.system, args.seed)
    elif args.evaluate and args.beta is None:
        _print_eval(args.preset, args.command, start)
    return 0


def register(subparsers) -> None:
    helps = {
        "sft": "supervised fine-tuning on dialogue (plays + chatterbot-corpus), loss on reply tokens only",
        "dpo": "Direct Preference Optimization from the SFT model on verifier-ranked pairs of its own samples",
        "rlhf": "reward model (Bradley-Terry) + GRPO with a KL penalty to the SFT model",
    }
    for name, text in helps.items():
        p = subparsers.add_parser(
            name,
            help=text,
            description=text + ". Built on first use into the artifact cache ($LLM_FROM_SCRATCH_CACHE), then loaded. "
            "Prints the held-out evaluation against the starting model.",
        )
        p.add_argument("--preset", default="book", choices=["tiny", "book"], help="alignment preset")
        p.add_argument("--chat", metavar="MESSAGE", default=None, help="answer MESSAGE with the model and exit")
        p.add_argument("--system", default=None, help="system message for --chat, e.g. 'You are HAMLET.'")
        p.add_argument("--seed", type=int, default=0, help="sampling seed for --chat")
        p.add_argument("--no-eval", dest="evaluate", action="store_false", help="skip the held-out evaluation")
        p.add_argument("--quiet", action="store_true", help="no progress bars")
        if name == "dpo":
            p.add_argument("--beta", type=float, default=None, help="DPO beta (default: the preset's, 0.1)")
        else:
            p.set_defaults(beta=None)
        p.set_defaults(func=_run, command=name)
