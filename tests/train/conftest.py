from __future__ import annotations

import pytest

from llm_from_scratch.pipeline import preset_config

TEXT = (
    "To be, or not to be, that is the question:\n"
    "Whether 'tis nobler in the mind to suffer\n"
    "The slings and arrows of outrageous fortune,\n"
    "Or to take arms against a sea of troubles\n"
    "And by opposing end them. To die: to sleep;\n"
) * 40


@pytest.fixture
def char_data():
    from llm_from_scratch.train.data import char_data

    return char_data(TEXT)


@pytest.fixture
def tiny_config(char_data):

    return preset_config("tiny").model.replace(vocab_size=char_data.vocab_size, context_length=32)
