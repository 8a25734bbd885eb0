"""What a training loop calls to run under `torchrun`: wrap the model for a strategy, fetch this rank's batch, and
`ParallelRun`, everything the trainer (`llm-from-scratch pretrain --parallel {ddp,fsdp,tp}`) does
differently under a strategy::

    par = ParallelRun.start("fsdp", model_config)   # setup_distributed(): torchrun's variables; nccl or gloo
    model, optimizer = par.wrap(model, optimizer, make_optimizer)   # shard the model and its optimiser state
    x, y = train_batch(..., *par.data_shard)         # data parallel: this rank's slice of the global batch
    ...                                              # forward, backward (no_sync on early micro-batches)
    norm = par.clip_grad_norm(model, 1.0)            # the global norm, whatever the sharding
    plain, plain_opt = par.full_model(model, optimizer, make_optimizer)  # gathered; rank 0 saves and samples

With `strategy="none"` every method is the single-process code path, unchanged.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import nn

from llm_from_scratch.distributed.launch import DistEnv, setup_distributed
from llm_from_scratch.distributed.sharded_state import (
    TENSOR_PARALLEL,
    clip_grad_norm,
    gather_full_state,
    load_full_state,
    named_params,
    shard_optimizer_state,
)

STRATEGIES = ("none", "ddp", "ddp-scratch", "fsdp", "tp", "tp-dtensor")
TRAIN_TIMEOUT_S = 600.0  # a collective of a training run waits this long for a peer (rank 0 evaluates, samples, saves)


def is_data_parallel(strategy: str) -> bool:
    """Whether ranks read different data (DDP, FSDP) or the same batch (tensor parallel: ranks split the matrices,
    not the batch)."""
    return strategy in ("ddp", "ddp-scratch", "fsdp")


def wrap_model(model: nn.Module, strategy: str, env: DistEnv) -> nn.Module:
    """Return `model` prepared for `strategy`; in a world of one every strategy is the plain model."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown parallel strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    if env.world_size == 1 or strategy == "none":
        return model
    if strategy == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [env.local_rank] if env.device.startswith("cuda") else None
        return DistributedDataParallel(model, device_ids=device_ids, forward_sync_buffers=False)
    if strategy == "ddp-scratch":
        from llm_from_scratch.distributed.ddp import DataParallel

        return DataParallel(model)
    if strategy == "fsdp":
        from llm_from_scratch.distributed.fsdp import apply_fsdp

        return apply_fsdp(model)
    if strategy == "tp":
        from llm_from_scratch.distributed.tensor_parallel import apply_tensor_parallel

        return apply_tensor_parallel(model)
    from torch.distributed.device_mesh import init_device_mesh

    from llm_from_scratch.distributed.tensor_parallel import parallelize_with_dtensor

    return parallelize_with_dtensor(model, init_device_mesh(env.device.split(":")[0], (env.world_size,)))


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a data-parallel wrapper (`DistributedDataParallel` or `.ddp.DataParallel`);
    any other model as it is (FSDP and tensor parallelism shard the model in place)."""
    from torch.nn.parallel import DistributedDataParallel

    from llm_from_scratch.distributed.ddp import DataParallel

    return model.module if isinstance(model, (DistributedDataParallel, DataParallel)) else model


def launch_hint(strategy: str, example: str | None = None) -> str:
    if example is None:
        example = f"torchrun --standalone --nproc_per_node=2 -m llm_from_scratch.cli pretrain --parallel {strategy}"
    return (
        f"--parallel {strategy} trains on several processes, but this is a single one (WORLD_SIZE is unset or 1); "
        f"launch it with torchrun, e.g. {example}"
    )


@dataclass
class ParallelRun:
    """One training run's parallel strategy and this process's place in it (see the module docstring)."""

    strategy: str
    env: DistEnv
    model_config: object
    named: list = field(default_factory=list, repr=False)  # (name, parameter) of the wrapped model

    @classmethod
    def start(
        cls,
        strategy: str,
        model_config,
        env: DistEnv | None = None,
        device: str | None = None,
        launch_example: str | None = None,
    ) -> ParallelRun:
        """Check the launch and join the process group (`strategy="none"`: one process on `device`)."""
        from llm_from_scratch.utils import pick_device

        if strategy not in STRATEGIES:
            raise ValueError(f"unknown parallel strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
        if strategy == "none":
            return cls("none", DistEnv(0, 0, 1, "none", pick_device(device)), model_config)
        env = env or setup_distributed(timeout_s=TRAIN_TIMEOUT_S)
        if env.world_size == 1:
            raise RuntimeError(launch_hint(strategy, launch_example))
        if device is not None and device.split(":")[0] != env.device.split(":")[0]:
            raise ValueError(
                f"device {device!r} was requested, but under torchrun each rank uses {env.device} "
                f"({env.backend}: cuda:LOCAL_RANK with NCCL, cpu with gloo); leave the device unset"
            )
        if strategy in TENSOR_PARALLEL:
            from llm_from_scratch.distributed.tensor_parallel import check_tp_shapes

            c = model_config
            try:
                check_tp_shapes(c, env.world_size)
            except ValueError as err:
                sizes = [n for n in range(2, c.n_kv_heads + 1) if not (c.n_heads % n or c.n_kv_heads % n)]
                sizes = [n for n in sizes if not c.ffn_hidden % n]
                raise ValueError(
                    f"--parallel {strategy} with WORLD_SIZE={env.world_size}: {err}; launch with --nproc_per_node in "
                    f"{sizes or 'none: this model cannot be split'}, or use a data-parallel strategy (ddp, fsdp)"
                ) from None
        return cls(strategy, env, model_config)

    @property
    def distributed(self) -> bool:
        return self.strategy != "none"

    @property
    def is_main(self) -> bool:
        return self.env.is_main

    @property
    def device(self) -> str:
        return self.env.device

    @property
    def data_shard(self) -> tuple[int, int]:
        """`(rank, world)` for the batch: data-parallel ranks split the global batch, tensor-parallel ranks all
        read the whole one."""
        return (self.env.rank, self.env.world_size) if is_data_parallel(self.strategy) else (0, 1)

    @property
    def data_world(self) -> int:
        return self.data_shard[1]

    def wrap(self, model: nn.Module, optimizer: torch.optim.Optimizer, make_optimizer) -> tuple:
        """Shard `model` (its full weights already loaded, e.g. from a checkpoint) and build its optimiser with
        `make_optimizer`, giving each parameter its piece of `optimizer`'s (full) state."""
        if not self.distributed:
            return model, optimizer
        full_state = {name: dict(optimizer.state[p]) for name, p in named_params(model) if p in optimizer.state}
        model = wrap_model(model, self.strategy, self.env)
        self.named = named_params(model)  # now, while FSDP's parameters are the sharded ones the optimiser holds
        optimizer = make_optimizer(model)
        shard_optimizer_state(optimizer, self.named, full_state, self.strategy, self.model_config, self.env)
        return model, optimizer

    def no_sync(self, model: nn.Module, last: bool):
        """DDP: no all-reduce for the micro-batches before the `last` one (the gradients accumulate locally and
        are averaged once). FSDP keeps reduce-scattering each micro-batch: its unsharded gradients would cost the
        memory it exists to save."""
        if not last and self.strategy in ("ddp", "ddp-scratch"):
            return model.no_sync()
        return contextlib.nullcontext()

    def clip_grad_norm(self, model: nn.Module, max_norm: float) -> float:
        """Clip to `max_norm` (0 or `inf`: no clipping) and return the global norm before clipping."""
        max_norm = max_norm or math.inf
        if not self.distributed:  # clip_grad_norm_ returns the norm before clipping: the number worth plotting
            return nn.utils.clip_grad_norm_(model.parameters(), max_norm).item()
        return clip_grad_norm(self.named, max_norm, self.strategy, self.model_config, self.env)

    def mean(self, value: float) -> float:
        """The mean of `value` over the ranks (the loss of the global batch is the mean of the ranks' losses)."""
        if not self.distributed:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.item() / self.env.world_size

    def evaluate(self, model: nn.Module, windows: list[torch.Tensor], sums) -> float:
        """The mean loss over `windows` from `sums(model, windows) -> (total, count)`. Data parallel: rank
        `r` takes its rows of every window batch (each rank runs the same number of forwards, as FSDP's
        collectives require) and the sums are all-reduced; tensor parallel: every rank evaluates every window."""
        if not self.distributed:
            total, count = sums(model, windows)
            return total / count
        rank, world = self.data_shard
        split = world > 1 and all(len(w) >= world for w in windows)
        total, count = sums(model, [w.tensor_split(world)[rank] for w in windows] if split else windows)
        if self.strategy == "fsdp":  # FSDP keeps the root's gathered weights until a backward that never comes
            from torch.distributed.fsdp import FSDPModule

            for m in model.modules():
                if isinstance(m, FSDPModule):
                    m.reshard()
        if not split:
            return total / count
        t = torch.tensor([total, count], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return (t[0] / t[1]).item()

    def full_model(self, model: nn.Module, optimizer: torch.optim.Optimizer | None, make_optimizer) -> tuple:
        """`(model, optimizer)` unsharded, for sampling and checkpoints: on rank 0 a plain model with the full
        weights (and an optimiser with the full moments), `(None, None)` elsewhere. Gathering is a collective:
        every rank calls it. DDP's replicas are already whole."""
        if not self.distributed:
            return model, optimizer
        if self.strategy in ("ddp", "ddp-scratch"):
            return (unwrap(model), optimizer) if self.is_main else (None, None)
        weights, moments = gather_full_state(self.named, optimizer, self.strategy, self.model_config, self.env)
        if not self.is_main:
            return None, None
        from llm_from_scratch.model import Transformer

        with torch.random.fork_rng(devices=[]):  # the new model's initial draw must not move the run's RNG
            plain = Transformer(self.model_config)
        plain_optimizer = make_optimizer(plain) if optimizer is not None else None
        hyper = optimizer.param_groups if optimizer is not None else None
        load_full_state(plain, plain_optimizer, weights, moments, hyper)
        return plain, plain_optimizer

    def result_model(self, model: nn.Module) -> nn.Module:
        """What `train` returns: DDP's replica unwrapped (a plain model), the sharded model otherwise."""
        return unwrap(model) if self.strategy in ("ddp", "ddp-scratch") else model

    def checkpoint_state(self) -> dict:
        """What a checkpoint records about the strategy (nothing in one process: the format is unchanged)."""
        if not self.distributed:
            return {}
        return {"parallel": {"strategy": self.strategy, "world_size": self.env.world_size,
                             "data_parallel_size": self.data_world}}  # fmt: skip

    def check_resume(self, state: dict, where) -> None:
        """A run resumes exactly only with the same global batch, i.e. the same number of data-parallel ranks
        (the strategy itself may change: FSDP <-> DDP, tensor parallel <-> one process)."""
        saved = state.get("parallel", {}).get("data_parallel_size", 1)
        if saved != self.data_world:
            from llm_from_scratch.model.checkpoint import CheckpointError

            raise CheckpointError(
                f"checkpoint {where} was written with {saved} data-parallel rank(s) but this run has "
                f"{self.data_world} ({self.strategy}, WORLD_SIZE={self.env.world_size}): the global batch would "
                "change; resume with as many data-parallel ranks, or start a new run directory"
            )

    def agree(self, value):
        """Rank 0's `value` on every rank (e.g. which checkpoint to resume from)."""
        if not self.distributed:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()
