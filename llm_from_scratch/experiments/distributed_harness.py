"""The distributed jobs the tests, the benchmark and the chapter launch with
`torchrun --standalone --nproc_per_node=2 -m llm_from_scratch.experiments.distributed_harness TASK --out result.json`.

Every task compares a parallel run with the single-process computation it must equal (each rank can afford the
tiny model whole), and rank 0 writes the differences as JSON. Tasks: `ddp`, `fsdp`, `tp`, `dtensor`,
`pipeline`, `bench`, `fault`, and `train`, which runs the real trainer with `parallel=...`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist

from llm_from_scratch.distributed import comm
from llm_from_scratch.distributed.launch import DistEnv, cleanup_distributed, setup_distributed
from llm_from_scratch.model import ModelConfig, Transformer
from llm_from_scratch.pipeline import PRESET_NAMES, preset_config
from llm_from_scratch.utils import seed_everything


def run_worker(task: str, *args: str, nproc_per_node: int = 2, timeout_s: float = 300.0) -> dict:
    """Launch this harness's `TASK ARGS` under torchrun and return rank 0's JSON result."""
    import json

    from llm_from_scratch.distributed.launch import run_torchrun

    proc = run_torchrun(["-m", __name__, task, *args], nproc_per_node, timeout_s)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(
            f"distributed job {task} printed no JSON result; its output ends with:\n{proc.stdout[-2000:]}"
        )
    return json.loads(lines[-1])


def build(config: ModelConfig, seed: int) -> Transformer:
    seed_everything(seed)
    return Transformer(config)


def random_batch(config: ModelConfig, batch: int, seq: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    xy = torch.randint(0, config.vocab_size, (batch, seq + 1), generator=g)
    return xy[:, :-1], xy[:, 1:]


def my_slice(t: torch.Tensor, env: DistEnv, parts: int = 1, part: int = 0) -> torch.Tensor:
    """Rank `r`'s share of a global batch (micro-batch `part` of `parts`)."""
    n = t.shape[0] // (env.world_size * parts)
    start = (env.rank * parts + part) * n
    return t[start : start + n]


def max_grad_diff(ref: torch.nn.Module, other: torch.nn.Module) -> float:
    ref_grads = {n: p.grad for n, p in ref.named_parameters()}
    diffs = [(p.grad - ref_grads[n.removeprefix("module.")]).abs().max().item() for n, p in other.named_parameters()]
    return max(diffs)


def all_max(value: float) -> float:
    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t.item()


# ---------------------------------------------------------------- data parallel


def task_ddp(env: DistEnv, args) -> dict:
    from torch.nn.parallel import DistributedDataParallel

    from llm_from_scratch.distributed.ddp import DataParallel

    config = preset_config(args.preset).model
    x, y = random_batch(config, args.batch, args.seq, seed=1)
    ref = build(config, seed=0)
    ref(x, y)[1].backward()  # single process, full batch

    # Each rank builds its replica from a different seed: the broadcast in DataParallel makes them rank 0's.
    ours = DataParallel(build(config, seed=env.rank), bucket_cap_mb=args.bucket_mb)
    ours(my_slice(x, env), my_slice(y, env))[1].backward()
    theirs = DistributedDataParallel(build(config, seed=env.rank), forward_sync_buffers=False)
    theirs(my_slice(x, env), my_slice(y, env))[1].backward()

    accum = DataParallel(build(config, seed=env.rank), bucket_cap_mb=args.bucket_mb)
    with accum.no_sync():  # micro-batch 0: local accumulation only
        (accum(my_slice(x, env, 2, 0), my_slice(y, env, 2, 0))[1] / 2).backward()
    (accum(my_slice(x, env, 2, 1), my_slice(y, env, 2, 1))[1] / 2).backward()
    n_params = ref.num_parameters()
    return {
        "buckets": len(ours.buckets),
        "scratch_vs_single": all_max(max_grad_diff(ref, ours.module)),
        "torch_ddp_vs_single": all_max(max_grad_diff(ref, theirs.module)),
        "scratch_vs_torch_ddp": all_max(max_grad_diff(theirs.module, ours.module)),
        "no_sync_accum_vs_single": all_max(max_grad_diff(ref, accum.module)),
        "bytes_reduced_per_param": ours.bytes_reduced / n_params,
    }


