"""``llm-from-scratch generate``: sample text from a checkpoint directory, streaming tokens as they come."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = """Generate text from a checkpoint directory with config.json + model.safetensors. Both layouts load: the
Hugging Face Llama export (llm_from_scratch.model.hf.export_hf; also loads in transformers) and the native one
(llm_from_scratch.model.checkpoint.save_checkpoint). The prompt is encoded with the directory's tokenizer.json
(Hugging Face tokenizers) or tokenizer.model (sentencepiece); without one, pass token ids with --prompt-ids."""


def _tokenizer(path: Path):
    """(encode, decode) from the tokenizer file in the checkpoint directory, or None."""
    if (path / "tokenizer.json").is_file():
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(path / "tokenizer.json"))
        return (lambda s: tok.encode(s).ids), (lambda ids: tok.decode(ids))
    if (path / "tokenizer.model").is_file():
        import sentencepiece as spm

        sp = spm.SentencePieceProcessor(model_file=str(path / "tokenizer.model"))
        return (lambda s: sp.encode(s)), (lambda ids: sp.decode(ids))
    return None


def _run(args: argparse.Namespace) -> int:
    import torch

    from llm_from_scratch.model.checkpoint import load_model
    from llm_from_scratch.model.generate import stream
    from llm_from_scratch.utils import pick_device, seed_everything

    path = Path(args.checkpoint)
    device = pick_device(args.device)
    model = load_model(path, device)
    tok = _tokenizer(path)
    if args.prompt_ids is not None:
        ids = [int(t) for t in args.prompt_ids.replace(",", " ").split()]
    elif tok is not None:
        ids = tok[0](args.prompt)
    else:
        raise FileNotFoundError(
            f"no tokenizer.json or tokenizer.model in {path}: copy the tokenizer files there "
            "(export_hf(..., tokenizer_files=[...])) or pass token ids with --prompt-ids"
        )
    if not ids:
        raise ValueError("the prompt is empty: pass --prompt TEXT or --prompt-ids IDS")
    if max(ids) >= model.config.vocab_size:
        raise ValueError(f"prompt token id {max(ids)} >= vocab_size {model.config.vocab_size} of {path}")
    seed_everything(args.seed)
    generator = torch.Generator(device=device).manual_seed(args.seed)
    idx = torch.tensor([ids], dtype=torch.long, device=device)
    new: list[int] = []
    printed = ""
    for token in stream(
        model,
        idx,
        args.max_new_tokens,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        stop_tokens=args.stop,
        use_cache=not args.no_cache,
        generator=generator,
    ):
        new.append(int(token[0]))
        if tok is not None and args.prompt_ids is None:
            text = tok[1](new)  # decode the whole continuation: a token may be part of a multi-byte character
            sys.stdout.write(text[len(printed) :])
            printed = text
        else:
            sys.stdout.write(f"{new[-1]} ")
        sys.stdout.flush()
    sys.stdout.write("\n")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("generate", help="sample text from a model checkpoint directory", description=HELP)
    p.add_argument("checkpoint", help="directory with config.json and model.safetensors")
    p.add_argument("--prompt", default="", help="text to continue (needs a tokenizer file in the directory)")
    p.add_argument("--prompt-ids", default=None, help="token ids to continue, e.g. '0 17 42'; prints ids")
    p.add_argument("--max-new-tokens", type=int, default=100)
    p.add_argument("--temperature", type=float, default=0.8, help="0 = greedy")
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--top-p", type=float, default=None)
    p.add_argument("--stop", type=int, nargs="*", default=[0], help="stop token ids (default: 0, <|endoftext|>)")
    p.add_argument("--no-cache", action="store_true", help="recompute the whole sequence each step (slow)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cpu, cuda, mps (default: best available)")
    p.set_defaults(func=_run)
