"""Process-group setup from `torchrun`'s environment, the backend choice, timeouts, and a launcher with a deadline.

`torchrun` starts one process per device and tells each who it is through environment variables: `RANK` (0 ..
`WORLD_SIZE - 1` over all nodes), `LOCAL_RANK` (index on this node, i.e. which GPU), `WORLD_SIZE`,
`LOCAL_WORLD_SIZE`, and `MASTER_ADDR` / `MASTER_PORT` (the rendezvous store every rank connects to).
"""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

DEFAULT_TIMEOUT_S = 60.0  # a collective that waits longer than this for a peer raises instead of hanging


@dataclass(frozen=True)
class DistEnv:
    """Who this process is in the job."""

    rank: int
    local_rank: int
    world_size: int
    backend: str
    device: str

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def pick_backend(device: str | None = None) -> str:
    """NCCL when every rank has its own CUDA GPU (it moves tensors GPU to GPU over NVLink / InfiniBand), gloo
    otherwise (CPU tensors over TCP): the same training code runs on a laptop and on a cluster."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return "nccl" if device.startswith("cuda") else "gloo"


def setup_distributed(
    backend: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S, expect_world_size: int | None = None
) -> DistEnv:
    """Join the process group that `torchrun` describes in the environment; a plain `python` run becomes a
    world of one (no process group), so the same script works with and without `torchrun`.

    `timeout_s` bounds every collective: a crashed or missing peer turns into a `RuntimeError` (or, with
    NCCL, an abort of the job) after that many seconds, never an endless hang. `expect_world_size` checks that
    the job was launched with the number of processes the run was planned for.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if expect_world_size is not None and world_size != expect_world_size:
        raise RuntimeError(
            f"this run expects {expect_world_size} processes but torchrun started {world_size} (WORLD_SIZE); "
            f"launch it with --nproc_per_node={expect_world_size} (times the number of nodes)"
        )
    if world_size == 1 and "RANK" not in os.environ:
        device = "cuda:0" if torch.cuda.is_available() else "cpu"
        return DistEnv(0, 0, 1, "none", device)
    missing = [k for k in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise RuntimeError(
            f"WORLD_SIZE={world_size} but {', '.join(missing)} not set; start the job with torchrun "
            "(e.g. torchrun --standalone --nproc_per_node=2 ...), which sets them"
        )
    rank, local_rank = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    backend = backend or pick_backend()
    if backend == "nccl":
        if torch.cuda.device_count() <= local_rank:
            raise RuntimeError(
                f"LOCAL_RANK={local_rank} needs GPU {local_rank} but this node has {torch.cuda.device_count()}; "
                "use --nproc_per_node <= number of GPUs, or the gloo backend on CPU"
            )
        torch.cuda.set_device(local_rank)
        device = f"cuda:{local_rank}"
    else:
        device = "cpu"
    if not dist.is_initialized():
        try:
            dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout_s))
        except dist.DistError as err:  # e.g. fewer processes joined the rendezvous than WORLD_SIZE says
            raise RuntimeError(
                f"rank {rank}: the process group of WORLD_SIZE={world_size} did not form within {timeout_s:.0f} s "
                f"at {os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']} ({err}); start every node with the same "
                "--nnodes and --nproc_per_node, and check that node 0 is reachable"
            ) from err
    return DistEnv(rank, local_rank, world_size, backend, device)


def main_rank_first(env: DistEnv, build, timeout_s: float = 4 * 3600.0):
    """`build()` on rank 0, then on the other ranks: rank 0 creates a cached artifact (minutes, maybe), the others
    then load it instead of building it too. They wait in a barrier of a separate gloo group whose timeout is long
    enough for the build, so the job's own collective timeout stays short."""
    if env.world_size == 1:
        return build()
    group = dist.new_group(backend="gloo", timeout=datetime.timedelta(seconds=timeout_s))
    result = build() if env.is_main else None
    dist.barrier(group=group)
    if not env.is_main:
        result = build()
    dist.destroy_process_group(group)
    return result


def cleanup_distributed() -> None:
    """Leave the process group (every rank must call it, or the others wait at shutdown)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def torchrun_command(
    script_args: list[str], nproc_per_node: int = 2, nnodes: int = 1, node_rank: int = 0, master: str | None = None
) -> list[str]:
    """The `torchrun` command line for `nnodes` x `nproc_per_node` processes running `script_args`.

    One node: `--standalone` (a private rendezvous on localhost). Several nodes: the same command on every node,
    with `--node_rank` 0 .. N-1 and `--master_addr/--master_port` of node 0, which hosts the rendezvous store.
    """
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc_per_node}"]
    if nnodes == 1:
        cmd.append("--standalone")
    else:
        if master is None:
            raise ValueError("a multi-node launch needs master='HOST:PORT' (node 0's address and a free port)")
        host, port = master.rsplit(":", 1)
        cmd += [f"--nnodes={nnodes}", f"--node_rank={node_rank}", f"--master_addr={host}", f"--master_port={port}"]
    return cmd + list(script_args)


def run_torchrun(
    script_args: list[str], nproc_per_node: int = 2, timeout_s: float = 240.0, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run `torchrun --standalone --nproc_per_node=N script_args...` as a subprocess with a wall-clock deadline.

    Raises `RuntimeError` with the tail of the job's output if it fails or runs past `timeout_s`; a job
    that hangs is killed, so a test or a notebook cell never waits forever.
    """
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", **(env or {})}
    root = str(Path(__file__).resolve().parents[2])
    full_env["PYTHONPATH"] = os.pathsep.join(p for p in (root, full_env.get("PYTHONPATH")) if p)
    cmd = torchrun_command(script_args, nproc_per_node)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=full_env)
    except subprocess.TimeoutExpired as err:
        out = (err.stdout or b"").decode() if isinstance(err.stdout, bytes) else err.stdout or ""
        raise RuntimeError(
            f"distributed job {' '.join(script_args)} ran past {timeout_s:.0f} s:\n{out[-2000:]}"
        ) from None
    if proc.returncode != 0:
        raise RuntimeError(
            f"distributed job {' '.join(script_args)} failed with exit code {proc.returncode}:\n"
            f"{(proc.stdout + proc.stderr)[-8000:]}"
        )
    return proc
