"""Fuzz the stage commands with bad input, as a hostile tester would (issue 17).

Every case runs ``python -m llm_from_scratch <stage> ...`` in a fresh process and asserts what a user must see:
a non-zero exit (or a counted rejection), one line on stderr that names the bad file or setting, no traceback, and
every output of an earlier run byte-identical afterwards.

The work directory the cases damage copies of is built once through ``pretrain`` on the tiny preset from a folder
of real text (news articles and Usenet posts that ship with ``gensim``): about a minute on 2 cores.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [sys.executable, "-m", "llm_from_scratch", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=env,
    )


def snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()
    }


def assert_one_line_error(proc: subprocess.CompletedProcess, *names: str) -> str:
    """Non-zero exit, no traceback, and exactly one line on stderr that names each of ``names``."""
    assert proc.returncode != 0, f"exit 0 for bad input:\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{proc.stderr}"
    for name in names:
        assert name in lines[0], f"{name!r} not named in: {lines[0]}"
    return lines[0]


def assert_intact(root: Path, before: dict[str, str]) -> None:
    after = snapshot(root)
    changed = sorted(k for k, v in before.items() if after.get(k) != v)
    assert not changed, f"outputs of the earlier run changed or vanished: {changed}"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    from llm_from_scratch.data.sources import news_articles, usenet_posts

    folder = tmp_path_factory.mktemp("inputs") / "mine"
    folder.mkdir()
    news = [d.text for d in news_articles()][:40]
    for i in range(4):
        (folder / f"news{i}.txt").write_text("\n\n".join(news[i * 10 : (i + 1) * 10]), encoding="utf-8")
    posts = [d.text for d in usenet_posts()][:5]
    (folder / "posts.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in posts), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, inputs) -> tuple[Path, list[str]]:
    """A finished tiny run (curate -> tokenizer -> shards -> pretrain) on the user's folder."""
    work = tmp_path_factory.mktemp("work") / "run"
    config = ["--preset", "tiny", "--out", str(work), "--quiet", "--set", f"data.sources={json.dumps([str(inputs)])}"]
    proc = cli("pretrain", *config)
    assert proc.returncode == 0, proc.stderr
    return work, config


def _copy_inputs(inputs: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(inputs, tmp_path / "mine"))


