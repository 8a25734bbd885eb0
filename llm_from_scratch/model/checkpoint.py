"""Model folders: the one way the package saves and loads a model's weights, without pickle, written atomically.

A model folder holds

- `model.safetensors`: the weights; tensors that share storage (a tied output head) are stored once and the
  alias is kept in the file's metadata, because safetensors refuses shared storage;
- `config.json`: the `ModelConfig` fields, so the model can be rebuilt without the code that trained it;
- `manifest.json`: the SHA-256 of `model.safetensors` (checked on load) and the fingerprint of the tokenizer
  the model was trained with (a model read with another tokenizer answers gibberish, so that is refused).

A Hugging Face Llama folder written by `llm_from_scratch.model.hf.export_hf` (`"model_type": "llama"` in its
`config.json`) loads through the same `load_model`. Training checkpoints
(`llm_from_scratch.train.checkpoint`) are model folders plus the optimiser and RNG state.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from llm_from_scratch.utils import current_umask

MODEL_FILE, CONFIG_FILE, MANIFEST_FILE = "model.safetensors", "config.json", "manifest.json"
FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    """A model folder or checkpoint that cannot be used: missing, corrupt, or made for another model / tokenizer."""


# ---------------------------------------------------------------- saving


def model_tensors(model: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The state dict with shared tensors (a tied head) kept once, plus `{alias: stored name}`."""
    tensors, aliases, seen = {}, {}, {}
    for name, t in model.state_dict().items():
        key = (t.data_ptr(), t.shape, t.stride()) if t.numel() else (name,)
        if key in seen:
            aliases[name] = seen[key]
            continue
        seen[key] = name
        tensors[name] = t.detach().cpu().contiguous()
    return tensors, aliases


def save_model(
    directory: str | os.PathLike, model: nn.Module, config: Any = None, tokenizer_fingerprint: str | None = None
) -> Path:
    """Write a model folder (weights, `config.json`, manifest) atomically; `config` defaults to `model.config`.

    Pass `tokenizer_fingerprint` (`tokenizer.fingerprint`) for every model trained on tokens, so that
    `load_model` can refuse the wrong tokenizer."""
    config = model.config if config is None else config
    return write_dir(Path(directory), lambda tmp: write_model_files(tmp, model, config, tokenizer_fingerprint))


def write_model_files(tmp: Path, model: nn.Module, config: Any, tokenizer_fingerprint: str | None) -> dict[str, str]:
    """Write the three files of a model folder into `tmp`; return `{file: sha256}` of the weights."""
    tensors, aliases = model_tensors(model)
    save_file(tensors, tmp / MODEL_FILE, metadata={"format": "llm_from_scratch", "aliases": json.dumps(aliases)})
    cfg = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    (tmp / CONFIG_FILE).write_text(json.dumps(cfg, indent=2) + "\n")
    checksums = {MODEL_FILE: sha256(tmp / MODEL_FILE)}
    manifest = {"format_version": FORMAT_VERSION, "tokenizer_fingerprint": tokenizer_fingerprint, "sha256": checksums}
    (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1) + "\n")
    return checksums


# ---------------------------------------------------------------- loading


def read_config(directory: str | os.PathLike) -> dict:
    return read_json(Path(directory) / CONFIG_FILE)


def recorded_fingerprint(directory: str | os.PathLike) -> str | None:
    """The tokenizer fingerprint a model folder was saved with (`None` for folders that recorded none)."""
    directory = Path(directory)
    for name in (MANIFEST_FILE, "train_state.json"):  # older training checkpoints kept it in their state only
        if (directory / name).is_file():
            found = read_json(directory / name).get("tokenizer_fingerprint")
            if found:
                return str(found)
    return None


def check_tokenizer(directory: str | os.PathLike, tokenizer_fingerprint: str | None, source: str = "") -> None:
    """One `CheckpointError` when `directory` recorded another tokenizer than `tokenizer_fingerprint`."""
    recorded = recorded_fingerprint(directory)
    if tokenizer_fingerprint is None or recorded is None or recorded == tokenizer_fingerprint:
        return
    where = f" ({source})" if source else ""
    raise CheckpointError(
        f"{directory} was trained with tokenizer {recorded}, but the tokenizer in use{where} is "
        f"{tokenizer_fingerprint}; use the tokenizer the model was trained with"
    )


def verify_model_files(directory: str | os.PathLike) -> None:
    """Check that the weights exist and match the SHA-256 in the manifest (folders without one: existence only)."""
    directory = Path(directory)
    for name in (CONFIG_FILE, MODEL_FILE):
        if not (directory / name).is_file():
            raise CheckpointError(f"model folder {directory} is incomplete: {name} is missing; save the model again")
    if not (directory / MANIFEST_FILE).is_file():
        return
    for name, digest in read_json(directory / MANIFEST_FILE).get("sha256", {}).items():
        if sha256(directory / name) != digest:
            raise CheckpointError(
                f"{directory / name} is corrupt: its SHA-256 does not match the one recorded at save time; "
                "delete this folder and use an earlier copy or train it again"
            )


