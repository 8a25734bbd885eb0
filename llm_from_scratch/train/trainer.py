"""The pretraining loop: accumulation, clipping, autocast, evaluation, logging, checkpoints, exact resume."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from llm_from_scratch.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from llm_from_scratch.train.data import TokenData, eval_windows, train_batch
from llm_from_scratch.train.metrics import bits_per_byte, measured_peak_flops, perplexity
from llm_from_scratch.train.muon import Muon, muon_param_groups
from llm_from_scratch.train.optim import AdamW, param_groups
from llm_from_scratch.train.schedule import lr_at
from llm_from_scratch.utils import Range, autocast_dtype, check_ranges, seed_everything

if TYPE_CHECKING:
    from llm_from_scratch.distributed.launch import DistEnv

LOG_FILE = "log.jsonl"


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a pretraining run besides the model and the data."""

    max_steps: int = 1000  # optimiser steps
    batch_size: int = 16  # sequences per micro-batch
    grad_accum: int = 1  # micro-batches per optimiser step
    block_size: int | None = None  # tokens per sequence; None = the model's context length
    peak_lr: float = 3e-3
    warmup_frac: float = 0.02
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    grad_clip: float = 1.0  # max global L2 norm of the gradient; 0 disables clipping (the norm is still logged)
    eval_interval: int = 100
    eval_batches: int = 8
    eval_batch_size: int | None = None  # None = batch_size (x data-parallel ranks: the global batch)
    log_interval: int = 10
    sample_interval: int = 0  # 0 = samples only at the end (if a decoder is available)
    ckpt_interval: int = 0  # 0 = a checkpoint at the end only
    seed: int = 1337
    autocast: str = "auto"  # "auto", "off", or "bf16"/"fp16" to force one
    compile: bool = False
    # The recipe of the speedrun chapter (train/muon.py, train/schedule.py); the defaults are the plain AdamW run.
    optimizer: str = "adamw"  # "adamw", or "muon": Muon for the hidden matrices, AdamW (peak_lr) for the rest
    muon_lr: float = 0.02  # Muon's peak step, scaled by the same schedule as peak_lr
    muon_momentum: float = 0.95
    muon_weight_decay: float = 0.0
    schedule: str = "cosine"  # "cosine", or "wsd": warmup, stable at the peak, linear decay over decay_frac
    decay_frac: float = 0.2
    # "random": each step's windows drawn afresh (some text repeats, some is never seen); "epochs": every token once
    # per epoch (tokenizer/loader.py), what a run of more than a fraction of an epoch wants
    sampling: str = "random"

    def to_dict(self) -> dict:
        # The recipe fields are left out at their defaults: the keys of cached runs and the train_config recorded
        # in existing checkpoints stay valid (they predate these fields and mean the same run).
        d = dataclasses.asdict(self)
        for f in dataclasses.fields(self):
            if f.name in _RECIPE_FIELDS and d[f.name] == f.default:
                del d[f.name]
        return d

    def validate(self) -> TrainConfig:
        """One `ValueError` naming the field, its value and the range when a setting cannot work: checked before any
        stage runs (`max_steps = 0` once recorded a finished run without a checkpoint)."""
        betas = self.betas
        if not (
            isinstance(betas, tuple | list)
            and len(betas) == 2
            and all(isinstance(b, int | float) and not isinstance(b, bool) and 0 <= b < 1 for b in betas)
        ):
            raise ValueError(f"TrainConfig.betas = {betas!r} is out of range: it must be two numbers in [0, 1)")
        return check_ranges(
            self,
            {
                "max_steps": Range(ge=1, integer=True),
                "batch_size": Range(ge=1, integer=True),
                "grad_accum": Range(ge=1, integer=True),
                "block_size": Range(ge=1, integer=True),
                "peak_lr": Range(gt=0),
                "warmup_frac": Range(ge=0, le=1),
                "min_lr_ratio": Range(ge=0, le=1),
                "weight_decay": Range(ge=0),
                "eps": Range(gt=0),
                "grad_clip": Range(ge=0),
                "eval_interval": Range(ge=1, integer=True),
                "eval_batches": Range(ge=1, integer=True),
                "eval_batch_size": Range(ge=1, integer=True),
                "log_interval": Range(ge=1, integer=True),
                "sample_interval": Range(ge=0, integer=True),
                "ckpt_interval": Range(ge=0, integer=True),
                "autocast": Range(choices=("auto", "off", "bf16", "fp16")),
                "optimizer": Range(choices=("adamw", "muon")),
                "muon_lr": Range(gt=0),
                "muon_momentum": Range(ge=0, lt=1),
                "muon_weight_decay": Range(ge=0),
                "schedule": Range(choices=("cosine", "wsd")),
                "sampling": Range(choices=("random", "epochs")),
                "decay_frac": Range(ge=0, le=1),
            },
        )