# ---------------------------------------------------------------- FSDP2


def task_fsdp(env: DistEnv, args) -> dict:
    from llm_from_scratch.distributed.fsdp import apply_fsdp, local_bytes, save_full_checkpoint
    from llm_from_scratch.model.checkpoint import load_model

    config = preset_config(args.preset).model
    ref = build(config, seed=0)
    model = apply_fsdp(build(config, seed=0))
    opt_ref = torch.optim.AdamW(ref.parameters(), lr=args.lr, weight_decay=0.1)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.1)
    ref_losses, fsdp_losses = [], []
    for step in range(args.steps):
        x, y = random_batch(config, args.batch, args.seq, seed=100 + step)
        loss_ref = ref(x, y)[1]
        loss_ref.backward()
        opt_ref.step()
        opt_ref.zero_grad()
        loss = model(my_slice(x, env), my_slice(y, env))[1]
        loss.backward()  # FSDP reduce-scatters the averaged gradient shards
        opt.step()
        opt.zero_grad()
        global_loss = loss.detach().clone()
        dist.all_reduce(global_loss)
        ref_losses.append(loss_ref.item())
        fsdp_losses.append(global_loss.item() / env.world_size)
        if step == 0:
            mem = {
                "params": local_bytes(model.parameters()),
                "optimizer": sum(local_bytes(s.values()) for s in opt.state.values()),
                "params_single": local_bytes(ref.parameters()),
                "optimizer_single": sum(local_bytes(s.values()) for s in opt_ref.state.values()),
            }
    x, _ = random_batch(config, 2, args.seq, seed=999)
    with torch.no_grad():
        logits_fsdp = model(x)[0]
    directory = Path(args.ckpt or tempfile.mkdtemp(prefix="fsdp-ckpt-"))
    broadcast_dir = [str(directory)]
    dist.broadcast_object_list(broadcast_dir, src=0)  # every rank must agree on where rank 0 writes
    save_full_checkpoint(model, broadcast_dir[0])
    result = {
        "losses_single": ref_losses,
        "losses_fsdp": fsdp_losses,
        "max_loss_diff": max(abs(a - b) for a, b in zip(ref_losses, fsdp_losses, strict=True)),
        "memory_bytes_rank": mem,
    }
    if env.is_main:
        reloaded = load_model(broadcast_dir[0])
        with torch.no_grad():
            logits_single = reloaded(x)[0]
            logits_ref = ref(x)[0]
        result["reload_logits_diff"] = (logits_single - logits_fsdp).abs().max().item()
        result["reload_vs_single_training_diff"] = (logits_single - logits_ref).abs().max().item()
    return result


# ---------------------------------------------------------------- tensor parallel


def _tp_compare(env: DistEnv, args, shard) -> dict:
    from llm_from_scratch.distributed.tensor_parallel import shard_index

    config = preset_config(args.preset).model
    x, y = random_batch(config, args.batch, args.seq, seed=1)
    ref = build(config, seed=0)
    logits_ref, loss_ref = ref(x, y)
    loss_ref.backward()
    model = shard(build(config, seed=0))
    logits, loss = model(x, y)  # every rank sees the whole batch; the matrices are split
    loss.backward()
    ref_params = dict(ref.named_parameters())
    grad_diff, sharded = 0.0, 0
    for name, p in model.named_parameters():
        g = p.grad.to_local() if hasattr(p.grad, "to_local") else p.grad
        full = ref_params[name].grad
        where = shard_index(name, config, env.rank, env.world_size)
        if where is not None:
            full = full.index_select(where[0], where[1])
            sharded += 1
        grad_diff = max(grad_diff, (g - full).abs().max().item())
    local = sum((p.to_local() if hasattr(p, "to_local") else p).numel() for p in model.parameters())
    return {
        "logits_diff": all_max((logits - logits_ref).abs().max().item()),
        "loss_diff": all_max(abs(loss.item() - loss_ref.item())),
        "grad_diff": all_max(grad_diff),
        "sharded_matrices": sharded,
        "params_per_rank": local,
        "params_full": ref.num_parameters(),
    }


def task_tp(env: DistEnv, args) -> dict:
    from llm_from_scratch.distributed.tensor_parallel import apply_tensor_parallel

    return _tp_compare(env, args, apply_tensor_parallel)


