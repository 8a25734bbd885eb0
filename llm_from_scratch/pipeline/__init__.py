"""The pipeline: the stage registry, the one resolver that builds or finds every artifact, and the runner.

`.registry` declares each stage once (inputs, config sections, build function); `.config` resolves a
preset (`configs/*.toml`) plus a config file and `--set` overrides into one `RunConfig`; `.resolver`
keys, builds and loads artifacts for the chapters, the stage commands and `.run` alike; `.report` writes
the report card; `.cli` is every stage command.
"""

import importlib

_EXPORTS = {
    "PRESET_NAMES": "presets",
    "RunConfig": "config",
    "load_config": "config",
    "preset_config": "config",
    "PIPELINE": "registry",
    "REGISTRY": "registry",
    "STAGES": "registry",
    "Stage": "registry",
    "draw_pipeline": "registry",
    "Artifacts": "resolver",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):  # lazy: importing the configs pulls in torch, which the CLI's --help must not wait for
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"llm_from_scratch.pipeline.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'llm_from_scratch.pipeline' has no attribute {name!r}")