_RECIPE_FIELDS = ("optimizer", "muon_lr", "muon_momentum", "muon_weight_decay", "schedule", "decay_frac", "sampling")
OPTIMIZERS = ("adamw", "muon")


@dataclass
class TrainResult:
    model: nn.Module
    records: list[dict] = field(default_factory=list)
    run_dir: Path | None = None

    def last(self, key: str) -> float | None:
        for r in reversed(self.records):
            if key in r:
                return r[key]
        return None

    def series(self, key: str) -> tuple[list[int], list[float]]:
        pts = [(r["step"], r[key]) for r in self.records if key in r]
        return [p[0] for p in pts], [p[1] for p in pts]


def choose_autocast(setting: str, device: str, d_model: int) -> torch.dtype | None:
    """The autocast dtype to train with. `auto`: on GPUs always; on a CPU only with AMX matrix units and a model
    wide enough (`d_model >= 256`) that its matmuls, not the bf16 conversions, dominate the step."""
    if setting == "off":
        return None
    if setting in ("bf16", "fp16"):
        return torch.bfloat16 if setting == "bf16" else torch.float16
    if setting != "auto":
        raise ValueError(f"autocast must be 'auto', 'off', 'bf16' or 'fp16', got {setting!r}")
    dtype = autocast_dtype(device)
    if device.startswith("cpu") and not (_cpu_has_amx() and d_model >= 256):
        return None  # measured: AVX512-BF16 without AMX, or a narrow model, trains slower in bf16 than in fp32
    return dtype


def _cpu_has_amx() -> bool:
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        return "amx_bf16" in f.read()
    return False


def evaluate(model: nn.Module, windows: list[torch.Tensor], device: str, amp: torch.dtype | None) -> float:
    """Mean validation cross-entropy (nats per token) over fixed windows."""
    total, count = eval_sums(model, windows, device, amp)
    return total / count