def task_dtensor(env: DistEnv, args) -> dict:
    from torch.distributed.device_mesh import init_device_mesh

    from llm_from_scratch.distributed.tensor_parallel import parallelize_with_dtensor

    mesh = init_device_mesh(env.device.split(":")[0], (env.world_size,))
    return _tp_compare(env, args, lambda m: parallelize_with_dtensor(m, mesh))


# ---------------------------------------------------------------- pipeline


def task_pipeline(env: DistEnv, args) -> dict:
    from llm_from_scratch.distributed.pipeline_parallel import gpipe_train_step

    config = preset_config(args.preset).model.replace(tie_embeddings=False)
    x, y = random_batch(config, args.batch, args.seq, seed=1)
    ref = build(config, seed=0)
    loss_ref = ref(x, y)[1]
    loss_ref.backward()
    model = build(config, seed=0)
    loss, stage = gpipe_train_step(model, x, y, args.micro, env.rank, env.world_size)
    ref_params = dict(ref.named_parameters())
    diffs = [(p.grad - ref_params[n].grad).abs().max().item() for n, p in stage.named_parameters()]
    loss_t = torch.tensor([loss if loss is not None else 0.0], dtype=torch.float64)
    dist.all_reduce(loss_t)  # only the last stage has the loss
    return {
        "loss_diff": abs(loss_t.item() - loss_ref.item()),
        "grad_diff": all_max(max(diffs)),
        "micro_batches": args.micro,
    }


# ---------------------------------------------------------------- communication benchmark


def _measure(step, n_steps: int) -> float:
    step()  # warm-up: first-call allocations, lazy initialisation
    dist.barrier()
    with comm.count_bytes_sent() as counted:
        for _ in range(n_steps):
            step()
    return counted["bytes"] / n_steps


def task_bench(env: DistEnv, args) -> dict:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.nn.parallel import DistributedDataParallel

    from llm_from_scratch.distributed.ddp import DataParallel
    from llm_from_scratch.distributed.fsdp import apply_fsdp
    from llm_from_scratch.distributed.tensor_parallel import apply_tensor_parallel, parallelize_with_dtensor

    config = preset_config(args.preset).model.replace(context_length=args.seq)
    x, y = random_batch(config, args.batch, args.seq, seed=1)
    xs, ys = my_slice(x, env), my_slice(y, env)
    n = build(config, 0).num_parameters()
    # the root module's parameters: the embedding, the head (when it has its own matrix) and the final norm
    root = config.vocab_size * config.d_model * (1 if config.tie_embeddings else 2) + config.d_model
    w = env.world_size
    tp_formula = comm.tp_bytes_per_step(config, args.batch, args.seq, w)
    strategies = {
        "ddp_scratch": (lambda: DataParallel(build(config, 0)), True, comm.ddp_bytes_per_step(n, w)),
        "ddp_torch": (lambda: DistributedDataParallel(build(config, 0), forward_sync_buffers=False), True,
                      comm.ddp_bytes_per_step(n, w)),
        "fsdp": (lambda: apply_fsdp(build(config, 0)), True, comm.fsdp_bytes_per_step(n, root, w, backend=env.backend)),
        "tp_scratch": (lambda: apply_tensor_parallel(build(config, 0)), False, tp_formula),
        "tp_dtensor": (lambda: parallelize_with_dtensor(build(config, 0), init_device_mesh("cpu", (w,))), False,
                       tp_formula),
    }  # fmt: skip
    results = {}
    for name, (make, data_parallel, formula) in strategies.items():
        if args.only and name not in args.only.split(","):
            continue
        model = make()
        bx, by = (xs, ys) if data_parallel else (x, y)

        def step(model=model, bx=bx, by=by):
            model(bx, by)[1].backward()
            for p in model.parameters():
                p.grad = None

        start = time.perf_counter()
        measured = _measure(step, args.steps)
        seconds = (time.perf_counter() - start) / (args.steps + 1)
        measured = all_max(measured)
        results[name] = {"measured_bytes": measured, "formula_bytes": formula, "ratio": measured / formula,
                         "seconds_per_step": seconds}  # fmt: skip
        del model
    return {"world_size": w, "backend": env.backend, "n_params": n, "batch": args.batch, "seq": args.seq,
            "strategies": results}  # fmt: skip


