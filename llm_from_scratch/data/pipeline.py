"""The curation pipeline: composable stages, streamed in bounded memory, over several processes.

Per-document stages (extraction, language ID, boilerplate and C4 line cleaning, quality rules, the learned quality
classifier, toxicity, PII masking, MinHash signature) run in worker processes on batches of documents; the three
global stages (exact, near-duplicate and line-level dedup) run in the main process, which keeps only 16-byte keys,
MinHash signatures and two bounded generations of line hashes. Each stage counts documents and bytes in and out and
the reason of every rejection, so `in == out + rejected` can be checked for every stage."""

from __future__ import annotations

import json
import multiprocessing as mp
import re
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from llm_from_scratch.data import filters
from llm_from_scratch.data.dedup import MinHasher, ShingleHasher, StreamingNearDedup, exact_key
from llm_from_scratch.data.linededup import LineDeduper
from llm_from_scratch.data.normalize import extract
from llm_from_scratch.data.pii import mask_pii
from llm_from_scratch.data.sources import Document


@dataclass(frozen=True)
class PipelineConfig:
    """Everything that decides what the pipeline keeps; its hash keys the cached corpus."""

    max_doc_bytes: int = 2_000_000  # larger documents are rejected before any rule looks at them
    max_invalid_frac: float = 0.01  # reject text with more than 1 % replaced (undecodable) bytes
    max_control_frac: float = 0.01  # more control characters than this: binary data, not text
    verse_sources: tuple[str, ...] = ("shakespeare",)  # line breaks are verse, not sentences: no C4/FineWeb
    langid: str = "ours"  # "ours" (char n-gram naive Bayes), "reference" (py3langid), "off"
    languages: tuple[str, ...] = ("en",)  # keep documents identified as one of these
    langid_threshold: float = 0.65  # and only when that language's probability reaches this (FineWeb: 0.65)
    quality: str = "off"  # "ours" (fastText-style classifier, data/quality.py) or "off"
    quality_threshold: float = 0.5  # reject documents whose P(high quality) is below this
    toxicity: str = "ours"  # "ours" (hashed n-gram logistic regression), "reference" (alt-profanity-check), "off"
    toxicity_threshold: float = 0.9  # per segment (<= 16 words): high precision, the reference is noisy near 0.5
    max_toxic_frac: float = 0.05  # reject a document with a larger fraction of flagged segments
    shingle_n: int = 5
    num_perm: int = 128
    bands: int = 20
    rows: int = 6
    near_dup_threshold: float = 0.8
    line_dedup: bool = True  # CCNet-style removal of lines seen in earlier documents
    line_dedup_min_chars: int = 40  # shorter lines repeat legitimately
    line_dedup_max_hashes: int = 1 << 20  # per generation (two are kept): bounds the memory
    line_dedup_min_words: int = 50  # a document left with fewer words (Gopher's minimum) is rejected
    seed: int = 1


STAGES = (
    "extract",
    "langid",
    "boilerplate",
    "c4",
    "gopher_quality",
    "gopher_repetition",
    "fineweb",
    "quality",
    "toxicity",
    "pii",
    "exact_dedup",
    "near_dedup",
    "line_dedup",
)


@dataclass
class StageStats:
    docs_in: int = 0
    docs_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    reasons: Counter = field(default_factory=Counter)  # rejection reason -> documents
    counters: Counter = field(default_factory=Counter)  # lines removed, PII masked, invalid bytes, ...

    def merge(self, other: StageStats) -> None:
        self.docs_in += other.docs_in
        self.docs_out += other.docs_out
        self.bytes_in += other.bytes_in
        self.bytes_out += other.bytes_out
        self.reasons.update(other.reasons)
        self.counters.update(other.counters)

    @property
    def rejected(self) -> int:
        return sum(self.reasons.values())


@dataclass
class Rejection:
    id: str
    source: str
    stage: str
    reason: str
    text: str  # the first characters, for inspection


_BINARY = re.compile(r"[\x00-\x08\x0e-\x1f]")  # control characters that text never has (not tab, newline, form feed)


def _nbytes(text: str) -> int:
    return len(text.encode("utf-8", errors="surrogatepass"))


# --------------------------------------------------------------------------------------------------------------
# Per-document stages (run in workers)
# --------------------------------------------------------------------------------------------------------------


