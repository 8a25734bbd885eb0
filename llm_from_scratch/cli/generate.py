"""`llm-from-scratch generate`: sample text from a checkpoint directory, streaming tokens as they come."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from llm_from_scratch.cli.common import add_common_args

HELP = """Generate text from a checkpoint directory with config.json + model.safetensors. Both layouts load: the
Hugging Face Llama export (llm_from_scratch.model.hf.export_hf; also loads in transformers) and the native one
(llm_from_scratch.model.checkpoint.save_checkpoint). The prompt is encoded with --tokenizer FILE, else the
directory's tokenizer.json / tokenizer.model, else the tokenizer of the run the checkpoint belongs to (a run's
tokenizer-*/ stage, or the artifact cache's tokenizer whose fingerprint the checkpoint recorded); without any,
pass token ids with --prompt-ids."""


def _load(file: Path):
    """(encode, decode, fingerprint or None) of a tokenizer file: Hugging Face `tokenizer.json`, the book's BPE
    JSON, or a sentencepiece `.model`."""
    from llm_from_scratch.tokenizer.build import load_tokenizer

    if file.suffix == ".json":
        from llm_from_scratch.tokenizer.bpe import read_json_object

        fmt = read_json_object(file, "tokenizer file", "pass another --tokenizer").get("format")
        if fmt is None:  # no "format" key: a Hugging Face tokenizers file (what export_hf writes)
            from tokenizers import Tokenizer

            tok = Tokenizer.from_file(str(file))
            return (lambda s: tok.encode(s).ids), (lambda ids: tok.decode(ids)), None
    tok = load_tokenizer(file)
    return tok.encode, tok.decode, tok.fingerprint


def _tokenizer(path: Path, explicit: str | None = None):
    """(encode, decode) for the checkpoint in `path`, or None when no tokenizer can be found."""
    from llm_from_scratch.model.checkpoint import recorded_fingerprint
    from llm_from_scratch.utils import cache_dir

    recorded = recorded_fingerprint(path)  # the model folder's manifest, or a training checkpoint's state
    if explicit is not None:
        file = Path(explicit)
        if not file.is_file():
            raise FileNotFoundError(f"--tokenizer {file}: no such file")
        candidates = [file]
    else:
        candidates = [path / "tokenizer.json", path / "tokenizer.model"]
        for parent in list(path.resolve().parents)[:3]:  # WORKDIR/pretrain-KEY/step-N, WORKDIR/sft-KEY/model
            candidates += sorted(parent.glob("tokenizer-*/tokenizer.*"))
        if recorded is not None:  # a checkpoint of the cached pretraining runs: its tokenizer is in the cache
            candidates += sorted(cache_dir().glob("tokenizer-*/tokenizer.*"))
    for file in (c for c in candidates if c.is_file() and c.suffix in (".json", ".model")):
        encode, decode, fingerprint = _load(file)
        if recorded is None or fingerprint is None or fingerprint == recorded:
            return encode, decode
        if explicit is not None:
            raise ValueError(
                f"--tokenizer {file} has fingerprint {fingerprint}, but {path} was trained with tokenizer "
                f"{recorded}: its ids would mean other tokens; pass the tokenizer the model was trained with"
            )
    return None


def checkpoint_dir(path: Path) -> Path:
    """The weights folder a user may mean by `path`: itself, a stage's `model/`, or the newest intact checkpoint
    of a pretraining run directory (what `llm-from-scratch pretrain` prints)."""
    from llm_from_scratch.train.checkpoint import latest_checkpoint

    if (path / "config.json").is_file() or not path.is_dir():
        return path
    if (path / "model" / "config.json").is_file():
        return path / "model"
    ckpt = latest_checkpoint(path)
    if ckpt is None:
        raise FileNotFoundError(f"{path} holds no model: pass a checkpoint folder (config.json + model.safetensors)")
    return ckpt


def _model_folder(args: argparse.Namespace) -> Path:
    """CHECKPOINT as given, or the --model of the pipeline the configuration flags describe."""
    if args.checkpoint is not None:
        return checkpoint_dir(Path(args.checkpoint))
    from llm_from_scratch.cli.common import artifacts
    from llm_from_scratch.pipeline.run import find_model

    art = artifacts(args)
    return art.model_dir(find_model(art, args.model)[2])


def _run(args: argparse.Namespace) -> int:
    import torch

    from llm_from_scratch.model.checkpoint import load_model
    from llm_from_scratch.model.generate import stream
    from llm_from_scratch.utils import pick_device, seed_everything

    device = pick_device(args.device)
    if args.gguf:  # a real pretrained model (a Llama GGUF file, or 'smollm2'), run by the book's own code
        from llm_from_scratch.model.gguf import load_gguf
        from llm_from_scratch.model.quant import prepare_decode

        model, gguf_tok, _ = load_gguf(args.gguf, device)
        prepare_decode(model)  # the one-call fp32 decode step of chapter 17 (same tokens; skipped off the CPU)
        path, tok = Path(args.gguf), (gguf_tok.encode, gguf_tok.decode)
        if args.stop == [0]:  # the default: stop on the file's own end-of-text token
            args.stop = [gguf_tok.eot_id]
    else:
        path = _model_folder(args)
        model = load_model(path, device)
        tok = _tokenizer(path, args.tokenizer)
    if args.prompt_ids is not None:
        ids = [int(t) for t in args.prompt_ids.replace(",", " ").split()]
    elif tok is not None:
        ids = tok[0](args.prompt)
    else:
        raise FileNotFoundError(
            f"no tokenizer found for {path} (none in the directory, its run, or the artifact cache with the "
            "fingerprint it was trained with): pass --tokenizer FILE or token ids with --prompt-ids"
        )
    if not ids:
        raise ValueError("the prompt is empty: pass --prompt TEXT or --prompt-ids IDS")
    if max(ids) >= model.config.vocab_size:
        raise ValueError(f"prompt token id {max(ids)} >= vocab_size {model.config.vocab_size} of {path}")
    room = model.config.context_length - len(ids)
    n_new = args.max_new_tokens if args.max_new_tokens is not None else max(room, 1)
    if n_new > room and not args.no_cache:
        raise ValueError(
            f"the prompt ({len(ids)} tokens) plus --max-new-tokens {n_new} exceed the context of {path} "
            f"({model.config.context_length} tokens): lower --max-new-tokens, or pass --no-cache to slide a window"
        )
    seed_everything(args.seed)
    generator = torch.Generator(device=device).manual_seed(args.seed)
    idx = torch.tensor([ids], dtype=torch.long, device=device)
    new: list[int] = []
    printed = ""
    for token in stream(
        model,
        idx,
        n_new,
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
    p.add_argument(
        "checkpoint",
        nargs="?",
        help="directory with config.json and model.safetensors (default: the "
        "--model of the pipeline the configuration flags describe)",
    )
    p.add_argument("--model", choices=["base", "sft", "dpo", "rlhf"], help="without CHECKPOINT: which model")
    p.add_argument("--prompt", default="", help="text to continue (needs a tokenizer, see above)")
    p.add_argument("--tokenizer", default=None, help="tokenizer file (tokenizer.json or .model) to encode with")
    p.add_argument("--prompt-ids", default=None, help="token ids to continue, e.g. '0 17 42'; prints ids")
    p.add_argument("--max-new-tokens", type=int, default=None, help="default: fill the model's context")
    p.add_argument("--temperature", type=float, default=0.8, help="0 = greedy")
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--top-p", type=float, default=None)
    p.add_argument("--stop", type=int, nargs="*", default=[0], help="stop token ids (default: 0, <|endoftext|>)")
    p.add_argument("--gguf", metavar="FILE", help="a GGUF model instead of a checkpoint ('smollm2': the bundled one)")
    p.add_argument("--no-cache", action="store_true", help="recompute the whole sequence each step (slow)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cpu, cuda, mps (default: best available)")
    add_common_args(p)
    p.set_defaults(func=_run)