# ------------------------------------------------------------------------------------------------ curate: bad files
def _truncated_gz(folder: Path) -> Path:
    data = gzip.compress((folder / "news0.txt").read_bytes())
    bad = folder / "extra.txt.gz"
    bad.write_bytes(data[: len(data) // 2])
    return bad


def _broken_link(folder: Path) -> Path:
    bad = folder / "gone.txt"
    bad.symlink_to(folder / "nowhere.txt")  # unreadable even for root, unlike chmod 000
    return bad


def _truncated_wet(folder: Path) -> Path:
    import io

    from warcio.warcwriter import WARCWriter

    bad = folder / "crawl.warc.wet"
    with open(bad, "wb") as f:
        writer = WARCWriter(f, gzip=False)
        for i in range(2):
            payload = io.BytesIO((folder / f"news{i}.txt").read_bytes())
            writer.write_record(writer.create_warc_record(f"http://{i}.example/", "conversion", payload=payload))
    bad.write_bytes(bad.read_bytes()[:-500])  # cut inside the second record
    return bad


@pytest.mark.parametrize("damage", [_truncated_gz, _broken_link, _truncated_wet], ids=lambda f: f.__name__[1:])
def test_curate_bad_file_in_a_folder_is_one_line_and_earlier_outputs_survive(workdir, inputs, tmp_path, damage):
    work, config = workdir
    before = snapshot(work)
    folder = _copy_inputs(inputs, tmp_path)
    bad = damage(folder)
    proc = cli("curate", str(folder), *config[:-2])  # the folder replaces data.sources
    if proc.returncode == 0:  # the documented alternative: skipped and counted in the stats
        new = [p for p in work.glob("curate-*/stats.json") if str(p.relative_to(work)) not in before]
        assert len(new) == 1, "curate exited 0 but wrote no new stats.json"
        stats = json.loads(new[0].read_text())
        assert bad.name in json.dumps(stats), "a skipped file must be counted in stats.json by name"
    else:
        assert_one_line_error(proc, bad.name)
    assert_intact(work, before)


def test_curate_folder_without_readable_files_is_an_error(tmp_path):
    folder = tmp_path / "pdfs"
    folder.mkdir()
    (folder / "paper.pdf").write_bytes(b"%PDF-1.4 not text")
    proc = cli("curate", str(folder), "--preset", "tiny", "--out", str(tmp_path / "work"), "--quiet")
    assert_one_line_error(proc, str(folder))


def test_curate_into_an_unwritable_output_is_one_line(inputs, tmp_path):
    if os.geteuid() == 0:
        out = Path("/sys/llm-from-scratch-fuzz")  # root may write anywhere else; sysfs refuses new folders
    else:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o555)
        out = locked / "work"
    proc = cli("curate", str(inputs), "--preset", "tiny", "--out", str(out), "--quiet")
    assert_one_line_error(proc, str(out))


# --------------------------------------------------------------------------------------------- tokenizer and models
def _step_dir(work: Path) -> Path:
    return sorted(work.glob("pretrain-*/step-*"))[-1]


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: d.update(pattern="gpt5"),
        lambda d: d.pop("merges"),
        lambda d: d.update(merges=[*d["merges"][:2], "Ġzq qz"]),
        lambda d: d["vocab"].update({"zzqq": 7}),
        None,  # truncated
    ],
    ids=["unknown-pattern", "no-merges", "unknown-merge", "duplicate-id", "truncated"],
)
def test_generate_with_a_bad_tokenizer_json_names_the_file(workdir, tmp_path, edit):
    work, _ = workdir
    before = snapshot(work)
    good = next(work.glob("tokenizer-*/tokenizer.json")).read_text(encoding="utf-8")
    bad = tmp_path / "tok.json"
    if edit is None:
        bad.write_text(good[: len(good) // 2], encoding="utf-8")
    else:
        data = json.loads(good)
        edit(data)
        bad.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    proc = cli("generate", str(_step_dir(work)), "--tokenizer", str(bad), "--prompt", "The", "--max-new-tokens", "4")
    assert_one_line_error(proc, str(bad))
    assert_intact(work, before)


def test_generate_on_a_truncated_safetensors_names_the_file(workdir, tmp_path):
    work, _ = workdir
    before = snapshot(work)
    ckpt = Path(shutil.copytree(_step_dir(work), tmp_path / "ckpt"))
    weights = ckpt / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 3])
    proc = cli("generate", str(ckpt), "--prompt-ids", "0 1 2", "--max-new-tokens", "4")
    assert_one_line_error(proc, "model.safetensors")
    assert_intact(work, before)


def test_corrupt_shard_is_refused_before_training(workdir, tmp_path):
    work, config = workdir
    copy = Path(shutil.copytree(work, tmp_path / "run"))
    shard = next(copy.glob("shards-*/train_000000.bin"))
    raw = bytearray(shard.read_bytes())
    at = 256 + 2 * 100
    current = int.from_bytes(raw[at : at + 2], "little")
    raw[at : at + 2] = ((current + 1) % 200).to_bytes(2, "little")  # another valid id in its place
    shard.write_bytes(bytes(raw))
    before = snapshot(copy)
    # another number of steps is another pretraining stage: it reads the (damaged) shards again
    proc = cli("pretrain", *config[:3], str(copy), *config[4:], "--set", "pretrain.max_steps=7")
    assert_one_line_error(proc, shard.name)
    assert_intact(copy, before)


# ---------------------------------------------------------------------------------------------------- bad settings
@pytest.mark.parametrize(
    "setting, field",
    [
        ("pretrain.max_steps=0", "max_steps"),
        ("pretrain.max_steps=-1", "max_steps"),
        ("pretrain.batch_size=0", "batch_size"),
        ("sft.lr=-0.001", "lr"),
        ("rlhf.group_size=1", "group_size"),
        ("shards.val_fraction=1.5", "val_fraction"),
    ],
)
def test_out_of_range_setting_stops_before_any_stage_runs(tmp_path, setting, field):
    work = tmp_path / "work"
    proc = cli("pretrain", "--preset", "tiny", "--out", str(work), "--quiet", "--set", setting)
    assert_one_line_error(proc, field)
    assert not any(work.rglob("*.jsonl")), "a stage ran before the configuration was checked"
