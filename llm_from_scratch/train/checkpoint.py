"""Training checkpoints without pickle, written atomically, and resume that skips a damaged one.

A checkpoint is a model folder (`llm_from_scratch.model.checkpoint`: `model.safetensors`, `config.json`,
`manifest.json`) plus the training state:

- `train_state.safetensors`: every tensor of the training state (AdamW moments, torch/CUDA/NumPy RNG states);
- `train_state.json`: everything else (step, optimiser hyper-parameters, Python RNG, data position, the training
  config, the tokenizer fingerprint, and SHA-256 checksums of both safetensors files).

The directory is assembled under a temporary name and renamed into place, and the pointer `latest.json` is
replaced atomically afterwards: a run killed at any instant leaves the previous checkpoint intact and current.
A checkpoint that fails verification anyway (a disk error, a file deleted by hand) is skipped by
`latest_checkpoint`, which falls back to the newest intact one and says so on stderr.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from llm_from_scratch.model.checkpoint import (
    CONFIG_FILE,
    MODEL_FILE,
    CheckpointError,
    check_tokenizer,
    load_model,
    load_model_weights,
    load_safetensors,
    read_json,
    save_model,
    sha256,
    write_dir,
    write_model_files,
)
from llm_from_scratch.utils import atomic_path

# the model-folder functions are re-exported: a training checkpoint is a model folder
__all__ = [
    "CheckpointError",
    "check_tokenizer",
    "latest_checkpoint",
    "load_checkpoint",
    "load_model",
    "load_model_weights",
    "save_checkpoint",
    "save_model",
    "verify_checkpoint",
]

STATE_TENSORS, STATE_JSON = "train_state.safetensors", "train_state.json"
LATEST = "latest.json"
FORMAT_VERSION = 1
log = logging.getLogger(__name__)


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
    """Write checkpoint `run_dir/step-XXXXXXXX` atomically, point `latest.json` at it, prune old ones.

    `state` is JSON-serialisable extra state (data position, training config, tokenizer fingerprint...); its
    `tokenizer_fingerprint` is also recorded in the model folder's manifest.
    """
    from safetensors.torch import save_file

    run_dir = Path(run_dir)
    name = f"step-{step:08d}"

    def write(tmp: Path) -> None:
        checksums = write_model_files(tmp, model, config, (state or {}).get("tokenizer_fingerprint"))
        tensors, meta = training_state(optimizer)
        save_file(tensors, tmp / STATE_TENSORS)
        checksums[STATE_TENSORS] = sha256(tmp / STATE_TENSORS)
        payload = {"format_version": FORMAT_VERSION, "step": step, **meta, **(state or {}), "sha256": checksums}
        (tmp / STATE_JSON).write_text(json.dumps(payload, indent=1) + "\n")

    path = write_dir(run_dir / name, write)
    with atomic_path(run_dir / LATEST) as tmp:
        tmp.write_text(json.dumps({"checkpoint": name, "step": step}) + "\n")
    _prune(run_dir, keep)
    return path


def verify_checkpoint(directory: str | os.PathLike) -> dict:
    """The JSON training state of `directory` after checking that every file is there and matches its SHA-256;
    one `CheckpointError` saying what is wrong otherwise."""
    directory = Path(directory)
    for f in (MODEL_FILE, CONFIG_FILE, STATE_TENSORS, STATE_JSON):
        if not (directory / f).is_file():
            raise CheckpointError(f"checkpoint {directory} is incomplete: {f} is missing; resume from another one")
    state = read_json(directory / STATE_JSON)
    for f, digest in state.get("sha256", {}).items():
        if sha256(directory / f) != digest:
            raise CheckpointError(
                f"checkpoint {directory} is corrupt: the SHA-256 of {f} does not match the one recorded at save "
                "time; delete this checkpoint and resume from an earlier one"
            )
    return state


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The newest intact checkpoint of `run_dir`, or `None` for a run that has not saved one yet.

    `latest.json` names the current checkpoint. When it is missing, unreadable, points to a folder that is gone,
    or its checkpoint fails `verify_checkpoint`, the newest `step-*` folder that verifies is used instead
    and a warning names what was skipped and why: a damaged last checkpoint costs the steps since the one before
    it, not the whole run. When checkpoints exist but none verifies, that is one `CheckpointError`; when
    none is left at all (deleted by hand), the run starts over.
    """
    run_dir = Path(run_dir)
    pointer = run_dir / LATEST
    steps = sorted((p for p in run_dir.glob("step-*") if p.is_dir()), reverse=True)
    candidates: list[Path] = []
    skipped: list[str] = []
    if pointer.exists():
        try:
            name = str(read_json(pointer).get("checkpoint") or "")
        except CheckpointError as err:
            skipped.append(str(err))
            name = ""
        if name and (run_dir / name).is_dir():
            candidates.append(run_dir / name)
        elif name:
            skipped.append(f"{pointer} points to {run_dir / name}, which does not exist")
    elif not steps:
        return None
    candidates += [p for p in steps if p not in candidates]
    for path in candidates:
        try:
            verify_checkpoint(path)
        except CheckpointError as err:
            skipped.append(str(err).split("; ")[0])
            continue
        if skipped:
            log.warning("%s; resuming from %s instead", "; ".join(skipped), path)
        return path
    if not candidates:  # every checkpoint was deleted: the run starts over
        if skipped:
            log.warning("%s and no step-* checkpoint is left; starting from step 0", "; ".join(skipped))
        return None
    found = ", ".join(p.name for p in candidates) or "none"
    raise CheckpointError(
        f"{run_dir} holds no intact checkpoint (checkpoints: {found}): {'; '.join(skipped)}; "
        f"delete {pointer} and the step-* folders to start over"
    )


def load_checkpoint(
    directory: str | os.PathLike,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    expect: dict | None = None,
    restore_rng: bool = True,
) -> dict:
    """Load weights, optimiser state and RNG states from `directory`; return the JSON training state.

    `expect` maps keys of the JSON state (e.g. `tokenizer_fingerprint`) to the values this run requires; any
    difference is one `CheckpointError` that names the key. Nothing is unpickled.
    """
    directory = Path(directory)
    state = verify_checkpoint(directory)
    for key, value in (expect or {}).items():
        if state.get(key) != value:
            raise CheckpointError(
                f"checkpoint {directory} does not match this run: {key} is {state.get(key)!r} in the checkpoint "
                f"but {value!r} here; resume with the same settings or start a new run directory"
            )
    load_model_weights(directory, model)
    tensors = load_safetensors(directory / STATE_TENSORS)
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


def _prune(run_dir: Path, keep: int) -> None:
    steps = sorted(p for p in run_dir.glob("step-*") if p.is_dir())
    for p in steps[:-keep] if keep > 0 else []:
        shutil.rmtree(p, ignore_errors=True)
