"""utils: atomic outputs get ordinary permissions, and a work directory lock that a second process cannot take."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
import time

import pytest

from llm_from_scratch.utils import LockedError, atomic_path, current_umask, file_lock


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_path_respects_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        assert current_umask() == umask
        with atomic_path(tmp_path / "out.json") as tmp:
            tmp.write_text("{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "out.json").stat().st_mode) == mode


def test_atomic_path_keeps_the_previous_file_when_the_block_fails(tmp_path):
    out = tmp_path / "kept.jsonl"
    out.write_text("complete\n")
    with pytest.raises(ZeroDivisionError), atomic_path(out) as tmp:
        tmp.write_text("half")
        raise ZeroDivisionError
    assert out.read_text() == "complete\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.jsonl"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_read_only_directory_is_one_permission_error_naming_it(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(PermissionError, match=f"no permission to create files in {ro}"), atomic_path(ro / "x"):
            pass
    finally:
        ro.chmod(0o755)


HOLDER = textwrap.dedent(
    """
    import sys, time
    from llm_from_scratch.utils import file_lock
    with file_lock(sys.argv[1]):
        print("locked", flush=True)
        time.sleep(float(sys.argv[2]))
    """
)


def _hold(lock, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_second_process_gets_one_line_naming_the_holder(tmp_path):
    lock = tmp_path / "work" / ".lock"
    proc = _hold(lock, 30)
    try:
        holder = rf"in use by another process \(pid {proc.pid}, lock file"
        with pytest.raises(LockedError, match=holder), file_lock(lock):
            pass
        start = time.monotonic()
        with pytest.raises(LockedError, match=r"after waiting 0\.5 s"), file_lock(lock, timeout=0.5):
            pass
        assert time.monotonic() - start >= 0.5
    finally:
        proc.kill()
        proc.wait()
    with file_lock(lock):  # the kernel released the killed holder's lock: no stale lock
        assert lock.read_text().strip() == str(os.getpid())


def test_waiting_for_the_lock_gets_it_when_the_holder_finishes(tmp_path):
    lock = tmp_path / ".lock"
    proc = _hold(lock, 1.0)
    try:
        with file_lock(lock, timeout=30):
            assert proc.poll() is not None or proc.wait(5) == 0
    finally:
        proc.kill()
        proc.wait()


def test_check_ranges_names_the_field_value_and_range():
    import dataclasses

    from llm_from_scratch.utils import Range, check_ranges

    @dataclasses.dataclass(frozen=True)
    class Cfg:
        steps: int = 10
        frac: float = 0.1
        block: int | None = None
        kind: str = "a"

    rules = {
        "steps": Range(ge=1, integer=True),
        "frac": Range(gt=0, lt=1),
        "block": Range(ge=1, integer=True),
        "kind": Range(choices=("a", "b")),
    }
    assert check_ranges(Cfg(), rules) == Cfg()
    for bad, message in [
        ({"steps": 0}, r"Cfg\.steps = 0 is out of range: it must be an integer >= 1"),
        ({"steps": -1}, r"Cfg\.steps = -1"),
        ({"steps": 2.5}, r"Cfg\.steps = 2\.5"),
        ({"frac": 1.5}, r"Cfg\.frac = 1\.5 is out of range: it must be a number > 0 and < 1"),
        ({"frac": float("nan")}, r"Cfg\.frac = nan"),
        ({"block": 0}, r"Cfg\.block = 0"),
        ({"kind": "c"}, r"Cfg\.kind = 'c' is out of range: it must be one of \['a', 'b'\]"),
    ]:
        with pytest.raises(ValueError, match=message):
            check_ranges(Cfg(**bad), rules)


def test_verify_sha256_names_a_changed_or_missing_file(tmp_path):
    import hashlib

    from llm_from_scratch.utils import file_sha256, verify_sha256

    (tmp_path / "corpus.jsonl").write_bytes(b'{"text": "a"}\n' * 1000)
    digests = {"corpus.jsonl": file_sha256(tmp_path / "corpus.jsonl")}
    assert digests["corpus.jsonl"] == hashlib.sha256(b'{"text": "a"}\n' * 1000).hexdigest()
    verify_sha256(tmp_path, digests)
    raw = bytearray((tmp_path / "corpus.jsonl").read_bytes())
    raw[500] ^= 1
    (tmp_path / "corpus.jsonl").write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"corpus\.jsonl: its SHA-256 does not match"):
        verify_sha256(tmp_path, digests)
    with pytest.raises(ValueError, match=r"stats\.json is missing"):
        verify_sha256(tmp_path, {"stats.json": "0" * 64})