class DocumentStages:
    """The per-document part of the pipeline; one instance per worker process (it holds the toxicity model)."""

    def __init__(self, config: PipelineConfig, scorer: Callable | None = None):
        self.config = config
        self.gopher_quality = filters.GopherQuality()
        self.gopher_repetition = filters.GopherRepetition()
        self.c4 = filters.C4Filter()
        self.fineweb = filters.FineWebFilter()
        self.scorer = scorer if scorer is not None else _make_scorer(config.toxicity)
        self.identify = _make_identifier(config.langid)
        self.quality = _make_quality(config.quality)
        self.hasher = ShingleHasher(config.shingle_n)
        self.minhasher = MinHasher(config.num_perm, config.seed)

    def run(self, doc: Document, stats: dict[str, StageStats]) -> tuple[Document | None, Rejection | None]:
        """Pass `doc` through the stages in order, updating `stats`; return the survivor or its rejection."""
        cfg = self.config
        text = doc.text
        verse = doc.source in cfg.verse_sources

        def step(stage: str, new_text: str | None, reason: str | None) -> bool:
            st = stats[stage]
            st.docs_in += 1
            st.bytes_in += _nbytes(text)
            if reason is not None:
                st.reasons[reason] += 1
                return False
            st.docs_out += 1
            st.bytes_out += _nbytes(new_text)
            return True

        # extract: size guard, encoding check, markup removal, normalisation
        stats["extract"].counters["invalid_bytes"] += doc.invalid_bytes
        reason, new = None, ""
        if len(text) > cfg.max_doc_bytes:
            reason = "extract:too_large"
        elif doc.invalid_bytes > cfg.max_invalid_frac * max(len(text), 1):
            reason = "extract:invalid_utf8"
        elif len(_BINARY.findall(text[:100_000])) > cfg.max_control_frac * min(len(text), 100_000):
            reason = "extract:binary"
        else:
            new = extract(text, doc.format)
            if not new:
                reason = "extract:empty"
        if not step("extract", new, reason):
            return None, Rejection(doc.id, doc.source, "extract", reason, text[:500])
        text = new

        keep = lambda t: (t, None, {})  # noqa: E731 (a stage that does nothing for this source)
        pipeline: list[tuple[str, Callable[[str], tuple[str, str | None, dict]]]] = [
            ("langid", self._langid),
            ("boilerplate", self._boilerplate),
            ("c4", keep if verse else self._c4),
            ("gopher_quality", lambda t: (t, self.gopher_quality(t), {})),
            ("gopher_repetition", lambda t: (t, self.gopher_repetition(t), {})),
            ("fineweb", keep if verse else lambda t: (t, self.fineweb(t), {})),
            ("quality", self._quality),
            ("toxicity", self._toxicity),
            ("pii", self._pii),
        ]
        for stage, fn in pipeline:
            new, reason, counts = fn(text)
            stats[stage].counters.update(counts)
            if not step(stage, new, reason):
                return None, Rejection(doc.id, doc.source, stage, reason, text[:500])
            text = new
        return replace(doc, text=text, format="text", invalid_bytes=0), None

    # Each stage maps text to (new text, rejection reason or None, line-level counts).
    def _boilerplate(self, text: str) -> tuple[str, str | None, dict]:
        text, removed = filters.remove_boilerplate_lines(text)
        text = text.strip()
        return text, None if text else "boilerplate:empty", {"lines_removed": removed}

    def _c4(self, text: str) -> tuple[str, str | None, dict]:
        text, removed = self.c4.clean_lines(text)
        return text, self.c4.page_reason(text) if text else "c4:no_lines_left", removed

    def _toxicity(self, text: str) -> tuple[str, str | None, dict]:
        if self.scorer is None:
            return text, None, {}
        from llm_from_scratch.data.toxicity import flagged_fraction

        frac = flagged_fraction(text, self.scorer, self.config.toxicity_threshold)
        return text, "toxicity:profanity" if frac > self.config.max_toxic_frac else None, {}

    def _langid(self, text: str) -> tuple[str, str | None, dict]:
        if self.identify is None:
            return text, None, {}
        lang, prob = self.identify(text)
        if lang not in self.config.languages:
            return text, f"langid:{lang}", {}
        return text, None if prob >= self.config.langid_threshold else "langid:low_confidence", {}

    def _quality(self, text: str) -> tuple[str, str | None, dict]:
        if self.quality is None:
            return text, None, {}
        return text, "quality:low_score" if self.quality(text) < self.config.quality_threshold else None, {}

    def _pii(self, text: str) -> tuple[str, str | None, dict]:
        text, counts = mask_pii(text)
        return text, None, counts

    def signatures(self, texts: list[str]) -> tuple[list[bytes], np.ndarray]:
        """Exact-dedup keys and MinHash signatures of the surviving texts of a batch (vectorised)."""
        keys = [exact_key(t) for t in texts]
        sigs = self.minhasher.signatures(self.hasher.many(texts)) if texts else np.empty((0, self.config.num_perm))
        return keys, sigs


