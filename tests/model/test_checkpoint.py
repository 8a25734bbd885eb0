"""Model folders: one save/load for every stage, tied weights stored once, checksums and the tokenizer recorded."""

from __future__ import annotations

import json
import os
import re
import stat

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from llm_from_scratch.model import Transformer
from llm_from_scratch.model.checkpoint import (
    CheckpointError,
    load_model,
    recorded_fingerprint,
    save_model,
)
from llm_from_scratch.model.hf import export_hf
from llm_from_scratch.pipeline import preset_config


def _model() -> Transformer:
    torch.manual_seed(0)
    return Transformer(preset_config("tiny").model).eval()


def _same(a: Transformer, b: Transformer) -> bool:
    x = torch.randint(0, a.config.vocab_size, (1, 8))
    return torch.equal(a(x)[0], b(x)[0])


def test_tied_head_is_stored_once_and_tied_again_on_load(tmp_path):
    model = _model()
    assert model.config.tie_embeddings
    save_model(tmp_path, model, tokenizer_fingerprint="f00d")
    with safe_open(tmp_path / "model.safetensors", "pt") as f:
        names = set(f.keys())
        aliases = json.loads(f.metadata()["aliases"])
    assert "lm_head.weight" not in names and aliases == {"lm_head.weight": "tok_emb.weight"}
    back = load_model(tmp_path)
    assert back.lm_head.weight is back.tok_emb.weight
    assert _same(model, back)
    assert recorded_fingerprint(tmp_path) == "f00d"


def test_wrong_tokenizer_is_one_clear_error(tmp_path):
    save_model(tmp_path, _model(), tokenizer_fingerprint="f00d")
    with pytest.raises(CheckpointError, match="trained with tokenizer f00d, but the tokenizer in use is beef"):
        load_model(tmp_path, tokenizer_fingerprint="beef")
    assert _same(load_model(tmp_path, tokenizer_fingerprint="f00d"), _model())


@pytest.mark.parametrize("cut", [0.5, 0.999])
def test_truncated_or_flipped_weights_name_the_file(tmp_path, cut):
    save_model(tmp_path, _model())
    weights = tmp_path / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(CheckpointError, match=rf"{re.escape(str(weights))}.* corrupt"):
        load_model(tmp_path)


def test_truncated_weights_without_a_manifest_are_still_one_error(tmp_path):
    save_model(tmp_path, _model())
    (tmp_path / "manifest.json").unlink()
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(CheckpointError, match=r"model\.safetensors is corrupt"):
        load_model(tmp_path)


def test_folder_of_the_earlier_native_layout_loads(tmp_path):
    """Before the merge, model folders had no manifest and no alias metadata (the tied head simply left out)."""
    model = _model()
    model.config.save(tmp_path / "config.json")
    sd = {k: v.contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    save_file(sd, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    back = load_model(tmp_path)
    assert _same(model, back) and recorded_fingerprint(tmp_path) is None


def test_hugging_face_export_loads_through_the_same_function(tmp_path):
    model = _model()
    export_hf(model, tmp_path)
    assert _same(model, load_model(tmp_path))


def test_model_folder_has_ordinary_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        path = save_model(tmp_path / "m", _model())
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o755
    assert {stat.S_IMODE(p.stat().st_mode) for p in path.iterdir()} == {0o644}


def test_missing_folder_is_a_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"config\.json not found"):
        load_model(tmp_path / "nope")
