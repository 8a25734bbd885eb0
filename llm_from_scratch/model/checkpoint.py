"""Loading a model from a checkpoint directory: ``config.json`` + ``model.safetensors`` (+ tokenizer files).

Two layouts are recognised by their ``config.json``: the Hugging Face Llama layout written by
:func:`llm_from_scratch.model.hf.export_hf` (``"model_type": "llama"``, HF tensor names), and the native layout
(the fields of :class:`ModelConfig`, our tensor names) written by :func:`save_checkpoint`.
"""

from __future__ import annotations

import json
from pathlib import Path

from llm_from_scratch.model.config import ModelConfig
from llm_from_scratch.model.hf import CONFIG_NAME, WEIGHTS_NAME, load_hf
from llm_from_scratch.model.transformer import Transformer


def save_checkpoint(model: Transformer, out_dir: str | Path) -> Path:
    """Write the native layout: ``config.json`` (ModelConfig fields) and ``model.safetensors`` (our names)."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.config.save(out / CONFIG_NAME)
    sd = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    if model.config.tie_embeddings:
        sd.pop("lm_head.weight")  # the same tensor as tok_emb.weight; safetensors refuses shared storage
    save_file(sd, str(out / WEIGHTS_NAME), metadata={"format": "pt"})
    return out


def load_model(path: str | Path, device: str = "cpu") -> Transformer:
    """A ``Transformer`` in eval mode from either checkpoint layout."""
    from safetensors.torch import load_file

    path = Path(path)
    config_file = path / CONFIG_NAME
    if not config_file.is_file():
        raise FileNotFoundError(
            f"{config_file} not found: pass a checkpoint directory holding {CONFIG_NAME} and {WEIGHTS_NAME} "
            "(written by llm_from_scratch.model.hf.export_hf or llm_from_scratch.model.checkpoint.save_checkpoint)"
        )
    raw = json.loads(config_file.read_text())
    if raw.get("model_type") == "llama":
        return load_hf(path, device).eval()
    config = ModelConfig.from_dict(raw)
    weights = path / WEIGHTS_NAME
    if not weights.is_file():
        raise FileNotFoundError(f"{weights} not found next to {config_file}")
    sd = load_file(str(weights), device=device)
    if config.tie_embeddings:
        sd["lm_head.weight"] = sd["tok_emb.weight"]
    model = Transformer(config).to(device)
    model.load_state_dict(sd)
    return model.eval()