def _make_scorer(backend: str) -> Callable | None:
    if backend == "off":
        return None
    if backend == "reference":
        from llm_from_scratch.data.toxicity import reference_probability

        return reference_probability
    if backend == "ours":
        from llm_from_scratch.data.toxicity import toxicity_model

        return toxicity_model().predict_proba
    raise ValueError(f"toxicity backend must be 'ours', 'reference' or 'off', not {backend!r}")


def _make_identifier(backend: str) -> Callable[[str], tuple[str, float]] | None:
    if backend == "off":
        return None
    if backend == "reference":
        from llm_from_scratch.data.langid import reference_predict

        return reference_predict
    if backend == "ours":
        from llm_from_scratch.data.langid import langid_model

        return langid_model().predict
    raise ValueError(f"langid backend must be 'ours', 'reference' or 'off', not {backend!r}")


def _make_quality(backend: str) -> Callable[[str], float] | None:
    if backend == "off":
        return None
    if backend == "ours":
        from llm_from_scratch.data.quality import quality_model

        return quality_model().predict_proba
    raise ValueError(f"quality backend must be 'ours' or 'off', not {backend!r}")


def _new_stats() -> dict[str, StageStats]:
    return {s: StageStats() for s in STAGES}


_WORKER: DocumentStages | None = None


def _init_worker(config: PipelineConfig) -> None:
    global _WORKER
    _WORKER = DocumentStages(config)


def _process_batch(batch: list[Document], stages: DocumentStages | None = None):
    stages = stages or _WORKER
    stats = _new_stats()
    kept, rejected = [], []
    for doc in batch:
        out, rej = stages.run(doc, stats)
        if out is not None:
            kept.append(out)
        else:
            rejected.append(rej)
    keys, sigs = stages.signatures([d.text for d in kept])
    return kept, keys, sigs, rejected, stats


def _batches(docs: Iterable[Document], max_docs: int, max_bytes: int) -> Iterator[list[Document]]:
    batch, size = [], 0
    for doc in docs:
        batch.append(doc)
        size += len(doc.text)
        if len(batch) >= max_docs or size >= max_bytes:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


# --------------------------------------------------------------------------------------------------------------
# The runner
# --------------------------------------------------------------------------------------------------------------


@dataclass
class CurationResult:
    stats: dict[str, StageStats]
    kept: int
    rejected: int
    seconds: float
    bytes_in: int

    def summary_rows(self) -> list[dict]:
        """One row per stage: documents and MB in/out, rejected, and the most common rejection reason."""
        rows = []
        for name, st in self.stats.items():
            top = st.reasons.most_common(1)
            rows.append(
                {
                    "stage": name,
                    "docs_in": st.docs_in,
                    "docs_out": st.docs_out,
                    "rejected": st.rejected,
                    "MB_in": round(st.bytes_in / 1e6, 2),
                    "MB_out": round(st.bytes_out / 1e6, 2),
                    "top_reason": f"{top[0][0]} ({top[0][1]})" if top else "",
                }
            )
        return rows

    def to_json(self) -> dict:
        return {
            "kept": self.kept,
            "rejected": self.rejected,
            "seconds": self.seconds,
            "bytes_in": self.bytes_in,
            "stages": {
                k: {**{f: getattr(v, f) for f in ("docs_in", "docs_out", "bytes_in", "bytes_out")},
                    "reasons": dict(v.reasons), "counters": dict(v.counters)}
                for k, v in self.stats.items()
            },
        }  # fmt: skip


