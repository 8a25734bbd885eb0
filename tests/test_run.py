"""The end-to-end run: config validation, the CLI, and a SIGKILL in the middle of pretraining that the next
invocation resumes to the same final metrics as an uninterrupted run."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llm_from_scratch.pipeline.config import load_config, parse_set, read_config_file

ROOT = Path(__file__).resolve().parents[1]
# the tiny preset with shorter alignment and evaluation: every stage still runs, in about a third of the time
FAST = [
    "sft.steps=60",
    "preferences.n_prompts=128",
    "rlhf.steps=6",
    "eval.cloze_items=20",
    "eval.align_prompts=16",
    "eval.sample_tokens=8",
]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"pretrain": {"max_step": 3}}, "unknown key 'pretrain.max_step'"),
        ({"pretrian": {"max_steps": 3}}, "unknown key 'pretrian'"),
        ({"pretrain": {"max_steps": "many"}}, "pretrain.max_steps must be int"),
        ({"pretrain": {"peak_lr": True}}, "pretrain.peak_lr must be float"),
        ({"run": {"rlhf": "yes"}}, "run.rlhf must be bool"),
        ({"data": {"pipeline": {"toxicty": "off"}}}, "unknown key 'data.pipeline.toxicty'"),
        ({"model": {"n_heads": 3}}, "n_heads=3 does not divide d_model"),
        ({"run": {"device": "tpu"}}, "run.device must be"),
        ({"sft": 3}, "sft must be a table"),
    ],
)
def test_bad_config_fails_fast_naming_the_key(overrides, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        load_config(None, "tiny", overrides)


def test_config_files_toml_and_yaml_agree_and_round_trip(tmp_path):
    from llm_from_scratch.pipeline.config import config_from_dict, dump_yaml

    (tmp_path / "a.toml").write_text('[run]\npreset = "tiny"\n[pretrain]\nmax_steps = 30\npeak_lr = 1\n')
    (tmp_path / "a.yaml").write_text("run: {preset: tiny}\npretrain: {max_steps: 30, peak_lr: 1}\n")
    a, b = load_config(tmp_path / "a.toml"), load_config(tmp_path / "a.yaml")
    assert (
        a == b
        and a.pretrain.max_steps == 30
        and a.pretrain.peak_lr == 1.0
        and a.model == load_config(None, "tiny").model
    )
    (tmp_path / "c.yaml").write_text(dump_yaml(a))
    assert config_from_dict(read_config_file(tmp_path / "c.yaml")) == a  # the recorded config reproduces the run
    with pytest.raises(ValueError, match="contradicts"):
        load_config(tmp_path / "a.toml", "book")
    assert parse_set(["pretrain.max_steps=5", "run.rlhf=false"]) == {
        "pretrain": {"max_steps": 5},
        "run": {"rlhf": False},
    }
    # `3e-4` is a float (PyYAML alone reads it as a string); a name that looks like one stays a string
    assert parse_set(["pretrain.peak_lr=3e-4", "sft.lr=.5", "run.device=e5"]) == {
        "pretrain": {"peak_lr": 3e-4},
        "sft": {"lr": 0.5},
        "run": {"device": "e5"},
    }


def test_stage_keys_change_downstream_only():
    import dataclasses

    from llm_from_scratch.pipeline import Artifacts

    a = load_config(None, "tiny")
    b = dataclasses.replace(a, sft=dataclasses.replace(a.sft, steps=41))
    ka, kb = Artifacts(a), Artifacts(b)
    same = [s for s in ka.stages() if ka.key(s) == kb.key(s)]
    assert same == ["curate", "tokenizer", "shards", "pretrain"]


def _cli(*args, env=None, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "llm_from_scratch", *args], capture_output=True, text=True, timeout=timeout,
        env={**os.environ, **(env or {})}, cwd=ROOT,
    )  # fmt: skip


def test_cli_errors_are_one_clear_line(tmp_path):
    r = _cli("run", "--preset", "tiny", "--set", "pretrain.max_stepz=3", "--workdir", str(tmp_path))
    assert r.returncode == 2 and "unknown key 'pretrain.max_stepz'" in r.stderr and "Traceback" not in r.stderr
    r = _cli("chat", "--preset", "tiny", "--workdir", str(tmp_path / "nothing"))
    assert r.returncode == 2 and "no trained model" in r.stderr and "llm-from-scratch run --preset tiny" in r.stderr
    r = _cli("run", "--preset", "tiny", "--workdir", str(tmp_path), env={"WORLD_SIZE": "2"})  # not via torchrun
    assert r.returncode == 2 and "start the job with torchrun" in r.stderr and not any(tmp_path.iterdir())
    r = _cli(
        "run", "--preset", "tiny", "--set", "run.parallel=none", "--workdir", str(tmp_path), env={"WORLD_SIZE": "2"}
    )
    assert r.returncode == 2 and "run.parallel is 'none'" in r.stderr and not any(tmp_path.iterdir())
    r = _cli("run", "--preset", "tiny", "--set", "run.parallel=zero", "--workdir", str(tmp_path))
    assert r.returncode == 2 and "run.parallel must be one of" in r.stderr
    r = _cli("run", "--preset", "tiny", "--print-config")
    assert r.returncode == 0 and "ckpt_interval: 20" in r.stdout


def _metrics(workdir: Path) -> dict:
    run = json.loads((workdir / "runs" / "tiny" / "run.json").read_text())
    return {k: v["metrics"] for k, v in run["stages"].items()}


def _run(workdir: Path, env: dict) -> subprocess.Popen:
    args = [sys.executable, "-m", "llm_from_scratch", "run", "--preset", "tiny", "--workdir", str(workdir), "--quiet"]
    for s in FAST:
        args += ["--set", s]
    return subprocess.Popen(args, cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


@pytest.mark.timeout(1800)
def test_sigkill_mid_pretraining_resumes_to_the_same_metrics(tmp_path):
    # one thread: the tiny model gains nothing from two, and a shared CI machine punishes oversubscribed OpenMP
    env = {"LLM_FROM_SCRATCH_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    full, killed = tmp_path / "full", tmp_path / "killed"
    p = _run(full, env)
    out = p.communicate(timeout=1500)[0].decode()
    assert p.returncode == 0, out[-3000:]
    assert (full / "runs" / "tiny" / "report.md").exists() and (full / "runs" / "tiny" / "pretrain_loss.png").exists()
    reference = _metrics(full)

    # the second run reuses the finished data stages (same keys), then is killed once pretraining has a checkpoint
    killed.mkdir()
    for stage in ("curate", "tokenizer", "shards"):
        d = next(full.glob(f"{stage}-*"))
        shutil.copytree(d, killed / d.name)
    p = _run(killed, env)
    deadline = time.monotonic() + 600
    pointer = None
    while time.monotonic() < deadline and p.poll() is None:
        pointer = next(killed.glob("pretrain-*/latest.json"), None)
        if pointer is not None:
            break
        time.sleep(0.05)
    assert pointer is not None and p.poll() is None, "pretraining never wrote a checkpoint"
    p.send_signal(signal.SIGKILL)  # no cleanup, no atexit: a power cut
    p.wait()
    step = json.loads(pointer.read_text())["step"]
    assert 0 < step < 60, step
    assert not (pointer.parent / "stage.json").exists()  # the stage did not finish

    p = _run(killed, env)
    out = p.communicate(timeout=1500)[0].decode()
    assert p.returncode == 0, out[-3000:]
    assert "curate: reused" in out and "pretrain: building" in out
    resumed = _metrics(killed)
    for stage in ("pretrain", "sft", "dpo", "eval"):
        a, b = reference[stage], resumed[stage]
        if stage == "pretrain":
            a = {k: v for k, v in a.items() if k not in ("train_seconds", "tok_per_s", "mfu")}
            b = {k: v for k, v in b.items() if k not in ("train_seconds", "tok_per_s", "mfu")}
        assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True), stage


@pytest.mark.timeout(900)
def test_the_same_command_under_torchrun_pretrains_on_every_rank_then_continues_on_rank_0(tmp_path):
    from llm_from_scratch.distributed.launch import run_torchrun

    env = {"LLM_FROM_SCRATCH_CACHE": str(tmp_path / "cache")}
    workdir = tmp_path / "run"
    steps = ["pretrain.max_steps=10", "sft.steps=4", "sft.eval_examples=16"]
    args = ["-m", "llm_from_scratch", "run", "--preset", "tiny", "--workdir", str(workdir), "--quiet"]
    args += [a for s in steps for a in ("--set", s)]
    proc = run_torchrun([*args, "--stop-after", "sft"], nproc_per_node=2, timeout_s=800, env=env)
    out = proc.stdout
    assert out.count("curate: building") == 1 and out.count("pretrain: building") == 1, out[
        -3000:
    ]  # rank 0 alone reports
    pretrain = json.loads(next(workdir.glob("pretrain-*/stage.json")).read_text())["metrics"]
    assert pretrain["parallel"] == {"strategy": "ddp", "world_size": 2}
    assert pretrain["tokens"] == 10 * 8 * 64 * 2  # two ranks of 8 sequences: a global batch of 16
    assert next(workdir.glob("sft-*/stage.json")).exists()  # rank 0 went on alone after pretraining

    # One process with the global batch reaches the same model: the data stages are reused (same keys), the
    # pretraining stage is a new directory (its key records the strategy and the world size).
    one = subprocess.run(
        [sys.executable, *args, "--set", "pretrain.batch_size=16", "--stop-after", "pretrain"],
        cwd=ROOT,
        env={**os.environ, **env, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert one.returncode == 0, (one.stdout + one.stderr)[-3000:]
    assert "shards: reused" in one.stdout
    metrics = [json.loads(d.read_text())["metrics"] for d in workdir.glob("pretrain-*/stage.json")]
    assert len(metrics) == 2
    single = next(m for m in metrics if m["parallel"]["world_size"] == 1)
    assert single["tokens"] == pretrain["tokens"]
    assert abs(single["val_loss"] - pretrain["val_loss"]) < 1e-4, (single["val_loss"], pretrain["val_loss"])
