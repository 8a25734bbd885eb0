"""Helpers that launch 2-process gloo jobs of ``llm_from_scratch.experiments.distributed_harness`` with a deadline."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from llm_from_scratch.distributed.launch import run_torchrun

JOB_TIMEOUT_S = 240.0  # a job that hangs is killed and the test fails; nothing waits forever

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="2-process gloo jobs are tested on Linux")


@pytest.fixture
def run_job(tmp_path: Path):
    """``run_job("ddp", "--batch", "8")`` -> the JSON dict rank 0 wrote."""

    def run(task: str, *args: str, nproc: int = 2, timeout_s: float = JOB_TIMEOUT_S) -> dict:
        out = tmp_path / f"{task}.json"
        env = {"LLM_FROM_SCRATCH_CACHE": os.environ.get("LLM_FROM_SCRATCH_CACHE", str(tmp_path / "cache"))}
        run_torchrun(
            ["-m", "llm_from_scratch.experiments.distributed_harness", task, "--out", str(out), *args],
            nproc,
            timeout_s,
            env,
        )
        return json.loads(out.read_text())

    return run
