"""Checkpoints without pickle, written atomically.

A checkpoint is a directory of four files:

- ``model.safetensors``: the weights (a tied output head is stored once, its alias kept in the metadata);
- ``config.json``: the ``ModelConfig``, so the model can be rebuilt without the code that trained it;
- ``train_state.safetensors``: every tensor of the training state (AdamW moments, torch/CUDA/NumPy RNG states);
- ``train_state.json``: everything else (step, optimiser hyper-parameters, Python RNG, data position, the training
  config, the tokenizer fingerprint, and SHA-256 checksums of both safetensors files).

The directory is assembled under a temporary name and renamed into place, and the pointer ``latest.json`` is
replaced atomically afterwards: a run killed at any instant leaves the previous checkpoint intact and current.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from llm_from_scratch.utils import atomic_path

MODEL_FILE, CONFIG_FILE = "model.safetensors", "config.json"
STATE_TENSORS, STATE_JSON = "train_state.safetensors", "train_state.json"
LATEST = "latest.json"
FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used: missing, corrupt, or made for another model / tokenizer."""


# ---------------------------------------------------------------- model weights


def model_tensors(model: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The state dict with shared tensors (a tied head) kept once, plus ``{alias: stored name}``."""
    tensors, aliases, seen = {}, {}, {}
    for name, t in model.state_dict().items():
        key = (t.data_ptr(), t.shape, t.stride()) if t.numel() else (name,)
        if key in seen:
            aliases[name] = seen[key]
            continue
        seen[key] = name
        tensors[name] = t.detach().cpu().contiguous()
    return tensors, aliases


def save_model(directory: str | os.PathLike, model: nn.Module, config: Any) -> Path:
    """Write ``model.safetensors`` and ``config.json`` (no training state) atomically into ``directory``."""
    return _write_dir(Path(directory), lambda tmp: _write_model_files(tmp, model, config))


def _write_model_files(tmp: Path, model: nn.Module, config: Any) -> dict[str, str]:
    tensors, aliases = model_tensors(model)
    save_file(tensors, tmp / MODEL_FILE, metadata={"format": "llm_from_scratch", "aliases": json.dumps(aliases)})
    cfg = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    (tmp / CONFIG_FILE).write_text(json.dumps(cfg, indent=2) + "\n")
    return {MODEL_FILE: _sha256(tmp / MODEL_FILE)}


def load_model_weights(directory: str | os.PathLike, model: nn.Module, strict_config: bool = True) -> None:
    """Load ``model.safetensors`` into ``model`` after checking ``config.json`` against ``model.config``."""
    directory = Path(directory)
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
    tensors = _load_safetensors(directory / MODEL_FILE)
    aliases = json.loads(_metadata(directory / MODEL_FILE).get("aliases", "{}"))
    for alias, name in aliases.items():
        tensors[alias] = tensors[name]
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as err:
        first = str(err).strip().splitlines()
        raise CheckpointError(
            f"checkpoint {directory} does not fit this model: {' '.join(s.strip() for s in first[:4])}; "
            "use a checkpoint written for this model configuration"
        ) from None


def read_config(directory: str | os.PathLike) -> dict:
    path = Path(directory) / CONFIG_FILE
    return _read_json(path)


def load_model(directory: str | os.PathLike, device: str = "cpu"):
    """Rebuild the ``Transformer`` from ``config.json`` and load its weights: what later chapters call."""
    from llm_from_scratch.model import ModelConfig, Transformer

    directory = Path(directory)
    try:
        config = ModelConfig.from_dict(read_config(directory))
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"checkpoint {directory}: {CONFIG_FILE} is not a valid ModelConfig: {err}") from None
    model = Transformer(config)
    load_model_weights(directory, model)
    return model.to(device).eval()


# ---------------------------------------------------------------- full training checkpoints


def save_checkpoint(
    run_dir: str | os.PathLike,
    step: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    config: Any,
    state: dict | None = None,
    keep: int = 2,
) -> Path:
    """Write checkpoint ``run_dir/step-XXXXXXXX`` atomically, point ``latest.json`` at it, prune old ones.

    ``state`` is JSON-serialisable extra state (data position, training config, tokenizer fingerprint...).
    """
    run_dir = Path(run_dir)
    name = f"step-{step:08d}"

    def write(tmp: Path) -> None:
        checksums = _write_model_files(tmp, model, config)
        tensors, meta = training_state(optimizer)
        save_file(tensors, tmp / STATE_TENSORS)
        checksums[STATE_TENSORS] = _sha256(tmp / STATE_TENSORS)
        payload = {"format_version": FORMAT_VERSION, "step": step, **meta, **(state or {}), "sha256": checksums}
        (tmp / STATE_JSON).write_text(json.dumps(payload, indent=1) + "\n")

    path = _write_dir(run_dir / name, write)
    with atomic_path(run_dir / LATEST) as tmp:
        tmp.write_text(json.dumps({"checkpoint": name, "step": step}) + "\n")
    _prune(run_dir, keep)
    return path


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The checkpoint ``latest.json`` points to, or ``None`` for a run that has not saved one yet."""
    pointer = Path(run_dir) / LATEST
    if not pointer.exists():
        return None
    name = _read_json(pointer).get("checkpoint")
    path = Path(run_dir) / str(name)
    if not name or not path.is_dir():
        raise CheckpointError(f"{pointer} points to {path}, which does not exist; delete {pointer} to start over")
    return path


def load_checkpoint(
    directory: str | os.PathLike,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    expect: dict | None = None,
    restore_rng: bool = True,
) -> dict:
    """Load weights, optimiser state and RNG states from ``directory``; return the JSON training state.

    ``expect`` maps keys of the JSON state (e.g. ``tokenizer_fingerprint``) to the values this run requires; any
    difference is one :class:`CheckpointError` that names the key. Nothing is unpickled.
    """
    directory = Path(directory)
    for f in (MODEL_FILE, CONFIG_FILE, STATE_TENSORS, STATE_JSON):
        if not (directory / f).is_file():
            raise CheckpointError(f"checkpoint {directory} is incomplete: {f} is missing; resume from another one")
    state = _read_json(directory / STATE_JSON)
    for f, digest in state.get("sha256", {}).items():
        if _sha256(directory / f) != digest:
            raise CheckpointError(
                f"checkpoint {directory} is corrupt: the SHA-256 of {f} does not match the one recorded at save "
                "time; delete this checkpoint and resume from an earlier one"
            )
    for key, value in (expect or {}).items():
        if state.get(key) != value:
            raise CheckpointError(
                f"checkpoint {directory} does not match this run: {key} is {state.get(key)!r} in the checkpoint "
                f"but {value!r} here; resume with the same settings or start a new run directory"
            )
    load_model_weights(directory, model)
    tensors = _load_safetensors(directory / STATE_TENSORS)
    if optimizer is not None:
        restore_training_state(optimizer, tensors, state, model)
    if restore_rng:
        _restore_rng(tensors, state)
    return state


def training_state(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Split the optimiser state and the RNG states into safetensors-ready tensors and JSON-ready values."""
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict] = {}
    for idx, st in sd["state"].items():
        for key, value in st.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{idx}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(idx), {})[key] = value
    groups = [{k: list(v) if isinstance(v, tuple) else v for k, v in g.items()} for g in sd["param_groups"]]
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    np_state = np.random.get_state()
    tensors["rng.numpy"] = torch.from_numpy(np_state[1].astype(np.int64))
    py_state = random.getstate()
    meta = {
        "optimizer": {"param_groups": groups, "scalars": scalars},
        "rng": {"python": [py_state[0], list(py_state[1]), py_state[2]], "numpy": list(np_state[2:])},
    }
    return tensors, meta


def restore_training_state(optimizer: torch.optim.Optimizer, tensors: dict, state: dict, model: nn.Module) -> None:
    saved = state["optimizer"]
    groups = []
    for g in saved["param_groups"]:
        groups.append({k: tuple(v) if k == "betas" else v for k, v in g.items()})
    if [len(g["params"]) for g in groups] != [len(g["params"]) for g in optimizer.param_groups]:
        raise CheckpointError(
            "the optimiser in the checkpoint has parameter groups of sizes "
            f"{[len(g['params']) for g in groups]} but this run's has "
            f"{[len(g['params']) for g in optimizer.param_groups]}; the model or the grouping changed"
        )
    per_param: dict[int, dict] = {}
    for name, t in tensors.items():
        if name.startswith("optim."):
            _, idx, key = name.split(".", 2)
            per_param.setdefault(int(idx), {})[key] = t
    for idx, values in saved["scalars"].items():
        per_param.setdefault(int(idx), {}).update(values)
    try:
        optimizer.load_state_dict({"state": per_param, "param_groups": groups})
    except (ValueError, RuntimeError, KeyError) as err:
        raise CheckpointError(f"the optimiser state in the checkpoint does not fit this run: {err}") from None


def _restore_rng(tensors: dict, state: dict) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("rng.cuda.")]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    version, internal, gauss = state["rng"]["python"]
    random.setstate((version, tuple(internal), gauss))
    pos, has_gauss, cached = state["rng"]["numpy"]
    np.random.set_state(("MT19937", tensors["rng.numpy"].numpy().astype(np.uint32), pos, has_gauss, cached))


# ---------------------------------------------------------------- helpers


def _write_dir(final: Path, write) -> Path:
    """Build a directory under a temporary name next to ``final``, fsync it, then rename it into place."""
    final.parent.mkdir(parents=True, exist_ok=True)
    _clean_stale_temps(final.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        write(tmp)
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        if final.exists():  # re-saving the same step: the old copy goes only after the new one is complete
            old = final.with_name(f".{final.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
        _fsync_dir(final.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _clean_stale_temps(parent: Path) -> None:
    """Remove temporary directories left behind by a writer that was killed (they are never read)."""
    for p in parent.glob(".*.tmp"):
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)


def _prune(run_dir: Path, keep: int) -> None:
    steps = sorted(p for p in run_dir.glob("step-*") if p.is_dir())
    for p in steps[:-keep] if keep > 0 else []:
        shutil.rmtree(p, ignore_errors=True)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing; is {path.parent} a checkpoint directory?") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path} is corrupt (not valid JSON: {err}); delete the checkpoint") from None


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(path)
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing; is {path.parent} a checkpoint directory?") from None
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path} is corrupt ({err}); delete the checkpoint and use an earlier one") from None


def _metadata(path: Path) -> dict:
    from safetensors import safe_open

    try:
        with safe_open(path, "pt") as f:
            return f.metadata() or {}
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{path} is corrupt ({err}); delete the checkpoint and use an earlier one") from None
