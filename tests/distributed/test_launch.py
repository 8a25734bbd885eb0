"""Setup, launch commands, and failure modes: a crashed, stuck or missing rank is an error, not a hang."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from llm_from_scratch.cli import main
from llm_from_scratch.distributed.launch import pick_backend, setup_distributed, torchrun_command


def test_plain_process_is_a_world_of_one(monkeypatch):
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    env = setup_distributed()
    assert (env.rank, env.world_size, env.backend) == (0, 1, "none")
    with pytest.raises(RuntimeError, match="expects 2 processes"):
        setup_distributed(expect_world_size=2)


def test_backend_choice():
    assert pick_backend("cpu") == "gloo"
    assert pick_backend("cuda:0") == "nccl"


def test_multi_node_command():
    cmd = torchrun_command(["train.py"], nproc_per_node=8, nnodes=4, node_rank=3, master="10.0.0.1:29500")
    assert cmd[3:] == ["--nproc_per_node=8", "--nnodes=4", "--node_rank=3", "--master_addr=10.0.0.1",
                       "--master_port=29500", "train.py"]  # fmt: skip
    assert "--standalone" in torchrun_command(["train.py"])
    with pytest.raises(ValueError, match="master"):
        torchrun_command(["train.py"], nnodes=2)


def test_crashed_rank_fails_the_job(run_job):
    start = time.perf_counter()
    with pytest.raises(RuntimeError, match="simulated crash on rank 1"):
        run_job("fault", "--mode", "crash", timeout_s=120)
    assert time.perf_counter() - start < 100


def test_stuck_rank_times_out(run_job):
    with pytest.raises(RuntimeError, match="Timed out"):
        run_job("fault", "--mode", "hang", "--timeout-s", "5", "--hang-s", "120", timeout_s=120)


def test_wrong_world_size_is_a_clear_error(run_job):
    with pytest.raises(RuntimeError, match="expects 4 processes but torchrun started 2"):
        run_job("fault", "--expect-world-size", "4", timeout_s=120)


def test_missing_peer_at_rendezvous_times_out():
    code = "from llm_from_scratch.distributed.launch import setup_distributed\nsetup_distributed(timeout_s=3)\n"
    env = {**os.environ, "RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": "29541"}  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "did not form within 3 s" in proc.stderr


def test_cli_memory(capsys):
    assert main(["distributed", "memory", "--params", "7.5e9", "--world", "64"]) == 0
    out = capsys.readouterr().out
    assert "120.00" in out and "1.88" in out


def test_cli_bad_world_is_one_line_error(capsys):
    assert main(["distributed", "memory", "--world", "0"]) == 2
    assert "--world must be at least 1" in capsys.readouterr().err
