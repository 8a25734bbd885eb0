"""read_inputs: every supported file in a folder, damaged files reported by name and reason (skip or stop)."""

from __future__ import annotations

import gzip
import io
import json
import os

import pytest

from llm_from_scratch.data.sources import read_inputs, read_path, read_warc, shakespeare_plays


def _play_texts(n: int) -> list[str]:
    plays = [d.text for d in shakespeare_plays()]
    return [p[:4000] for p in plays[:n]]  # real text that ships with a package


@pytest.fixture
def folder(tmp_path):
    """A folder of the formats a user brings: 5 documents in 5 files, plus a file of another type."""
    t = _play_texts(5)
    root = tmp_path / "mine"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text(t[0], encoding="utf-8")
    (root / "b.txt.gz").write_bytes(gzip.compress(t[1].encode()))
    (root / "sub" / "c.jsonl").write_text(json.dumps({"id": "c", "text": t[2]}) + "\n", encoding="utf-8")
    (root / "sub" / "d.jsonl.gz").write_bytes(gzip.compress((json.dumps({"text": t[3]}) + "\n").encode()))
    _write_wet(root / "sub" / "e.warc.wet.gz", [("http://e.example/", t[4].encode())])
    (root / "notes.pdf").write_bytes(b"%PDF-1.4")
    (root / ".hidden.txt").write_text("not input")
    return root, t


def _write_wet(path, records, gz=True):
    from warcio.warcwriter import WARCWriter

    with open(path, "wb") as f:
        writer = WARCWriter(f, gzip=gz)
        for uri, payload in records:
            writer.write_record(writer.create_warc_record(uri, "conversion", payload=io.BytesIO(payload)))


def test_a_folder_yields_every_supported_file_recursively_in_sorted_order(folder):
    root, t = folder
    docs, report = read_inputs([root])
    docs = list(docs)
    assert [d.text for d in docs] == t  # a, b, sub/c, sub/d, sub/e
    assert [d.id for d in docs][:3] == ["a.txt", "b.txt.gz", "sub/c.jsonl/c"]
    assert (report.files_read, report.documents, report.skipped) == (5, 5, [])
    assert report.ignored == [str(root / "notes.pdf")]
    assert [d.text for d in read_path(root)] == t  # read_path on a folder is the same reader


def test_truncated_gzip_is_skipped_and_counted_and_good_files_are_kept(folder):
    root, t = folder
    data = (root / "b.txt.gz").read_bytes()
    (root / "b.txt.gz").write_bytes(data[: len(data) // 2])
    docs, report = read_inputs([root])
    texts = [d.text for d in docs]
    assert texts == [t[0], t[2], t[3], t[4]]  # the documents before and after the bad file
    assert report.skipped == [
        {"file": str(root / "b.txt.gz"), "reason": "truncated: the compressed stream ends early", "documents_kept": 0}
    ]
    assert "skipped 1 unreadable file(s), e.g. " in report.summary() and report.to_dict()["files_skipped"] == 1


def test_stop_rule_is_one_error_naming_the_file(folder):
    root, _ = folder
    (root / "sub" / "c.jsonl").unlink()
    (root / "sub" / "c.jsonl").symlink_to(root / "gone.jsonl")  # an unreadable file: a broken link
    docs, _ = read_inputs([root], on_error="stop")
    with pytest.raises(ValueError, match=rf"^{root / 'sub' / 'c.jsonl'}: the file vanished or is a broken link"):
        list(docs)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files without read permission")
def test_unreadable_file_is_permission_denied(folder):
    root, _ = folder
    (root / "a.txt").chmod(0)
    docs, report = read_inputs([root])
    list(docs)
    assert report.skipped[0]["reason"] == "permission denied"


def test_truncated_wet_record_is_never_a_document(tmp_path):
    t = _play_texts(3)
    wet = tmp_path / "seg.wet"
    _write_wet(wet, [(f"http://{i}.example/", x.encode()) for i, x in enumerate(t)], gz=False)
    data = wet.read_bytes()
    wet.write_bytes(data[: len(data) - 1000])  # cut inside the third record
    docs, report = read_inputs([wet])
    assert [d.text for d in docs] == t[:2]
    assert report.skipped[0]["documents_kept"] == 2 and "http://2.example/ is truncated" in report.skipped[0]["reason"]
    with pytest.raises(ValueError, match=r"seg\.wet: WARC record http://2\.example/ is truncated"):
        list(read_warc(wet))


def test_a_folder_without_readable_files_and_a_missing_path_are_errors(tmp_path, folder):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "x.pdf").write_bytes(b"%PDF")
    with pytest.raises(ValueError, match=rf"input folder {empty} holds no readable file \(1 files"):
        read_inputs([empty])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_inputs([tmp_path / "typo"])
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.txt.gz").write_bytes(b"\x1f\x8b not gzip at all")
    docs, _ = read_inputs([bad])
    with pytest.raises(ValueError, match=r"none of the 1 input files could be read \(e\.g\. .*x\.txt\.gz: corrupt"):
        list(docs)


def test_garbage_named_warc_is_reported_not_a_traceback(tmp_path):
    good = tmp_path / "good.txt"
    good.write_text(_play_texts(1)[0])
    junk = tmp_path / "junk.warc.gz"
    junk.write_bytes(gzip.compress(b"this is not a WARC file\r\n\r\n" * 10))
    docs, report = read_inputs([good, junk])
    assert len(list(docs)) == 1
    assert report.skipped[0]["file"] == str(junk) and "not a WARC/WET file" in report.skipped[0]["reason"]