def load_model_weights(directory: str | os.PathLike, model: nn.Module, strict_config: bool = True) -> None:
    """Load `model.safetensors` into `model` after checking `config.json` against `model.config`."""
    directory = Path(directory)
    verify_model_files(directory)
    if strict_config and hasattr(model, "config"):
        saved = read_config(directory)
        ours = model.config.to_dict() if hasattr(model.config, "to_dict") else dict(vars(model.config))
        diff = {k: (saved.get(k), v) for k, v in ours.items() if saved.get(k) != v}
        if diff:
            fields = ", ".join(f"{k}: checkpoint {a!r} vs model {b!r}" for k, (a, b) in sorted(diff.items()))
            raise CheckpointError(
                f"checkpoint {directory} was made for a different model ({fields}); build the model from its "
                f"{CONFIG_FILE} (load_model) or point to a checkpoint of this model"
            )
    tensors = load_safetensors(directory / MODEL_FILE)
    aliases = json.loads(safetensors_metadata(directory / MODEL_FILE).get("aliases", "{}"))
    for alias, name in aliases.items():
        tensors[alias] = tensors[name]
    if getattr(getattr(model, "config", None), "tie_embeddings", False) and "lm_head.weight" not in tensors:
        tensors["lm_head.weight"] = tensors.get("tok_emb.weight")  # folders written before aliases were recorded
    try:
        model.load_state_dict(tensors, strict=True)
    except (RuntimeError, TypeError) as err:
        first = str(err).strip().splitlines()
        raise CheckpointError(
            f"checkpoint {directory} does not fit this model: {' '.join(s.strip() for s in first[:4])}; "
            "use a checkpoint written for this model configuration"
        ) from None


def load_model(directory: str | os.PathLike, device: str = "cpu", tokenizer_fingerprint: str | None = None):
    """A `Transformer` in eval mode from a model folder (ours or Hugging Face Llama).

    With `tokenizer_fingerprint`, a folder that recorded another tokenizer is refused (`check_tokenizer`)."""
    from llm_from_scratch.model.config import ModelConfig
    from llm_from_scratch.model.transformer import Transformer

    directory = Path(directory)
    if not (directory / CONFIG_FILE).is_file():
        raise FileNotFoundError(
            f"{directory / CONFIG_FILE} not found: pass a model folder holding {CONFIG_FILE} and {MODEL_FILE} "
            "(a step-XXXXXXXX folder of a pretraining run, the model/ folder of an alignment stage, or an export)"
        )
    raw = read_config(directory)
    if raw.get("model_type") == "llama":
        from llm_from_scratch.model.hf import load_hf

        verify_model_files(directory)
        try:
            return load_hf(directory, device).eval()
        except (SafetensorError, OSError, KeyError, ValueError) as err:
            raise CheckpointError(f"{directory / MODEL_FILE} cannot be loaded ({err}); export it again") from None
    check_tokenizer(directory, tokenizer_fingerprint)
    try:
        config = ModelConfig.from_dict(raw)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{directory / CONFIG_FILE} is not a valid ModelConfig: {err}") from None
    model = Transformer(config)
    load_model_weights(directory, model)
    return model.to(device).eval()


# ---------------------------------------------------------------- helpers shared with train.checkpoint


def write_dir(final: Path, write: Callable[[Path], Any]) -> Path:
    """Build a directory under a temporary name next to `final`, fsync it, then rename it into place."""
    final.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(final)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        write(tmp)
        mask = current_umask()
        for f in tmp.iterdir():
            if f.is_file():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
                os.chmod(f, 0o666 & ~mask)  # safetensors writes 0600; the folder is as readable as any other file
        os.chmod(tmp, 0o777 & ~mask)  # mkdtemp makes 0700
        if final.exists():  # re-saving the same folder: the old copy goes only after the new one is complete
            old = final.with_name(f".{final.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
        fsync_dir(final.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def clean_stale_temps(final: Path) -> None:
    """Remove temporary copies of `final` left by a writer that was killed (they are never read).

    Only temporaries of this one folder: another writer's folder next to it may be in progress."""
    for p in final.parent.glob(f".{final.name}.*.tmp"):
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)


def fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing; is {path.parent} a model folder?") from None
    except OSError as err:
        raise CheckpointError(f"{path} cannot be read ({err.strerror}); check its permissions") from None
    return h.hexdigest()


def read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing; is {path.parent} a model folder?") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path} is corrupt (not valid JSON: {err}); delete the folder") from None
    except OSError as err:
        raise CheckpointError(f"{path} cannot be read ({err.strerror}); check its permissions") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} is corrupt (a JSON object was expected); delete the folder")
    return data


def load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(path)
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing; is {path.parent} a model folder?") from None
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path} is corrupt ({err}); delete it and use an earlier copy") from None


def safetensors_metadata(path: Path) -> dict:
    from safetensors import safe_open

    try:
        with safe_open(path, "pt") as f:
            return f.metadata() or {}
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{path} is corrupt ({err}); delete it and use an earlier copy") from None
