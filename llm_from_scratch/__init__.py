"""llm_from_scratch: the package behind the executable book *LLM from Scratch*.

Each sub-package is one stage of the pipeline the book builds, in the order the chapters teach it:
`data` (raw text, filters, dedup, toxicity) -> `tokenizer` (BPE, sentencepiece, shards) -> `model` ->
`train` -> `distributed` -> `align` -> `eval`.
"""

__version__ = "0.1.0"
