from llm_from_scratch.data.linededup import LineDeduper, line_key
from llm_from_scratch.data.pipeline import PipelineConfig, run_pipeline
from llm_from_scratch.data.sources import Document, news_articles


def test_line_key_normalises_like_ccnet():
    assert line_key("Posted on 3 May 2001, by the Editor.") == line_key("posted on 4 may 1999 by the editor")
    assert line_key("Café au lait") == line_key("cafe au lait")
    assert line_key("one line") != line_key("another line")


def test_repeated_lines_are_removed_across_documents_short_lines_kept():
    footer = "This article is distributed under the terms of the site's licence."
    dedup = LineDeduper(min_chars=40)
    a, na = dedup(f"First article body that is long enough to count.\n\n{footer}\n\nThanks.")
    b, nb = dedup(f"Second article body that is long enough to count.\n\n{footer}\n\nThanks.")
    assert na == 0 and footer in a
    assert nb == 1 and footer not in b and b.endswith("Thanks.")  # "Thanks." is short: kept


def test_memory_is_bounded_by_two_generations():
    dedup = LineDeduper(min_chars=1, max_hashes=100)
    for i in range(1000):
        dedup(f"line number {i} " + "x" * (i % 7))
    assert len(dedup.current) <= 100 and len(dedup.old) <= 100
    # A line from the last generation is still remembered.
    assert dedup("line number 999 " + "x" * (999 % 7))[1] == 1


def test_pipeline_counts_line_dedup_and_conserves_documents():
    """Real news articles with a shared real paragraph appended (the first paragraph of another article, as a
    site template repeats a blurb): the second and later copies lose it, the counts say so."""
    news = list(news_articles())[:20]
    blurb = news[-1].text.split(". ")[0] + "."
    docs = [Document(d.id, "news", d.text + "\n\n" + blurb) for d in news[:10]]
    result = run_pipeline(docs, PipelineConfig(toxicity="off"))
    st = result.stats["line_dedup"]
    assert st.counters["lines_removed"] >= st.docs_in - 1 >= 5
    assert st.docs_in == st.docs_out + st.rejected
    assert st.bytes_out < st.bytes_in