def run_pipeline(
    docs: Iterable[Document],
    config: PipelineConfig = PipelineConfig(),
    output: str | Path | None = None,
    rejected_output: str | Path | None = None,
    workers: int = 1,
    batch_docs: int = 64,
    batch_bytes: int = 2_000_000,
    progress: bool = False,
    on_kept: Callable[[Document], None] | None = None,
) -> CurationResult:
    """Curate `docs`: write survivors to `output` (JSONL `{"id", "source", "text"}`) and rejections with
    their stage and reason to `rejected_output`. Memory stays bounded: at most `2 * workers` batches are in
    flight, and the dedup state is a key and a signature per document."""
    start = time.perf_counter()
    stats = _new_stats()
    near = StreamingNearDedup(config.near_dup_threshold, config.bands, config.rows)
    seen: set[bytes] = set()
    lines = LineDeduper(config.line_dedup_min_chars, config.line_dedup_max_hashes) if config.line_dedup else None
    kept_n = rejected_n = bytes_in = 0
    out_f = open(output, "w", encoding="utf-8") if output else None  # noqa: SIM115 (closed in finally)
    rej_f = open(rejected_output, "w", encoding="utf-8") if rejected_output else None  # noqa: SIM115
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(unit="B", unit_scale=True, desc="curate")

    def write_rejection(r: Rejection) -> None:
        nonlocal rejected_n
        rejected_n += 1
        if rej_f:
            rej_f.write(json.dumps(asdict(r), ensure_ascii=False) + "\n")

    def consume(result) -> None:
        nonlocal kept_n
        kept, keys, sigs, rejected, batch_stats = result
        for name, st in batch_stats.items():
            stats[name].merge(st)
        for r in rejected:
            write_rejection(r)
        for doc, key, sig in zip(kept, keys, sigs, strict=True):
            nbytes = _nbytes(doc.text)
            text = doc.text
            for stage in ("exact_dedup", "near_dedup", "line_dedup"):
                st = stats[stage]
                st.docs_in += 1
                st.bytes_in += nbytes
                reason = None
                if stage == "exact_dedup":
                    reason = "exact_dedup:duplicate" if key in seen else None
                elif stage == "near_dedup":
                    reason = "near_dedup:near_duplicate" if near.add(sig) is not None else None
                elif lines is not None:
                    text, removed = lines(text)
                    st.counters["lines_removed"] += removed
                    if removed and len(text.split()) < config.line_dedup_min_words:
                        reason = "line_dedup:too_short"
                    nbytes = _nbytes(text)
                if reason:
                    st.reasons[reason] += 1
                    write_rejection(Rejection(doc.id, doc.source, stage, reason, doc.text[:500]))
                    break
                st.docs_out += 1
                st.bytes_out += nbytes
                if stage == "exact_dedup":
                    seen.add(key)
            else:
                kept_n += 1
                doc = replace(doc, text=text)
                if out_f:
                    out_f.write(json.dumps({"id": doc.id, "source": doc.source, "text": doc.text}) + "\n")
                if on_kept:
                    on_kept(doc)

    def counted(batches: Iterator[list[Document]]) -> Iterator[list[Document]]:
        nonlocal bytes_in
        for b in batches:
            n = sum(len(d.text) for d in b)
            bytes_in += n
            if bar is not None:
                bar.update(n)
            yield b

    try:
        batches = counted(_batches(docs, batch_docs, batch_bytes))
        if workers <= 1:
            local = DocumentStages(config)
            for batch in batches:
                consume(_process_batch(batch, local))
        else:
            # The toxicity model is built (or loaded) once here, so workers only load it from the cache.
            _make_identifier(config.langid)  # fails here, once, if the reference is not installed
            _make_quality(config.quality)  # trained once here (the workers are forked after it, when they fork)
            if config.toxicity == "ours":
                from llm_from_scratch.data.toxicity import toxicity_model

                toxicity_model()
            ctx = mp.get_context("spawn" if mp.get_start_method(allow_none=True) == "spawn" else "fork")
            with ctx.Pool(workers, initializer=_init_worker, initargs=(config,)) as pool:
                pending: deque = deque()
                for batch in batches:
                    pending.append(pool.apply_async(_process_batch, (batch,)))
                    while len(pending) >= 2 * workers:  # back-pressure: bounded memory
                        consume(pending.popleft().get())
                while pending:
                    consume(pending.popleft().get())
    finally:
        if out_f:
            out_f.close()
        if rej_f:
            rej_f.close()
        if bar is not None:
            bar.close()
    return CurationResult(stats, kept_n, rejected_n, time.perf_counter() - start, bytes_in)