# ---------------------------------------------------------------- failure modes


def task_fault(env: DistEnv, args) -> dict:
    """`--mode crash`: rank 1 raises before a collective; `--mode hang`: rank 1 never joins it. Rank 0 must
    end with an error (the job fails), never wait forever."""
    t = torch.ones(4)
    if env.rank == 1:
        if args.mode == "crash":
            raise RuntimeError("simulated crash on rank 1 before the all-reduce")
        time.sleep(args.hang_s)  # a stuck rank: never reaches the collective in time
    dist.all_reduce(t)
    return {"sum": t.sum().item()}


# ---------------------------------------------------------------- the trainer under torchrun


WORDS = ("the", "cat", "dog", "sat", "ran", "on", "in", "a", "mat", "hat", "big", "small", "red", "blue", "saw",
         "and", "to", "of", "we", "they", "house", "tree", "old", "new", "fox")  # fmt: skip


def synthetic_text(n_words: int = 6000, seed: int = 0) -> str:
    """Seeded random sentences over a small vocabulary: character-level data with structure to learn (spelling,
    spaces, full stops), built in memory so a test needs no corpus."""
    import numpy as np

    rng = np.random.default_rng(seed)
    words = rng.choice(WORDS, size=n_words)
    stops = rng.random(n_words) < 0.12
    return "".join(w + (". " if stop else " ") for w, stop in zip(words, stops, strict=True))


def train_setup(args, env: DistEnv | None = None):
    """`(model_config, data, train_config)` of the `train` task; a test builds the single-process reference
    from the same arguments (`parse_args([...])`) with no process group."""
    from llm_from_scratch.pipeline import Artifacts
    from llm_from_scratch.train.data import char_data
    from llm_from_scratch.train.trainer import TrainConfig

    if args.data == "shards":
        from llm_from_scratch.distributed.launch import main_rank_first

        art = Artifacts(args.preset)
        data = main_rank_first(env, art.token_data) if env else art.token_data()
    else:
        data = char_data(synthetic_text())
    model_config = preset_config(args.preset).model.replace(vocab_size=data.vocab_size, context_length=args.seq)
    config = TrainConfig(
        max_steps=args.steps,
        batch_size=args.batch,
        grad_accum=args.grad_accum,
        peak_lr=args.lr,
        warmup_frac=0.2,
        grad_clip=args.grad_clip,
        eval_interval=args.steps,
        eval_batches=2,
        log_interval=1,
        seed=0,
    )
    return model_config, data, config


def curve(records: list[dict]) -> dict:
    """The per-step numbers of a run's log."""
    return {
        "losses": [r["loss"] for r in records if "loss" in r],
        "grad_norms": [r["grad_norm"] for r in records if "grad_norm" in r],
        "val_losses": [r["val_loss"] for r in records if "val_loss" in r],
        "tokens": [r["tokens"] for r in records if "tokens" in r],
    }


def curve_diff(a: dict, b: dict) -> float:
    return max(abs(x - y) for k in ("losses", "grad_norms", "val_losses") for x, y in zip(a[k], b[k], strict=True))


