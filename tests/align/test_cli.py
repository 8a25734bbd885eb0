"""The alignment sub-commands are registered and documented."""

import pytest

from llm_from_scratch.cli import build_parser


@pytest.mark.parametrize("command", ["sft", "dpo", "rlhf"])
def test_subcommand_registered(command, capsys):
    parser = build_parser()
    with pytest.raises(SystemExit) as err:
        parser.parse_args([command, "--help"])
    assert err.value.code == 0
    out = capsys.readouterr().out
    assert "--preset" in out and "--chat" in out
    args = parser.parse_args([command, "--preset", "tiny", "--no-eval"])
    assert args.command == command and args.preset == "tiny" and not args.evaluate


def test_unknown_preset_is_one_clear_error():
    from llm_from_scratch.align import artifacts

    with pytest.raises(ValueError, match="unknown alignment preset"):
        artifacts.sft_run("huge")
