"""The whole pipeline as one resumable run: ``llm-from-scratch run --preset tiny|book --workdir DIR``.

:mod:`.config` resolves one config file (TOML or YAML) against a preset, :mod:`.stages` runs curate, tokenizer,
shards, pretrain, SFT, preference pairs, DPO, RLHF and evaluation with every artifact under the work directory,
and :mod:`.report` writes ``report.md`` with its figures.
"""

from llm_from_scratch.pipeline_run.config import RunConfig, load_config
from llm_from_scratch.pipeline_run.stages import STAGE_NAMES, run_pipeline

__all__ = ["STAGE_NAMES", "RunConfig", "load_config", "run_pipeline"]