@torch.no_grad()
def eval_sums(model: nn.Module, windows: list[torch.Tensor], device: str, amp: torch.dtype | None) -> tuple[float, int]:
    """Summed cross-entropy and number of predicted tokens over `windows` (data-parallel ranks add theirs up)."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for w in windows:
        w = w.to(device)
        with _autocast(device, amp):
            _, loss = model(w[:, :-1], w[:, 1:])
        total += loss.item() * w[:, 1:].numel()
        count += w[:, 1:].numel()
    model.train(was_training)
    return total, count


def _autocast(device: str, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.split(":")[0], dtype=dtype)


def train(
    model_config,
    data: TokenData,
    config: TrainConfig = TrainConfig(),
    run_dir: str | Path | None = None,
    *,
    resume: bool = True,
    stop_at: int | None = None,
    device: str | None = None,
    progress: bool = True,
    sample_prompt: str = "\n",
    sample_fn: Callable[[nn.Module], str] | None = None,
    model: nn.Module | None = None,
    parallel: str = "none",
    env: DistEnv | None = None,
) -> TrainResult:
    """Pretrain a `Transformer(model_config)` on `data`; resume from `run_dir`'s latest checkpoint if any.

    `stop_at` ends the run after that many steps (with a checkpoint), as an interruption would; calling
    `train` again with the same arguments continues it and yields the same losses as one uninterrupted run.
    `model` trains another architecture with the same interface (`forward(idx, targets) -> (logits, loss)`,
    `flops_per_token(T)`) instead of `Transformer(model_config)`; the benchmark's GPT-2 baseline uses it.

    `parallel` (`ddp`, `ddp-scratch`, `fsdp`, `tp`, `tp-dtensor`) trains under `torchrun`, every rank
    calling `train` with the same arguments (`env`: an already joined process group). `batch_size` is per
    rank: data-parallel ranks read disjoint slices of a global batch `world_size` times larger, tensor-parallel
    ranks the same batch. The logged loss is the global batch's, rank 0 alone writes the log, samples and
    checkpoints, and a checkpoint is the single-process one (full weights and moments), so a run resumes under
    any strategy with as many data-parallel ranks. The caller leaves the process group
    (`cleanup_distributed`). The result's model is sharded under FSDP and tensor parallelism.
    """
    from llm_from_scratch.distributed.parallel import ParallelRun
    from llm_from_scratch.model import Transformer

    if parallel != "none" and model is not None:
        raise ValueError("train(model=...) trains another architecture in one process only; use parallel='none'")
    par = ParallelRun.start(parallel, model_config, env, device)  # "none": one process, nothing changes
    device = par.device
    seed_everything(config.seed)
    block = config.block_size or model_config.context_length
    model = (model if model is not None else Transformer(model_config)).to(device)
    # our Transformer fuses the head with the loss when it need not return logits (model/loss.py)
    step_kwargs = {"return_logits": False} if isinstance(model, Transformer) else {}
    flops_per_token = model.flops_per_token(block)

    if config.optimizer not in OPTIMIZERS:
        raise ValueError(f"TrainConfig.optimizer must be one of {OPTIMIZERS}, got {config.optimizer!r}")
    if config.optimizer == "muon" and parallel not in ("none", "ddp", "ddp-scratch"):
        raise ValueError(
            f"optimizer='muon' orthogonalises whole matrices, which parallel={parallel!r} shards; "
            "train with parallel='ddp' (or none), or with optimizer='adamw'"
        )

    def make_optimizer(m: nn.Module) -> torch.optim.Optimizer:
        if config.optimizer == "muon":
            mult = config.muon_lr / config.peak_lr
            groups = muon_param_groups(m, config.weight_decay, mult, config.muon_weight_decay)
            return Muon(groups, lr=config.peak_lr, momentum=config.muon_momentum, betas=config.betas, eps=config.eps)
        return AdamW(param_groups(m, config.weight_decay), lr=config.peak_lr, betas=config.betas, eps=config.eps)

    optimizer = make_optimizer(model)
    run_dir = Path(run_dir) if run_dir is not None else None
    log_path = run_dir / LOG_FILE if run_dir else None
    expect = {"train_config": json.loads(json.dumps(config.to_dict())), "tokenizer_fingerprint": data.fingerprint}
    start, records = 0, []
    ckpt = par.agree(latest_checkpoint(run_dir) if (run_dir and resume and par.is_main) else None)
    if ckpt is not None:
        state = load_checkpoint(ckpt, model, optimizer, expect=expect)  # the full state, before any sharding
        par.check_resume(state, ckpt)
        start = state["step"]
        records = [r for r in read_log(log_path) if r["step"] <= start]
    if log_path and par.is_main:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        _write_log(log_path, records)  # drop what a killed run logged after its last checkpoint
    model, optimizer = par.wrap(model, optimizer, make_optimizer)  # one process: both unchanged

    amp = choose_autocast(config.autocast, device, model_config.d_model)
    step_fn = torch.compile(model) if config.compile else model
    eval_batch = config.eval_batch_size or config.batch_size * par.data_world  # the same windows in every layout
    val_windows = eval_windows(data.val, eval_batch, block, config.eval_batches)
    tokens_per_step = config.batch_size * config.grad_accum * block * par.data_world
    flops_per_step = flops_per_token * tokens_per_step
    peak = measured_peak_flops(device, amp) * par.env.world_size
    sampler = sample_fn or _default_sampler(data, sample_prompt, device)

    def log(record: dict) -> None:
        records.append(record)
        if log_path and par.is_main:
            with open(log_path, "a") as f:
                f.write(json.dumps(record) + "\n")

    def eval_record(step: int) -> dict:
        # data parallel: each rank its rows of every window batch; sharded models: every rank runs every forward
        loss = par.evaluate(model, val_windows, lambda m, ws: eval_sums(m, ws, device, amp))
        return {
            "step": step,
            "val_loss": loss,
            "val_ppl": perplexity(loss),
            "val_bpb": bits_per_byte(loss, data.bytes_per_token),
        }

    if start == 0:
        log(eval_record(0))
    elapsed = next((r["elapsed"] for r in reversed(records) if "elapsed" in r), 0.0)
    end = min(config.max_steps, stop_at) if stop_at else config.max_steps
    bar = _progress(range(start, end), progress and par.is_main, config.max_steps, start)
    model.train()
    for step in bar:
        t0 = time.perf_counter()
        lr = lr_at(
            step,
            config.peak_lr,
            config.max_steps,
            config.warmup_frac,
            config.min_lr_ratio,
            config.schedule,
            config.decay_frac,
        )
        for group in optimizer.param_groups:
            group["lr"] = lr  # Muon's groups multiply it by their lr_mult
        loss_sum = 0.0
        for micro in range(config.grad_accum):
            x, y = train_batch(
                data,
                config.batch_size,
                block,
                config.seed,
                step,
                micro,
                config.grad_accum,
                device,
                *par.data_shard,
                order=config.sampling,
            )
            with par.no_sync(model, last=micro == config.grad_accum - 1):
                with _autocast(device, amp):
                    _, loss = step_fn(x, y, **step_kwargs)
                (loss / config.grad_accum).backward()  # the mean over micro-batches = the loss of the full batch
            loss_sum += loss.item()
        norm = par.clip_grad_norm(model, config.grad_clip or math.inf)  # the global norm before clipping
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        done = step + 1
        dt = time.perf_counter() - t0
        elapsed += dt  # time spent in training steps only (no evaluation, sampling or checkpoints)
        train_loss = par.mean(loss_sum / config.grad_accum)  # data parallel: the mean over the global batch
        if done % config.log_interval == 0 or done == config.max_steps or done == 1:
            log(
                {
                    "step": done,
                    "loss": train_loss,
                    "lr": lr,
                    "grad_norm": norm,
                    "tokens": done * tokens_per_step,
                    "tok_per_s": tokens_per_step / dt,
                    "mfu": flops_per_step / dt / peak,
                    "dt": dt,
                    "elapsed": elapsed,
                }
            )
        if hasattr(bar, "set_postfix"):
            bar.set_postfix(loss=f"{train_loss:.3f}", lr=f"{lr:.1e}", norm=f"{norm:.2f}")
        if done % config.eval_interval == 0 or done == config.max_steps:
            log(eval_record(done))
        final = done == config.max_steps
        want_sample = sampler and ((config.sample_interval and done % config.sample_interval == 0) or final)
        want_ckpt = run_dir and ((config.ckpt_interval and done % config.ckpt_interval == 0) or done == end)
        if want_sample or want_ckpt:  # sharded: gathered on rank 0 (every rank takes part)
            full, full_opt = par.full_model(model, optimizer if want_ckpt else None, make_optimizer)
        if want_sample and par.is_main:
            log({"step": done, "sample": sampler(full)})
        if want_ckpt and par.is_main:
            save_checkpoint(
                run_dir,
                done,
                full,
                full_opt,
                model_config,
                {
                    "train_config": expect["train_config"],
                    "tokenizer_fingerprint": data.fingerprint,
                    "data_position": {"step": done, "seed": config.seed},
                    **par.checkpoint_state(),
                },
            )
        if want_ckpt:
            par.barrier()  # no rank runs ahead of (or returns before) a checkpoint being written
    if hasattr(bar, "close"):
        bar.close()
    model.eval()
    return TrainResult(model=par.result_model(model), records=records, run_dir=run_dir)


def _default_sampler(
    data: TokenData, prompt: str, device: str, sample_tokens: int = 64
) -> Callable[[nn.Module], str] | None:
    """Sampling (temperature 0.8, top-k 50) of up to 64 tokens from a fixed seed, with the global RNG
    untouched so sampling never changes the training run."""
    if data.decode is None or data.encode is None:
        return None

    def sample(model: nn.Module) -> str:
        from llm_from_scratch.model import generate

        was_training = model.training
        model.eval()
        device_ = next(model.parameters()).device
        idx = torch.tensor([data.encode(prompt) or [0]], device=device_)
        g = torch.Generator(device=device_).manual_seed(0)
        with torch.no_grad():
            n = min(sample_tokens, model.config.context_length - idx.shape[1])
            out = generate(model, idx, n, temperature=0.8, top_k=50, generator=g)
        model.train(was_training)
        return data.decode(out[0, idx.shape[1] :].tolist())

    return sample


def _progress(it, enabled: bool, total: int, start: int):
    if not enabled:
        return it
    from tqdm.auto import tqdm

    return tqdm(it, total=total, initial=start, desc="pretrain", unit="step", dynamic_ncols=True)


def read_log(path: Path | None) -> list[dict]:
    if path is None or not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(json.JSONDecodeError):  # a line cut short by a kill is dropped
            out.append(json.loads(line))
    return out


def _write_log(path: Path, records: list[dict]) -> None:
    from llm_from_scratch.utils import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in records))
