"""Cross-cutting helpers every stage shares: seeds, devices, the artifact cache, atomic writes.

Nothing else in the package hard-codes a device, a seed or a cache path; see `shared/notes/design.md`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import random
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

CACHE_ENV = "LLM_FROM_SCRATCH_CACHE"


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and all GPUs) so a run is reproducible from one integer."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    try:
        import torch
    except ImportError:  # the data chapters do not need torch
        return
    torch.manual_seed(seed)


def pick_device(preferred: str | None = None) -> str:
    """Return `preferred` if it is usable, else the best available: CUDA, then Apple MPS, then CPU.

    An explicitly requested device that this machine does not have is an error, not a silent fallback,
    because a run that quietly lands on the CPU would take hours instead of minutes.
    """
    import torch

    if preferred is not None:
        kind = preferred.split(":")[0]
        available = {
            "cpu": True,
            "cuda": torch.cuda.is_available(),
            "mps": torch.backends.mps.is_available(),
        }
        if kind not in available:
            raise ValueError(f"unknown device {preferred!r}: use 'cpu', 'cuda', 'cuda:N' or 'mps'")
        if not available[kind]:
            raise RuntimeError(
                f"device {preferred!r} was requested but is not available on this machine; "
                "pass --device cpu (or leave it out to pick the best available device)"
            )
        return preferred
    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def autocast_dtype(device: str):
    """The low-precision dtype that speeds up matmuls on `device`, or `None` where none helps.

    CUDA GPUs from Ampere on and CPUs with native bf16 instructions (Intel AMX, AVX512-BF16 on Xeon and AMD Zen 4)
    run bf16 matmuls fast; elsewhere bf16 is emulated and slower than fp32.
    """
    import torch

    kind = device.split(":")[0]
    if kind == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if kind == "cpu" and _cpu_has_native_bf16():
        return torch.bfloat16
    return None


def _cpu_has_native_bf16() -> bool:
    with contextlib.suppress(OSError):
        flags = Path("/proc/cpuinfo").read_text()
        return "amx_bf16" in flags or "avx512_bf16" in flags
    return False


def cache_dir() -> Path:
    """Root of the artifact cache: `$LLM_FROM_SCRATCH_CACHE`, else the user's cache directory."""
    root = os.environ.get(CACHE_ENV)
    if root:
        path = Path(root).expanduser()
    else:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        path = Path(base) / "llm-from-scratch"
    path.mkdir(parents=True, exist_ok=True)
    return path


def config_key(config: Any) -> str:
    """A short stable hash of a JSON-serialisable config, used to key cached artifacts."""
    if hasattr(config, "__dataclass_fields__"):
        from dataclasses import asdict

        config = asdict(config)
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (`os.umask` alone must set it to read it,
    which for a moment gives files created by other threads the wrong mode)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the same directory; rename it onto `path` only if the block succeeds.

    `os.replace` is atomic on POSIX and Windows, so a reader sees either the old file or the complete new one,
    never a half-written file, even if the writer is killed mid-write. The file gets the mode any new file gets
    (0644 under the usual umask), not the 0600 of `mkstemp`. A directory that cannot be written is one
    `PermissionError` naming it.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except PermissionError:
        raise PermissionError(
            f"cannot write {path}: no permission to create files in {path.parent}; choose another output directory "
            "or fix its permissions"
        ) from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp_path, 0o666 & ~current_umask())
        os.replace(tmp_path, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()


class LockedError(RuntimeError):
    """Another process holds the lock on a work directory or artifact."""


@contextlib.contextmanager
def file_lock(path: str | os.PathLike, timeout: float | None = 0.0, poll: float = 0.2) -> Iterator[Path]:
    """Hold an exclusive `fcntl` lock on `path` (e.g. `WORKDIR/.lock`) for the duration of the block.

    `timeout` 0 fails at once, a number of seconds waits that long, `None` waits for ever. A process that
    cannot get the lock raises `LockedError` with one line naming the holder's pid. The lock is released by
    the kernel when its holder exits, even by SIGKILL, so a crashed run never leaves a stale lock behind; the file
    itself stays (removing it would let a third process lock a different inode).
    """
    import fcntl
    import time

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if deadline is not None and time.monotonic() >= deadline:
                    holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
                    waited = f" after waiting {timeout:g} s" if timeout else ""
                    raise LockedError(
                        f"{path.parent} is in use by another process (pid {holder}, lock file {path}){waited}; "
                        "wait for it to finish or use another directory"
                    ) from None
                time.sleep(poll)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@dataclasses.dataclass(frozen=True)
class Range:
    """The allowed values of one config field: bounds (`ge`/`gt`/`le`/`lt`), integers only, or choices.

    `None` passes when the field's default is `None` (an optional setting left unset)."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    integer: bool = False
    choices: tuple = ()

    def describe(self) -> str:
        if self.choices:
            return f"one of {list(self.choices)}"
        parts = [
            f"{op} {v}" for op, v in ((">=", self.ge), (">", self.gt), ("<=", self.le), ("<", self.lt)) if v is not None
        ]
        return ("an integer " if self.integer else "a number ") + " and ".join(parts) if parts else "a number"

    def accepts(self, value: Any) -> bool:
        if self.choices:
            return value in self.choices
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or (self.integer and not isinstance(value, int))
        ):
            return False
        if value != value:  # NaN passes no comparison but must not pass the check
            return False
        return not (
            (self.ge is not None and value < self.ge)
            or (self.gt is not None and value <= self.gt)
            or (self.le is not None and value > self.le)
            or (self.lt is not None and value >= self.lt)
        )


def check_ranges(config: Any, ranges: dict[str, Range]) -> Any:
    """Return `config` if each field named in `ranges` is allowed, else one `ValueError` naming the field,
    its value and the range: what `validate()` of a stage config calls, before any stage runs."""
    defaults = {f.name: f.default for f in dataclasses.fields(config)}
    for name, allowed in ranges.items():
        value = getattr(config, name)
        if value is None and defaults.get(name) is None:
            continue
        if not allowed.accepts(value):
            raise ValueError(
                f"{type(config).__name__}.{name} = {value!r} is out of range: it must be {allowed.describe()}"
            )
    return config


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks (bounded memory for files of any size)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify_sha256(directory: str | os.PathLike, digests: dict[str, str]) -> None:
    """Check the files of an artifact folder against the digests recorded when it was built (`{name: sha256}`);
    a missing or changed file is one `ValueError` naming it and saying how to rebuild."""
    directory = Path(directory)
    for name, digest in digests.items():
        path = directory / name
        if not path.is_file():
            raise ValueError(f"{path} is missing from the finished artifact; delete {directory} to rebuild it")
        if file_sha256(path) != digest:
            raise ValueError(
                f"{path}: its SHA-256 does not match the one recorded when it was built (the file changed or was "
                f"damaged); delete {directory} to rebuild it"
            )
