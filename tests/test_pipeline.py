"""The one registry and its resolver: every stage command takes the same flags, and whatever one command built the
others reuse (a stage command then ``run``, or the reverse, trains once)."""

import pytest

from llm_from_scratch.cli import main
from llm_from_scratch.pipeline import REGISTRY, Artifacts

FAST = ["--set", "pretrain.max_steps=6", "--set", "pretrain.ckpt_interval=3", "--set", "pretrain.eval_interval=3"]


@pytest.mark.parametrize("stage", [*REGISTRY, "run", "chat", "generate"])
def test_every_stage_command_rejects_bad_config_before_any_work(stage, tmp_path, capsys):
    root = tmp_path / "root"
    assert main([stage, "--preset", "tiny", "--set", "pretrain.max_stepz=3", "--out", str(root)]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'pretrain.max_stepz'" in err and "max_steps" in err and len(err.strip().splitlines()) == 1
    assert main([stage, "--preset", "tiny", "--set", "sft.lr=fast", "--out", str(root)]) == 2
    assert "sft.lr must be float" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text("[dpo]\nbeta = 0.1\nbetta = 2\n")
    assert main([stage, "--preset", "tiny", "--config", str(bad), "--out", str(root)]) == 2
    assert "unknown key 'dpo.betta'" in capsys.readouterr().err
    assert not root.exists()  # nothing was built or half-written


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("eval.cloze_items=-5", "EvalConfig.cloze_items = -5 is out of range"),
        ("shards.val_fraction=1.5", "ShardConfig.val_fraction = 1.5 is out of range"),
        ("tokenizer.vocab_size=100", "TokenizerConfig.vocab_size = 100 is out of range"),
        ("pretrain.max_steps=0", "TrainConfig.max_steps = 0 is out of range"),
        ("pretrain.batch_size=-1", "TrainConfig.batch_size = -1 is out of range"),
        ("data.max_docs_per_source=0", "CorpusConfig.max_docs_per_source = 0 is out of range"),
        ("run.threads=-2", "run.threads must be >= 0"),
    ],
)
def test_values_out_of_range_fail_before_any_stage(setting, message, tmp_path, capsys):
    assert main(["run", "--preset", "tiny", "--set", setting, "--out", str(tmp_path / "root")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "root").exists()


def test_stage_keys_follow_the_registry():
    art = Artifacts("tiny")
    later = art.replace(dpo={"beta": 0.3})
    assert [s for s in art.stages() if art.key(s) != later.key(s)] == ["dpo", "eval"]  # DPO and what reads it
    earlier = art.replace(sft={"lr": 1e-4})
    assert [s for s in art.stages() if art.key(s) == earlier.key(s)] == ["curate", "tokenizer", "shards", "pretrain"]


@pytest.mark.timeout(900)
def test_pretrain_then_run_trains_once_and_the_reverse(tmp_path, capsys):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    assert main(["pretrain", "--preset", "tiny", "--out", a, *FAST]) == 0
    first = capsys.readouterr().out
    assert "pretrain: building" in first and "pretrain: val loss" in first
    assert main(["run", "--preset", "tiny", "--out", a, "--stop-after", "pretrain", *FAST]) == 0
    out = capsys.readouterr().out
    path = Artifacts("tiny", a, overrides={"pretrain": {"max_steps": 6, "ckpt_interval": 3, "eval_interval": 3}})
    assert f"pretrain: reused {path.dir('pretrain')}" in out and "building" not in out
    # generate with its defaults: on the run directory pretrain printed (its newest checkpoint), filling the context
    assert main(["generate", str(path.dir("pretrain")), "--prompt", "ROMEO", "--seed", "1"]) == 0
    assert len(capsys.readouterr().out.strip()) > 0
    assert main(["generate", "--preset", "tiny", "--out", a, *FAST, "--model", "base", "--prompt", "ROMEO"]) == 0
    assert main(["generate", str(path.dir("pretrain")), "--prompt", "ROMEO", "--max-new-tokens", "500"]) == 2
    assert "--no-cache" in capsys.readouterr().err

    assert main(["run", "--preset", "tiny", "--out", b, "--stop-after", "pretrain", *FAST]) == 0
    assert "pretrain: building" in capsys.readouterr().out
    assert main(["pretrain", "--preset", "tiny", "--out", b, *FAST]) == 0
    out = capsys.readouterr().out
    assert "pretrain: reused" in out and "building" not in out


def test_a_second_process_waits_for_the_builder_then_reuses(tmp_path):
    import subprocess
    import sys
    import time

    from llm_from_scratch.utils import file_lock

    art = Artifacts("tiny", tmp_path)
    lock = tmp_path / f".curate-{art.key('curate')}.lock"
    cmd = [sys.executable, "-m", "llm_from_scratch", "curate", "--preset", "tiny", "--out", str(tmp_path)]
    with file_lock(lock):  # another builder holds the corpus
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        seen = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any("waiting for it" in line for line in seen):
            seen.append(proc.stdout.readline())
        assert any("waiting for it" in line for line in seen), seen
        assert not art.done("curate")  # waiting, not building beside the holder
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0 and art.done("curate"), out[-2000:]
    assert "building" in out  # the lock came free with nothing built: the waiter builds it


def test_a_damaged_artifact_is_refused_with_what_to_delete(tmp_path, capsys):
    art = Artifacts("tiny", tmp_path)
    corpus = art.corpus_path()
    assert main(["curate", "--preset", "tiny", "--out", str(tmp_path), "--quiet"]) == 0  # found intact
    corpus.write_text(corpus.read_text().replace("e", "E", 1))  # one flipped byte after the stage finished
    assert main(["tokenizer", "--preset", "tiny", "--out", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "corpus.jsonl: its SHA-256 does not match" in err and f"delete {corpus.parent}" in err
