"""`llm-from-scratch distributed`: ZeRO memory tables, multi-node launch commands, equivalence checks and short
parallel training runs (2 processes on CPU with gloo, or GPUs with NCCL)."""

from __future__ import annotations

import argparse
import json
import shlex


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "distributed",
        help="parallel training: memory per rank, torchrun commands, DDP/FSDP/TP checks and runs",
        description=__doc__.replace("`", ""),
    )
    sub = p.add_subparsers(title="actions", metavar="<action>", required=True)

    m = sub.add_parser("memory", help="model-state memory per rank for DDP and ZeRO stages 1-3")
    m.add_argument("--arch", default="llama-3.2-1b", help="named architecture whose parameter count to use")
    m.add_argument("--params", type=float, help="parameter count (overrides --arch), e.g. 7.5e9")
    m.add_argument("--world", type=int, default=8, help="number of data-parallel ranks")
    m.add_argument("--precision", default="mixed", choices=["mixed", "fp32"])
    m.set_defaults(func=_memory)

    pl = sub.add_parser("plan", help="print the torchrun command for every node of an N-node x M-GPU job")
    pl.add_argument("--nnodes", type=int, default=2)
    pl.add_argument("--nproc-per-node", type=int, default=8)
    pl.add_argument("--master", default="node0.example:29500", help="HOST:PORT of node 0 (the rendezvous)")
    pl.add_argument("script", nargs=argparse.REMAINDER, help="the training command after --")
    pl.set_defaults(func=_plan)

    c = sub.add_parser("check", help="run a 2-process equivalence check and print its JSON result")
    c.add_argument("task", choices=["ddp", "fsdp", "tp", "dtensor", "pipeline"])
    c.add_argument("--nproc", type=int, default=2)
    c.add_argument("--timeout", type=float, default=300.0, help="seconds before the job is killed")
    c.set_defaults(func=_check)

    t = sub.add_parser(
        "train",
        help="a short run of the real trainer on the tiny model under torchrun with --parallel",
        description="Launch N processes that run llm_from_scratch.train.trainer.train(parallel=...) for a few steps "
        "of the tiny model (the full-size run: torchrun ... -m llm_from_scratch.cli pretrain --parallel ...).",
    )
    t.add_argument("--parallel", default="ddp", choices=["ddp", "ddp-scratch", "fsdp", "tp", "tp-dtensor"])
    t.add_argument("--nproc", type=int, default=2)
    t.add_argument("--steps", type=int, default=20)
    t.add_argument("--data", default="shards", choices=["shards", "text"])
    t.add_argument("--timeout", type=float, default=600.0)
    t.set_defaults(func=_train)


def _memory(args) -> int:
    from llm_from_scratch.distributed.memory import memory_table

    if args.params is not None:
        n = int(args.params)
    else:
        from llm_from_scratch.model import ARCHITECTURES, count_parameters

        if args.arch not in ARCHITECTURES:
            raise ValueError(f"--arch {args.arch!r}: choose one of {sorted(ARCHITECTURES)}, or pass --params")
        n = count_parameters(ARCHITECTURES[args.arch])
    if args.world < 1:
        raise ValueError(f"--world must be at least 1, got {args.world}")
    print(f"{n:,} parameters, {args.world} ranks, {args.precision} precision (GB per rank, 1 GB = 1e9 bytes)")
    print(f"{'strategy':<16}{'weights':>10}{'grads':>10}{'optimizer':>11}{'total':>10}")
    for row in memory_table(n, args.world, args.precision):
        print(
            f"{row['strategy']:<16}{row['weights_gb']:>10.2f}{row['grads_gb']:>10.2f}"
            f"{row['optimizer_gb']:>11.2f}{row['total_gb']:>10.2f}"
        )
    return 0


def _plan(args) -> int:
    from llm_from_scratch.distributed.launch import torchrun_command

    default = ["-m", "llm_from_scratch.cli", "pretrain", "--preset", "book", "--parallel", "fsdp"]
    script = [a for a in args.script if a != "--"] or default
    for node in range(args.nnodes):
        cmd = torchrun_command(script, args.nproc_per_node, args.nnodes, node, args.master)
        cmd[:3] = ["torchrun"]
        print(f"# node {node}")
        print(shlex.join(cmd))
    world = args.nnodes * args.nproc_per_node
    print(f"# torchrun sets WORLD_SIZE={world}, RANK=0..{world - 1}, LOCAL_RANK=0..{args.nproc_per_node - 1}, "
          "MASTER_ADDR, MASTER_PORT in every process")  # fmt: skip
    return 0


def _check(args) -> int:
    from llm_from_scratch.distributed.launch import run_torchrun

    proc = run_torchrun(["-m", "llm_from_scratch.experiments.distributed_harness", args.task], args.nproc, args.timeout)
    print(_last_json(proc.stdout))
    return 0


def _train(args) -> int:
    from llm_from_scratch.distributed.launch import run_torchrun

    cmd = ["-m", "llm_from_scratch.experiments.distributed_harness", "train", "--parallel", args.parallel,
           "--steps", str(args.steps), "--data", args.data, "--seq", "64", "--batch", "8"]  # fmt: skip
    proc = run_torchrun(cmd, args.nproc, args.timeout)
    print(proc.stdout.strip())
    return 0


def _last_json(stdout: str) -> str:
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith("{"):
            return json.dumps(json.loads(line))
    raise RuntimeError(f"the distributed job printed no JSON result; its output was:\n{stdout[-2000:]}")
