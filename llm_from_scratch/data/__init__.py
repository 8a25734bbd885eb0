"""Stage 1 of the pipeline: real raw text, and the curation that turns it into training data."""