def task_train(env: DistEnv, args) -> dict:
    """The real trainer (`llm_from_scratch.train.trainer.train`, what `pretrain --parallel` runs) on the tiny
    model for each strategy of `--parallel` (comma-separated), with `--batch` sequences per rank. Optional
    checks: `--check-checkpoint` (the final checkpoint, loaded by a single process, gives the distributed model's
    logits) and `--resume A:B` (a run under A stopped after `--resume-at` steps and resumed under B reproduces
    the uninterrupted run under A)."""
    from llm_from_scratch.model.checkpoint import load_model
    from llm_from_scratch.train.checkpoint import latest_checkpoint
    from llm_from_scratch.train.trainer import train

    model_config, data, config = train_setup(args, env)
    need_dirs = args.check_checkpoint or args.resume or args.run_dir
    root = None
    if need_dirs:
        root = [args.run_dir or (tempfile.mkdtemp(prefix="train-task-") if env.is_main else None)]
        dist.broadcast_object_list(root, src=0)  # every rank must agree on where rank 0 writes
        root = Path(root[0])

    def run(strategy: str, name: str, **kwargs):
        directory = root / name if root else None
        return train(model_config, data, config, directory, progress=False, parallel=strategy, env=env, **kwargs)

    runs, result = {}, {}
    for strategy in args.parallel.split(","):
        t0 = time.perf_counter()
        res = run(strategy, strategy)
        runs[strategy] = {**curve(res.records), "seconds": time.perf_counter() - t0}
        if env.is_main:
            print(f"{strategy:11s} losses {[round(v, 4) for v in runs[strategy]['losses']]}", flush=True)
        if args.check_checkpoint:
            x = data.val[: 2 * (args.seq + 1)].astype("int64").reshape(2, -1)[:, :-1]
            x = torch.from_numpy(x).to(env.device)
            with torch.no_grad():
                logits = res.model(x)[0].float().cpu()  # every rank: the sharded forward is a collective
            if env.is_main:
                with torch.no_grad():
                    single = load_model(latest_checkpoint(root / strategy))(x.cpu())[0]
                runs[strategy]["checkpoint_logits_diff"] = (single - logits).abs().max().item()
    for pair in filter(None, (args.resume or "").split(",")):
        first, then = pair.split(":")
        run(first, f"{first}-to-{then}", stop_at=args.resume_at)
        resumed = curve(run(then, f"{first}-to-{then}").records)
        result[pair] = {**resumed, "diff_vs_uninterrupted": curve_diff(resumed, runs[first])}
    if root is not None and not args.run_dir:
        dist.barrier()  # every rank is done with the temporary run directories
        if env.is_main:
            shutil.rmtree(root, ignore_errors=True)
    first = args.parallel.split(",")[0]
    return {"parallel": first, "losses": runs[first]["losses"], "runs": runs, "resumed": result}


TASKS = {"ddp": task_ddp, "fsdp": task_fsdp, "tp": task_tp, "dtensor": task_dtensor, "pipeline": task_pipeline,
         "bench": task_bench, "fault": task_fault, "train": task_train}  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("task", choices=sorted(TASKS))
    p.add_argument("--out", help="JSON file rank 0 writes the result to")
    p.add_argument("--preset", default="tiny", choices=PRESET_NAMES)
    p.add_argument("--batch", type=int, default=8, help="global batch (sequences); train: per rank")
    p.add_argument("--seq", type=int, default=32)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--micro", type=int, default=4, help="pipeline micro-batches")
    p.add_argument("--bucket-mb", type=float, default=0.05, help="DataParallel bucket size (small: several buckets)")
    p.add_argument("--ckpt", help="directory for the FSDP full checkpoint")
    p.add_argument("--mode", default="crash", choices=["crash", "hang"])
    p.add_argument("--hang-s", type=float, default=60.0)
    p.add_argument("--timeout-s", type=float, default=60.0, help="collective timeout of the process group")
    p.add_argument("--expect-world-size", type=int)
    p.add_argument("--only", help="bench: comma-separated strategies")
    p.add_argument("--parallel", default="ddp", help="train: strategies, comma-separated (ddp, ddp-scratch, fsdp, "
                   "tp, tp-dtensor)")  # fmt: skip
    p.add_argument("--data", default="text", choices=["text", "shards"], help="train: synthetic text or the shards")
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--run-dir", help="train: directory for the runs' checkpoints (default: a temporary one)")
    p.add_argument("--check-checkpoint", action="store_true")
    p.add_argument("--resume", help="train: A:B[,C:D] stop a run under A and resume it under B")
    p.add_argument("--resume-at", type=int, default=2)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)
    env = setup_distributed(timeout_s=args.timeout_s, expect_world_size=args.expect_world_size)
    if env.world_size < 2:
        raise RuntimeError(
            "the distributed worker needs at least 2 processes; run it under torchrun --nproc_per_node=2"
        )
    try:
        result = TASKS[args.task](env, args)
        if env.is_main:
            text = json.dumps({"task": args.task, **result})
            if args.out:
                Path(args.out).write_text(text + "\n")
            print(text, flush=True)
        dist.barrier()  # nobody tears the group down while a peer still has collectives in flight
    finally:
        cleanup_distributed()
    return 0


if __name__ == "__main__":
    sys.exit(main())
