import pytest
import torch

from llm_from_scratch.pipeline import preset_config


@pytest.fixture(scope="session")
def tok():
    """A small BPE (with the five reserved chat tokens) trained on the start of one play."""
    import itertools

    from llm_from_scratch.data.sources import shakespeare_plays
    from llm_from_scratch.tokenizer.bpe import train_tokenizer

    texts = [d.text[:60_000] for d in itertools.islice(shakespeare_plays(), 1)]
    return train_tokenizer(texts, vocab_size=350)


@pytest.fixture
def model(tok):
    from llm_from_scratch.model import Transformer

    torch.manual_seed(0)
    return Transformer(preset_config("tiny").model.replace(vocab_size=tok.vocab_size, context_length=48)).eval()


@pytest.fixture(scope="session")
def docs():
    import itertools

    from llm_from_scratch.data.sources import shakespeare_plays

    return [d.text[:20_000] for d in itertools.islice(shakespeare_plays(), 3)]
