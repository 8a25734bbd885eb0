"""The ``pretrain`` sub-command is registered and rejects unknown presets."""

from __future__ import annotations

import pytest

from llm_from_scratch.cli import build_parser


def test_pretrain_is_registered():
    args = build_parser().parse_args(["pretrain", "--preset", "tiny", "--quiet"])
    assert args.preset == "tiny" and args.quiet and callable(args.func)


def test_unknown_preset_is_rejected(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["pretrain", "--preset", "huge"])
    assert "invalid choice" in capsys.readouterr().err


def test_run_config_names_the_presets():
    from llm_from_scratch.train.pretrained import run_config

    with pytest.raises(ValueError, match="choose one of"):
        run_config("huge")
    model_config, train_config = run_config("tiny")
    assert train_config.max_steps > 0 and model_config.d_model > 0
