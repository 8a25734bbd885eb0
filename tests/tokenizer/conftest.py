import itertools

import pytest

from llm_from_scratch.data.sources import shakespeare_plays


@pytest.fixture(scope="session")
def plays() -> list[str]:
    """Three real plays (about 400 KB): enough for a few hundred merges in well under a second."""
    return [d.text for d in itertools.islice(shakespeare_plays(), 3)]


@pytest.fixture(scope="session")
def small_bpe(plays):
    from llm_from_scratch.tokenizer.bpe import train_tokenizer

    return train_tokenizer(plays, vocab_size=600)
