"""Book-only code: the harnesses, experiments, sweeps and baselines that the chapters, benchmarks and tests use.

Nothing in the pipeline packages (`data` ... `eval`, `pipeline_run`, the CLI) imports from here; a test reads
every import of the package and fails if one does. Code here may import any stage package.
"""
