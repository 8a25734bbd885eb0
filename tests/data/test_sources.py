import gzip
import io
import json

import pytest

from llm_from_scratch.data.sources import (
    decode_bytes,
    news_articles,
    read_path,
    read_text_folder,
    read_warc,
    shakespeare_plays,
    usenet_posts,
    wikipedia_sample,
)


def test_decode_bytes_counts_invalid_sequences_and_keeps_real_replacement_chars():
    assert decode_bytes("héllo".encode()) == ("héllo", 0)
    text, invalid = decode_bytes(b"ok \xff\xfe and \xc3")  # two stray bytes and a truncated 2-byte sequence
    assert invalid == 3 and text.startswith("ok ")
    assert decode_bytes("a\ufffdb".encode()) == ("a\ufffdb", 0)  # a U+FFFD in the input is not an error


def test_packaged_sources_have_the_documented_sizes():
    plays = list(shakespeare_plays())
    assert len(plays) == 38 and plays[0].format == "markdown-play"
    wiki = list(wikipedia_sample())
    assert len(wiki) == 106 and all(not d.text.lower().startswith("#redirect") for d in wiki)
    assert len(list(wikipedia_sample(include_redirects=True))) == 205  # 206 pages, one outside the article namespace
    posts = list(usenet_posts())
    assert len(posts) == 200 and posts[0].text.startswith("Newsgroups:")
    news = list(news_articles())
    assert len(news) == 300 and all(d.invalid_bytes == 0 for d in news)


def test_jsonl_plain_and_gzip_with_bad_lines(tmp_path):
    lines = [json.dumps({"id": "a", "text": "first"}), "not json", json.dumps({"text": 3}), json.dumps({"text": "ok"})]
    raw = ("\n".join(lines) + "\n").encode()
    (tmp_path / "c.jsonl").write_bytes(raw)
    (tmp_path / "c.jsonl.gz").write_bytes(gzip.compress(raw))
    for name in ("c.jsonl", "c.jsonl.gz"):
        docs = list(read_path(tmp_path / name))
        assert [d.text for d in docs] == ["first", "", "", "ok"]  # bad lines become empty documents, not crashes
        assert docs[0].id.endswith("/a")


def test_text_folder_recursive_with_gzip_and_invalid_bytes(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.txt").write_text("alpha", encoding="utf-8")
    (tmp_path / "sub" / "b.txt").write_bytes(gzip.compress(b"beta \xff"))
    docs = list(read_text_folder(tmp_path))
    assert [d.id for d in docs] == ["a.txt", "sub/b.txt"]
    assert docs[1].text.startswith("beta") and docs[1].invalid_bytes == 1
    with pytest.raises(FileNotFoundError):
        list(read_text_folder(tmp_path / "missing"))


def _write_warc(path, records):
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    with open(path, "wb") as f:
        writer = WARCWriter(f, gzip=True)
        for kind, uri, payload, ctype in records:
            http = None
            if kind == "response":
                http = StatusAndHeaders("200 OK", [("Content-Type", ctype)], protocol="HTTP/1.0")
            rec = writer.create_warc_record(uri, kind, payload=io.BytesIO(payload), http_headers=http)
            writer.write_record(rec)


def test_wet_and_warc_records_written_by_warcio(tmp_path):
    wet = tmp_path / "seg.warc.wet.gz"
    _write_warc(
        wet,
        [
            ("conversion", "http://a.example/", b"Plain text of page A.\nSecond line.", None),
            ("conversion", "http://b.example/", b"bad \xff byte", None),
        ],
    )
    docs = list(read_path(wet))
    assert [d.id for d in docs] == ["http://a.example/", "http://b.example/"]
    assert docs[0].text == "Plain text of page A.\nSecond line." and docs[0].format == "text"
    assert docs[1].invalid_bytes == 1

    warc = tmp_path / "seg.warc.gz"
    page = b"<html><head><script>var x;</script></head><body><p>Hello &amp; welcome.</p></body></html>"
    _write_warc(
        warc,
        [
            ("response", "http://c.example/", page, "text/html; charset=utf-8"),
            ("response", "http://c.example/img.png", b"\x89PNG", "image/png"),  # not HTML: skipped
        ],
    )
    docs = list(read_warc(warc))
    assert len(docs) == 1 and docs[0].format == "html" and "<p>Hello" in docs[0].text


def test_warc_html_is_decoded_with_its_declared_charset(tmp_path):
    """A response record's HTML goes through `data.html.decode_html`: the HTTP header's charset, else the page's
    `<meta charset>`, never a blind UTF-8 decode (which would turn every accented byte into U+FFFD)."""
    body = "<html><body><p>Caf\u00e9 cr\u00e8me, na\u00efve \u2014 d\u00e9j\u00e0 vu.</p></body></html>"
    meta = '<html><head><meta charset="windows-1252"></head><body><p>Caf\u00e9 \u2014 ok.</p></body></html>'
    warc = tmp_path / "latin.warc.gz"
    _write_warc(
        warc,
        [
            (
                "response",
                "http://h.example/",
                body.replace("\u2014", "-").encode("latin-1"),
                "text/html; charset=ISO-8859-1",
            ),
            ("response", "http://m.example/", meta.encode("cp1252"), "text/html"),
            ("response", "http://u.example/", body.encode("utf-8"), "text/html"),
        ],
    )
    docs = list(read_warc(warc))
    assert [d.invalid_bytes for d in docs] == [0, 0, 0]
    assert "Caf\u00e9 cr\u00e8me, na\u00efve - d\u00e9j\u00e0 vu." in docs[0].text
    assert "Caf\u00e9 \u2014 ok." in docs[1].text
    assert "Caf\u00e9 cr\u00e8me" in docs[2].text and "\ufffd" not in docs[2].text
