"""`python -m llm_from_scratch` is the same as the `llm-from-scratch` command."""

from llm_from_scratch.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
