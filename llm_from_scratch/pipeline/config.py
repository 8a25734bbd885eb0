"""One config for the whole pipeline: every stage's frozen dataclass, resolved from a preset plus overrides.

A preset is a config file in `configs/` (`tiny.toml`, `book.toml`, `gpu.toml`): one table per stage, named
like the `RunConfig` fields below, holding only the fields that differ from the dataclass defaults (a preset may
`extends` another). A user's config file (TOML or YAML) and `--set SECTION.KEY=VALUE` overrides are applied on
top the same way, e.g.::

    [pretrain]
    max_steps = 120
    [data.pipeline]
    toxicity = "off"

Every key is checked against the dataclass it lands in: an unknown section or field, or a value of the wrong type,
is a `ValueError` that names it (`pretrain.max_step`) and lists the valid ones, before any work starts. The
fully resolved config is written next to a run's report as `config.yaml` (YAML: it can say `null`, TOML cannot),
so a run records every choice it made, defaults included, and re-running with that file reproduces it.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any

import tomllib

from llm_from_scratch.align.dpo import DPOConfig
from llm_from_scratch.align.grpo import GRPOConfig
from llm_from_scratch.align.preferences import PreferenceConfig
from llm_from_scratch.align.reward import RewardConfig
from llm_from_scratch.align.sft import SFTConfig
from llm_from_scratch.data.corpus import CorpusConfig
from llm_from_scratch.eval.lm import EvalConfig
from llm_from_scratch.model.config import ModelConfig
from llm_from_scratch.pipeline.presets import CONFIG_DIR, PRESET_NAMES
from llm_from_scratch.tokenizer.build import ShardConfig, TokenizerConfig
from llm_from_scratch.train.trainer import TrainConfig


@dataclass(frozen=True)
class RunOptions:
    """Choices about the run itself rather than one stage."""

    preset: str = "book"
    device: str = "auto"  # "auto" = CUDA, then MPS, then CPU
    rlhf: bool = True  # reward model + GRPO after DPO (the tiny and book presets afford it)
    workers: int = 1  # processes for curation and sharding
    threads: int = 0  # torch intra-op threads; 0 = torch's default
    # the pretraining strategy when the run is launched under torchrun (WORLD_SIZE > 1); ignored in one process
    parallel: str = "ddp"


@dataclass(frozen=True)
class RunConfig:
    run: RunOptions
    data: CorpusConfig
    tokenizer: TokenizerConfig
    shards: ShardConfig
    model: ModelConfig
    pretrain: TrainConfig
    sft: SFTConfig
    preferences: PreferenceConfig
    dpo: DPOConfig
    reward: RewardConfig
    rlhf: GRPOConfig
    eval: EvalConfig

    def to_dict(self) -> dict:
        return _plain(dataclasses.asdict(self))


DEFAULTS = RunConfig(
    run=RunOptions(),
    data=CorpusConfig(),
    tokenizer=TokenizerConfig(),
    shards=ShardConfig(),
    model=ModelConfig(),
    pretrain=TrainConfig(),
    sft=SFTConfig(),
    preferences=PreferenceConfig(),
    dpo=DPOConfig(),
    reward=RewardConfig(),
    rlhf=GRPOConfig(),
    eval=EvalConfig(),
)


def preset_config(preset: str) -> RunConfig:
    """The config of a preset: the dataclass defaults with `configs/<preset>.toml` applied."""
    return load_config(None, preset)


def _preset_data(preset: str, seen: tuple[str, ...] = ()) -> dict:
    """The preset file's tables, with the preset it `extends` underneath."""
    if preset not in PRESET_NAMES:
        raise ValueError(f"unknown preset {preset!r}: choose one of {list(PRESET_NAMES)} (files in {CONFIG_DIR})")
    if preset in seen:
        raise ValueError(f"preset {preset!r} extends itself through {list(seen)}")
    data = read_config_file(CONFIG_DIR / f"{preset}.toml")
    base = data.pop("extends", None)
    return merge_tables(_preset_data(base, (*seen, preset)), data) if base else data


