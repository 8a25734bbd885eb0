"""The one resolver: every artifact of the pipeline, built on first request and found afterwards.

`Artifacts(config_or_preset, root)` keys each stage of `llm_from_scratch.pipeline.registry` by the config
sections it declares and the keys of the stages it reads (a Merkle chain: change a field and that stage and
everything downstream get new keys, while upstream artifacts are reused). A stage's artifact is the directory
`root/<stage>-<key>`; `stage.json` (metrics and wall time) is written atomically *last*, so its presence means
the stage finished. A stage killed before that simply builds again, except pretraining, which resumes from its
latest checkpoint. The chapters, every stage command and `llm-from-scratch run` all ask this class, under one
root (`$LLM_FROM_SCRATCH_CACHE`, else the user's cache directory), so whatever one built the others reuse.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from llm_from_scratch.pipeline.config import RunConfig, load_config, merge_tables
from llm_from_scratch.pipeline.registry import MODEL_STAGES, REGISTRY, stage
from llm_from_scratch.utils import atomic_path, cache_dir, config_key, file_sha256, verify_sha256

MARKER = "stage.json"


def _section(obj: Any) -> dict:
    return obj.to_dict() if hasattr(obj, "to_dict") else asdict(obj)


def _source_identity(sources: tuple[str, ...]) -> list:
    """What keys the corpus besides its config: for each source that is a path (the user's own files), the size and
    modification time of every file under it, so that a changed folder means a new corpus, not a stale one."""
    out: list = []
    for name in sources:
        path = Path(name).expanduser()
        if not path.exists():
            out.append(name)  # a built-in source: its name and the data package's version say what it is
            continue
        files = sorted(p for p in ([path] if path.is_file() else path.rglob("*")) if p.is_file())
        out.append([str(path.resolve()), [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files]])
    return out


class Artifacts:
    """The artifacts of one config under one root.

    `Artifacts("book")` is the book preset under the default root; `Artifacts("tiny", overrides={"dpo":
    {"beta": 0.3}})` another DPO run that reuses every upstream artifact. `ensure(stage)` builds a stage (and
    its inputs) unless it exists and returns its directory; the accessors below (`corpus_path`, `tokenizer`,
    `token_data`, `model`, `pairs`, ...) call it, so asking for any artifact is enough.
    """

    def __init__(
        self,
        config: RunConfig | str = "book",
        root: str | Path | None = None,
        *,
        overrides: dict | None = None,
        device: str | None = None,
        progress: bool = False,
        log: Callable[[str], None] | None = None,
        env: Any = None,
    ) -> None:
        if isinstance(config, str) or overrides:
            preset = config if isinstance(config, str) else None
            base = {} if isinstance(config, str) else config.to_dict()
            config = load_config(None, preset or base["run"]["preset"], merge_tables(base, overrides or {}))
        self.config: RunConfig = config
        self.root = Path(root).expanduser().resolve() if root else cache_dir()
        self._device = device
        self.progress = progress
        self.log = log or (lambda _message: None)
        self.env = env  # the torchrun process group while pretraining runs on several ranks, else None
        self.world_size = env.world_size if env is not None else 1
        self.results: dict[str, dict] = {}
        self._keys: dict[str, str] = {}
        self._cache: dict[str, Any] = {}

    # ---------------------------------------------------------------------------------------------- keys, dirs
    @property
    def device(self) -> str:
        if self.env is not None:
            return self.env.device
        if self._device is None:
            from llm_from_scratch.utils import pick_device

            self._device = pick_device(None if self.config.run.device == "auto" else self.config.run.device)
        return self._device

    def stages(self) -> tuple[str, ...]:
        """The stages this config runs, in pipeline order (RLHF and its reward model only with `run.rlhf`)."""
        return tuple(s for s in REGISTRY if self.config.run.rlhf or s not in ("reward", "rlhf"))

    def model_stages(self) -> tuple[str, ...]:
        return tuple(s for s in MODEL_STAGES if s in self.stages())

    def key(self, name: str) -> str:
        """The stage's config sections plus the keys of its inputs. Pretraining on `world_size > 1` ranks adds the
        strategy and the world size (a data-parallel global batch is larger)."""
        if name not in self._keys:
            spec = stage(name)
            parts = {s: _section(getattr(self.config, s)) for s in spec.sections}
            if name == "pretrain":
                parts["model"].pop("vocab_size")  # follows the tokenizer, which is already in the key
                if self.world_size > 1:
                    parts["distributed"] = {"parallel": self.config.run.parallel, "world_size": self.world_size}
            if name == "curate":  # the data stage versions its output format: a new version means a new corpus
                from llm_from_scratch.data.corpus import CORPUS_VERSION

                parts["corpus_version"] = CORPUS_VERSION
                # paths as the files they name (~/texts and /home/me/texts are one corpus; an edited file, another)
                parts["data"]["sources"] = _source_identity(self.config.data.sources)
            inputs = {i: self.key(i) for i in spec.inputs if i in self.stages()}
            self._keys[name] = config_key({"stage": name, "config": parts, "inputs": inputs})
        return self._keys[name]

    def dir(self, name: str) -> Path:
        return self.root / f"{name}-{self.key(name)}"

    def dirs(self) -> dict[str, Path]:
        return {name: self.dir(name) for name in self.stages()}

    def done(self, name: str) -> bool:
        return (self.dir(name) / MARKER).exists()

    # ------------------------------------------------------------------------------------------------ building
    def ensure(self, name: str) -> Path:
        """The finished artifact directory of `name`, building its inputs and then it when it is missing."""
        out = self.dir(name)
        if name in self.results:
            return out
        marker = out / MARKER
        if marker.exists():
            self.results[name] = _verified(out, marker)
            self.log(f"{name}: reused {out}")
            return out
        if name not in self.stages():
            raise ValueError(f"stage {name!r} is off in this config (run.rlhf = false)")
        for dep in stage(name).inputs:
            if dep in self.stages():
                self.ensure(dep)
        # One builder per artifact: a second process waits for the first, then finds it built. Under torchrun every
        # rank builds pretraining together (and rank 0 alone the data stages), so no lock is taken there.
        with contextlib.nullcontext() if self.env is not None else self._lock(name):
            if marker.exists():
                return self.ensure(name)
            self.log(f"{name}: building {out}")
            out.mkdir(parents=True, exist_ok=True)
            t0 = time.perf_counter()
            metrics = stage(name).build(self, out)
            record = {"stage": name, "wall_s": time.perf_counter() - t0, "device": self.device, "metrics": metrics,
                      "sha256": _checksums(out)}  # fmt: skip
            if self.env is None or self.env.is_main:
                with atomic_path(marker) as tmp:
                    tmp.write_text(json.dumps(record, indent=1, default=float))
        self.results[name] = record
        self.log(f"{name}: built {out} in {record['wall_s']:.1f} s")
        return out

    @contextlib.contextmanager
    def _lock(self, name: str):
        from llm_from_scratch.utils import LockedError, file_lock

        path = self.root / f".{name}-{self.key(name)}.lock"
        held = contextlib.ExitStack()
        try:
            held.enter_context(file_lock(path, timeout=0))
        except LockedError:
            self.log(f"{name}: another process is building {self.dir(name)}; waiting for it")
            held.enter_context(file_lock(path, timeout=None))
        with held:
            yield

    def stage_metrics(self, name: str) -> dict:
        self.ensure(name)
        return self.results[name]["metrics"]

    # --------------------------------------------------------------------------------------- data and tokens
    def corpus_path(self) -> Path:
        """The curated corpus: JSONL, one `{"id", "source", "text"}` object per line."""
        return self.ensure("curate") / "corpus.jsonl"

    def curation_stats(self) -> dict:
        """Per-stage statistics of the curation run (documents and bytes in and out, rejection reasons)."""
        return json.loads((self.ensure("curate") / "stats.json").read_text())

    def rejected_documents(self) -> Iterator[dict]:
        """The documents curation rejected: `{"id", "source", "stage", "reason", "text"}`."""
        with open(self.ensure("curate") / "rejected.jsonl", encoding="utf-8") as f:
            for line in f:
                yield json.loads(line)

    def texts(self) -> Iterator[str]:
        """The curated corpus's texts, one document at a time."""
        from llm_from_scratch.tokenizer.build import iter_jsonl_texts

        return iter_jsonl_texts(self.corpus_path())

    def tokenizer_path(self) -> Path:
        return self.ensure("tokenizer") / "tokenizer.json"

    def tokenizer(self):
        if "tokenizer" not in self._cache:
            from llm_from_scratch.tokenizer.build import load_tokenizer

            self._cache["tokenizer"] = load_tokenizer(self.tokenizer_path())
        return self._cache["tokenizer"]

    def shards(self):
        from llm_from_scratch.tokenizer.shards import ShardSet

        return ShardSet.load(self.ensure("shards"))

    def token_data(self):
        """The shards as the trainer's `TokenData` (train and validation token streams, bytes per token)."""
        if "token_data" not in self._cache:
            from llm_from_scratch.train.data import shards_token_data

            self._cache["token_data"] = shards_token_data(self.shards(), self.tokenizer())
        return self._cache["token_data"]

    # ------------------------------------------------------------------------------------------------- models
    def pretrain_run(self):
        """The finished pretraining run: `TrainResult` with the final model, the log records and the run dir."""
        from llm_from_scratch.train.trainer import LOG_FILE, TrainResult, read_log

        directory = self.ensure("pretrain")
        return TrainResult(model=self.model("pretrain"), records=read_log(directory / LOG_FILE), run_dir=directory)

    def model_dir(self, name: str) -> Path:
        """The directory holding the weights of a model stage (`base` = `pretrain`): a checkpoint for pretraining,
        `model/` for the others."""
        from llm_from_scratch.train.checkpoint import latest_checkpoint

        name = {"base": "pretrain"}.get(name, name)
        if name not in (*MODEL_STAGES, "reward"):
            raise ValueError(f"{name!r} is not a model stage: choose one of {['base', *MODEL_STAGES[1:]]}")
        directory = self.ensure(name)
        if name != "pretrain":
            return directory / "model"
        ckpt = latest_checkpoint(directory)
        if ckpt is None:
            raise FileNotFoundError(f"{directory} holds no checkpoint: delete the folder to pretrain again")
        return ckpt

    def model(self, name: str):
        """A fresh copy of the model a stage produced (`base`/`pretrain`, `sft`, `dpo`, `rlhf`), in eval
        mode on this resolver's device."""
        from llm_from_scratch.train.checkpoint import load_model

        return load_model(self.model_dir(name), self.device, self.tokenizer().fingerprint).eval()

    def reward_model(self):
        from llm_from_scratch.align.reward import RewardModel
        from llm_from_scratch.train.checkpoint import load_model_weights

        rm = RewardModel(self.model("sft"))
        load_model_weights(self.model_dir("reward"), rm, strict_config=False)
        return rm.eval()

    def stage_log(self, name: str) -> list[dict]:
        """The training log of an alignment stage (`sft`, `dpo`, `reward`, `rlhf`)."""
        return json.loads((self.ensure(name) / "log.json").read_text())["log"]

    # ------------------------------------------------------------------------------------------ alignment data
    def sft_data(self):
        """Tokenized (train, held-out) dialogue examples."""
        from llm_from_scratch.align.data import dialogue_examples
        from llm_from_scratch.align.sft import tokenize_examples

        cfg, tok = self.config.sft, self.tokenizer()
        train, held = dialogue_examples()
        return (
            tokenize_examples(tok, train, cfg.max_prompt, cfg.max_reply),
            tokenize_examples(tok, held, cfg.max_prompt, cfg.max_reply),
        )

    def train_prompts(self, n: int) -> list[list[int]]:
        """`n` training prompts (a fixed shuffle of the SFT training examples), as token ids."""
        from llm_from_scratch.align.data import dialogue_examples, shuffled

        train, _ = dialogue_examples()
        return self._encode([ex.prompt for ex in shuffled(train, seed=1)[:n]])

    def heldout_prompts(self, n: int) -> list[list[int]]:
        """`n` held-out prompts (a fixed shuffle of the held-out dialogues), as token ids: every evaluation's."""
        return self._encode([ex.prompt for ex in self.heldout_examples(n)])

    def heldout_examples(self, n: int):
        from llm_from_scratch.align.data import dialogue_examples, shuffled

        _, held = dialogue_examples()
        return shuffled(held, seed=0)[:n]

    def _encode(self, prompts) -> list[list[int]]:
        from llm_from_scratch.align.chat import encode_prompt

        return [encode_prompt(self.tokenizer(), p, self.config.sft.max_prompt) for p in prompts]

    def pairs(self) -> tuple[list[dict], dict]:
        """`(pairs, stats)`: verifier-ranked pairs of the SFT model's own samples."""
        data = json.loads((self.ensure("preferences") / "pairs.json").read_text())
        return data["pairs"], data["stats"]

    # ------------------------------------------------------------------------------------------- evaluations
    def cached(self, name: str, spec: dict, compute: Callable[[], Any]) -> Any:
        """A derived result (JSON) keyed by `spec`: computed once into `root/<name>-<key>.json`."""
        path = self.root / f"{name}-{config_key(spec)}.json"
        if path.exists():
            return json.loads(path.read_text())
        result = compute()
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(result))
        return result

    def evaluation(self, name: str) -> dict:
        """Held-out evaluation of one model stage against the model it started from (SFT against the base model, DPO
        and RLHF against SFT): the reply checks and their rates, the KL, and the held-out perplexity. Computed with
        the evaluation stage's own routine and config, so the chapters' numbers are the report card's."""
        from llm_from_scratch.align.evaluate import alignment_metrics
        from llm_from_scratch.eval.lm import heldout_lm_metrics

        name = {"base": "pretrain"}.get(name, name)
        start = {"pretrain": None, "sft": "pretrain", "dpo": "sft", "rlhf": "sft"}[name]
        cfg = self.config.eval
        spec = {"eval": asdict(cfg), "model": self.key(name), "reference": start and self.key(start)}

        def compute() -> dict:
            model = self.model(name)
            examples = self.heldout_examples(cfg.align_prompts)
            result = alignment_metrics(
                model,
                self.model(start) if start else None,
                self.tokenizer(),
                self._encode([ex.prompt for ex in examples]),
                n=cfg.align_samples,
                max_new_tokens=cfg.align_max_new_tokens,
                temperature=cfg.align_temperature,
                seed=cfg.align_seed,
            )
            data = self.token_data()
            result["ppl"] = heldout_lm_metrics(model, data.val, data.bytes_per_token, cfg)["ppl"]
            result["prompts"] = [ex.prompt for ex in examples]
            return result

        return self.cached(f"evaluation-{name}", spec, compute)

    def replace(self, **overrides: dict) -> Artifacts:
        """The same root and options with some sections overridden, e.g. `art.replace(dpo={"beta": 0.3})`."""
        return Artifacts(
            self.config, self.root, overrides=overrides, device=self._device, progress=self.progress, log=self.log
        )


def _checksums(out: Path) -> dict[str, str]:
    """SHA-256 of the files a stage wrote at the top of its folder (checkpoints and model folders carry their own
    manifests, checked when they load)."""
    return {p.name: file_sha256(p) for p in sorted(out.iterdir()) if p.is_file() and p.name != MARKER}


def _verified(out: Path, marker: Path) -> dict:
    """The finished stage's record, after checking that its files are the ones it wrote."""
    try:
        record = json.loads(marker.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"{marker} is unreadable ({err}): delete {out} to build the stage again") from None
    verify_sha256(out, record.get("sha256", {}))  # the files are the ones the stage wrote
    return record
