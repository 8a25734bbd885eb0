"""Stage 5 of the pipeline: the same training code on many processes with `torch.distributed` and `torchrun`.

Data parallelism from scratch (`.ddp`) and with `DistributedDataParallel`; ZeRO memory arithmetic
(`.memory`) and FSDP2 (`.fsdp`); Megatron-style tensor parallelism from scratch and with DTensor
(`.tensor_parallel`); a GPipe pipeline (`.pipeline`); communication formulas and byte counting
(`.comm`); process-group setup and launching (`.launch`); the trainer's entry points (`.parallel`:
`wrap_model`, `ParallelRun`) and the gathering / re-sharding of weights, optimiser state and gradient norms
behind its single-process checkpoints (`.sharded_state`).
Heavy submodules are imported on use.
"""

from llm_from_scratch.distributed.launch import (
    DistEnv,
    cleanup_distributed,
    pick_backend,
    run_torchrun,
    setup_distributed,
)
from llm_from_scratch.distributed.memory import memory_table, zero_memory
from llm_from_scratch.distributed.parallel import wrap_model

__all__ = [
    "DistEnv",
    "cleanup_distributed",
    "memory_table",
    "pick_backend",
    "run_torchrun",
    "setup_distributed",
    "wrap_model",
    "zero_memory",
]