def read_config_file(path: str | Path) -> dict:
    """Parse a `.toml`, `.yaml` or `.yml` file into nested dicts."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"config file {path} does not exist")
    if path.suffix == ".toml":
        try:
            return tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as err:
            raise ValueError(f"{path}: not valid TOML: {err}") from None
    if path.suffix in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ValueError(f"{path}: not valid YAML: {err}") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path}: the top level must be a mapping of sections (run, data, model, ...)")
        return data
    raise ValueError(f"config file {path}: use a .toml, .yaml or .yml file")


def parse_set(items: list[str]) -> dict:
    """`["pretrain.max_steps=20", "run.rlhf=false"]` (command-line overrides) as nested dicts; values are
    parsed as YAML scalars (`20` int, `0.5` float, `false` bool, `null`, `[a, b]` list)."""
    out: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or "." not in key:
            raise ValueError(f"--set {item!r}: write SECTION.KEY=VALUE, e.g. --set pretrain.max_steps=20")
        *path, last = key.strip().split(".")
        node = out
        for p in path:
            node = node.setdefault(p, {})
        # YAML 1.1 reads on/off/yes/no as booleans; here they are words (toxicity=off), true/false are booleans
        node[last] = value if value.strip().lower() in ("on", "off", "yes", "no", "y", "n") else _scalar(value)
    return out


_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _scalar(value: str) -> object:
    """A YAML scalar, except that `3e-4` is a float: YAML 1.1 (PyYAML) wants a dot in the mantissa (`3.0e-4`) and
    would read it as a string, which the config check then rejects."""
    import yaml

    parsed = yaml.safe_load(value)
    if isinstance(parsed, str) and _FLOAT.fullmatch(value.strip()):
        return float(value)
    return parsed


def load_config(path: str | Path | None = None, preset: str | None = None, overrides: dict | None = None) -> RunConfig:
    """The resolved config: the dataclass defaults, then `preset` (else the file's `run.preset`, else `book`),
    then the file, then `overrides` (e.g. from `--set`). Raises `ValueError` naming the first bad key."""
    data = merge_tables(read_config_file(path) if path else {}, overrides or {})
    file_preset = (data.get("run") or {}).get("preset") if isinstance(data.get("run"), dict) else None
    if preset and file_preset and preset != file_preset:
        raise ValueError(f"--preset {preset} contradicts run.preset = {file_preset!r} ({path or '--set'}); drop one")
    name = preset or file_preset or "book"
    data = merge_tables(merge_tables(_preset_data(name), data), {"run": {"preset": name}})
    return _apply(DEFAULTS, data, "")


def merge_tables(a: dict, b: dict) -> dict:
    """`b` over `a`, table by table (nested dicts merge; any other value of `b` replaces)."""
    out = dict(a)
    for k, v in b.items():
        out[k] = merge_tables(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _apply(obj, data: Any, where: str):
    if not isinstance(data, dict):
        raise ValueError(f"config: {where or 'the top level'} must be a table of keys, got {data!r}")
    known = {f.name: f for f in fields(obj)}
    changes = {}
    for key, value in data.items():
        name = f"{where}.{key}" if where else key
        if key not in known:
            where_ = f" in {where}" if where else ""
            raise ValueError(f"config: unknown key {name!r}; the valid keys{where_} are {sorted(known)}")
        current = getattr(obj, key)
        if is_dataclass(current):
            changes[key] = _apply(current, value, name)
        else:
            changes[key] = _coerce(name, value, current, known[key].type)
    try:
        out = dataclasses.replace(obj, **changes)
        if hasattr(out, "validate"):
            out.validate()
    except (TypeError, ValueError) as err:
        raise ValueError(f"config: {where or 'run'}: {err}") from None
    if isinstance(out, RunOptions):
        _check_run(out)
    return out


def _coerce(name: str, value: Any, current: Any, annotation: Any) -> Any:
    """`value` in the type of the field it replaces; a mismatch names the key and both types."""
    ann = str(annotation)
    if value is None:
        if current is None or "None" in ann:
            return None
        raise ValueError(f"config: {name} cannot be null (expected {type(current).__name__})")
    expected = type(current) if current is not None else None
    if expected is None:  # an optional field left at None by the preset: take the type from the annotation
        for t in (bool, int, float, str):
            if t.__name__ in ann:
                expected = t
                break
    if expected is tuple or (expected is None and "tuple" in ann):
        if not isinstance(value, list | tuple):
            raise ValueError(f"config: {name} must be a list, got {value!r}")
        return tuple(value)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is not None and (not isinstance(value, expected) or (expected is int and isinstance(value, bool))):
        raise ValueError(f"config: {name} must be {expected.__name__}, got {value!r} ({type(value).__name__})")
    return value


def _check_run(run: RunOptions) -> None:
    if run.preset not in PRESET_NAMES:
        raise ValueError(f"config: run.preset must be one of {list(PRESET_NAMES)}, got {run.preset!r}")
    if run.device != "auto" and run.device.split(":")[0] not in ("cpu", "cuda", "mps"):
        raise ValueError(f"config: run.device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {run.device!r}")
    if run.workers < 1:
        raise ValueError(f"config: run.workers must be >= 1, got {run.workers}")
    if run.threads < 0:
        raise ValueError(f"config: run.threads must be >= 0 (0 = torch's default), got {run.threads}")
    from llm_from_scratch.distributed.parallel import STRATEGIES

    if run.parallel not in STRATEGIES:
        raise ValueError(f"config: run.parallel must be one of {list(STRATEGIES)}, got {run.parallel!r}")


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj


def dump_yaml(config: RunConfig) -> str:
    import yaml

    return yaml.safe_dump(config.to_dict(), sort_keys=False)


def config_from_dict(data: dict) -> RunConfig:
    """Inverse of `RunConfig.to_dict` (the recorded `config.yaml` of a run)."""
    return load_config(None, data.get("run", {}).get("preset"), data)
