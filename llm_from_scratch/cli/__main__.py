"""`python -m llm_from_scratch.cli` (what `torchrun ... -m llm_from_scratch.cli` launches)."""

from llm_from_scratch.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
