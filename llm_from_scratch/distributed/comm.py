"""How many bytes each parallelism sends per training step: the derived formulas, and a measurement of what the
process really handed to the kernel's sockets.

Ring algorithms (Patarasuk & Yuan 2009; what NCCL and gloo use for large tensors) move, per rank, for a tensor of
`S` bytes over `N` ranks:

- all-reduce: `2 (N - 1) / N * S` (a reduce-scatter followed by an all-gather),
- all-gather (output `S`) and reduce-scatter (input `S`): `(N - 1) / N * S` each.

gloo implements reduce-scatter as a full all-reduce followed by a local slice, so on gloo it costs
`2 (N - 1) / N * S`; the formulas take the backend into account.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from llm_from_scratch.model.config import ModelConfig


def allreduce_bytes(size: float, world: int) -> float:
    return 2 * (world - 1) / world * size


def allgather_bytes(size: float, world: int) -> float:
    return (world - 1) / world * size


def reduce_scatter_bytes(size: float, world: int, backend: str = "nccl") -> float:
    return allreduce_bytes(size, world) if backend == "gloo" else (world - 1) / world * size


def ddp_bytes_per_step(n_params: int, world: int, bytes_per_grad: int = 4) -> float:
    """Data parallelism: one all-reduce of every gradient, whatever the bucketing."""
    return allreduce_bytes(n_params * bytes_per_grad, world)


def fsdp_bytes_per_step(
    n_params: int, n_root_params: int, world: int, bytes_per_param: int = 4, backend: str = "nccl"
) -> float:
    """Fully sharded data parallelism (ZeRO-3): all-gather the parameters before the forward pass, again before
    the backward pass (they were freed after the forward, except the root module's, which the backward uses first),
    and reduce-scatter the gradients: about 1.5x the traffic of data parallelism on NCCL."""
    gathers = allgather_bytes((2 * n_params - n_root_params) * bytes_per_param, world)
    return gathers + reduce_scatter_bytes(n_params * bytes_per_param, world, backend)


def tp_bytes_per_step(config: ModelConfig, batch_size: int, seq_len: int, world: int, bytes_per_act: int = 4) -> float:
    """Tensor parallelism: per block two all-reduces of the activations `[B, T, d_model]` in the forward pass
    (after attention and after the MLP: operator g) and two in the backward pass (operator f), independent of the
    number of parameters but proportional to the tokens in flight."""
    activation = batch_size * seq_len * config.d_model * bytes_per_act
    return 4 * config.n_layers * allreduce_bytes(activation, world)


def bytes_written() -> int:
    """Bytes this process (all its threads) has passed to `write`-like system calls so far: `wchar` in
    `/proc/self/io` (Linux). gloo sends tensors over TCP sockets with `writev`, so during a training step with
    no file or terminal output this counts exactly the bytes sent to the other ranks, headers included."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    raise RuntimeError("/proc/self/io has no wchar line; byte counting needs Linux")


@contextlib.contextmanager
def count_bytes_sent() -> Iterator[dict]:
    """`with count_bytes_sent() as c: ...` then `c["bytes"]`: the bytes written during the block."""
    result = {"bytes": 0}
    start = bytes_written()
    try:
        yield result
    finally:
        result["bytes"] = bytes_written() - start


# Bandwidth per direction in GB/s (1e9 bytes/s) of the links a collective can run over, from their specifications.
LINKS: dict[str, float] = {
    "NVLink 4 (H100 SXM, per GPU)": 450.0,  # 900 GB/s total, both directions (NVIDIA H100 datasheet)
    "PCIe 5.0 x16": 63.0,  # 32 GT/s x 16 lanes x 128/130 / 8 bits (PCI-SIG 5.0)
    "InfiniBand NDR 400 Gb/s": 50.0,  # one ConnectX-7 port
    "Ethernet 100 Gb/s": 12.5,
    "Ethernet 10 Gb/s": 1.25,
}


def tp_comm_vs_compute(
    config: ModelConfig, tp: int, tokens: int, link_gb_s: float, tflops: float = 400.0, bytes_per_act: int = 2
) -> tuple[float, float]:
    """Seconds per block and per training step of `tokens` tokens under `tp`-way tensor parallelism:
    `(communication, computation)`. Communication: four ring all-reduces of `tokens x d_model` activations at
    `link_gb_s` per direction; computation: this rank's `1/tp` share of the block's training FLOPs at
    `tflops` sustained (400 is about 40 % of an H100's dense bf16 peak)."""
    comm_bytes = 4 * allreduce_bytes(tokens * config.d_model * bytes_per_act, tp)
    c = config
    block_params = c.d_model * (c.n_heads + 2 * c.n_kv_heads) * c.head_dim + c.n_heads * c.head_dim * c.d_model
    block_params += 3 * c.d_model * c.ffn_hidden
    flops = 6 * block_params * tokens / tp
    return comm_bytes / (link_gb_s * 1e9), flops / (tflops * 1e12)
