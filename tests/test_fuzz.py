"""Property-based fuzzing (hypothesis) of every file reader and of `convnlp predict` input.

Two properties per reader:
- round trip: rows written the way the format says (mixed line endings, byte-order marks,
  quotes, blank lines, several encodings) read back as exactly those rows;
- robustness: random bytes, truncated and mutated valid files, over-long lines and wrong
  encodings read either as exactly the rows an independent count finds, or fail with one
  UserError line that names the file (and a line that exists); never another exception.

CI runs a fixed set of ``CONVNLP_FUZZ_EXAMPLES`` (default 150) examples per property;
``CONVNLP_FUZZ_EXAMPLES=5000 python -m pytest tests/test_fuzz.py`` draws new random ones.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convnlp.data import labeled, parallel, readers
from convnlp.errors import UserError

EXAMPLES = int(os.environ.get("CONVNLP_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize="CONVNLP_FUZZ_EXAMPLES" not in os.environ,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Text without line breaks or tabs; a lone \r is a character of its line. (Python's str.split
# treats more characters as whitespace than a file's "\n"; those are kept out of tokens, not texts.)
TEXT_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\t")
TEXT = st.text(TEXT_CHARS, min_size=1, max_size=40).map(str.strip).filter(bool)
TOKEN = st.text(st.characters(blacklist_categories=("Cs", "Zs", "Zl", "Zp", "Cc")), min_size=1, max_size=8).filter(
    lambda t: len(t.split()) == 1 and t == t.split()[0] and t != "-DOCSTART-"
)
LABEL = st.sampled_from(["pos", "neg", "1", "0", "mixed", "B-PER", "\u00e9t\u00e9"])
ENDING = st.sampled_from(["\n", "\r\n"])


def _write(tmp_path: Path, name: str, text: str, encoding: str = "utf-8", bom: bool = False) -> Path:
    path = tmp_path / name
    path.write_bytes(("\ufeff" + text if bom else text).encode(encoding))
    return path


def _join(lines: list[str], endings: list[str]) -> str:
    return "".join(line + endings[i % len(endings)] for i, line in enumerate(lines))


# ------------------------------------------------------------------------------ round trips


@FUZZ
@given(
    rows=st.lists(st.tuples(TEXT, LABEL), min_size=1, max_size=20),
    endings=st.lists(ENDING, min_size=1),
    bom=st.booleans(),
    blank=st.booleans(),
)
def test_tsv_round_trip(tmp_path_factory, rows, endings, bom, blank):
    lines = ["text\tlabel"] + [f"{t}\t{label}" for t, label in rows] + ([""] if blank else [])
    path = _write(tmp_path_factory.mktemp("tsv"), "a.tsv", _join(lines, endings), bom=bom)
    assert labeled.read_table(path, "text", "label", delimiter="\t") == (
        [t for t, _ in rows],
        [label for _, label in rows],
    )


@FUZZ
@given(
    rows=st.lists(
        st.tuples(
            st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40).map(str.strip).filter(bool),
            LABEL,
        ),
        min_size=1,
        max_size=20,
    ),
    ending=ENDING,
    bom=st.booleans(),
    delimiter=st.sampled_from([",", "\t"]),
)
def test_csv_round_trip_with_quotes_delimiters_and_line_breaks_inside_fields(
    tmp_path_factory, rows, ending, bom, delimiter
):
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator=ending)
    writer.writerow(["id", "text", "label"])
    writer.writerows((i, t, label) for i, (t, label) in enumerate(rows))
    path = _write(tmp_path_factory.mktemp("csv"), "a.csv", out.getvalue(), bom=bom)
    multiline = any("\n" in t for t, _ in rows)
    if multiline:  # refused unless asked for: a line break inside a quoted field could be a stray quote
        with pytest.raises(UserError, match="runs on to line"):
            labeled.read_table(path, "text", "label", delimiter=delimiter, quoting="csv")
    got = labeled.read_table(path, "text", "label", delimiter=delimiter, quoting="multiline" if multiline else "csv")
    assert got == ([t.replace("\r\n", "\n") for t, _ in rows], [label for _, label in rows])


@FUZZ
@given(
    rows=st.lists(st.tuples(TEXT, LABEL), min_size=1, max_size=20),
    endings=st.lists(ENDING, min_size=1),
    encoding=st.sampled_from(["utf-8", "utf-16", "latin-1"]),
    blanks=st.lists(st.booleans(), max_size=20),
)
def test_jsonl_round_trip(tmp_path_factory, rows, endings, encoding, blanks):
    if encoding == "latin-1":
        rows = [(t.encode("latin-1", "replace").decode("latin-1"), label) for t, label in rows]
    lines = []
    for i, (t, label) in enumerate(rows):
        lines.append(json.dumps({"text": t, "label": label}, ensure_ascii=bool(i % 2)))
        if i < len(blanks) and blanks[i]:
            lines.append("")
    path = _write(tmp_path_factory.mktemp("jsonl"), "a.jsonl", _join(lines, endings), encoding=encoding)
    assert labeled.read_jsonl(path, "text", "label", encoding=encoding) == (
        [t for t, _ in rows],
        [label for _, label in rows],
    )


@FUZZ
@given(
    rows=st.lists(st.tuples(TEXT, st.sampled_from(["0", "1"])), min_size=1, max_size=20),
    endings=st.lists(ENDING, min_size=1),
    bom=st.booleans(),
)
def test_label_first_round_trip(tmp_path_factory, rows, endings, bom):
    path = _write(
        tmp_path_factory.mktemp("sst"), "a.txt", _join([f"{label} {t}" for t, label in rows], endings), bom=bom
    )
    assert labeled.read_label_first(path) == ([t for t, _ in rows], [label for _, label in rows])


@FUZZ
@given(
    sentences=st.lists(st.lists(st.tuples(TOKEN, LABEL), min_size=1, max_size=8), min_size=1, max_size=10),
    endings=st.lists(ENDING, min_size=1),
    docstart=st.booleans(),
    extra_blank=st.booleans(),
)
def test_conll_round_trip(tmp_path_factory, sentences, endings, docstart, extra_blank):
    lines = ["-DOCSTART- -X- O", ""] if docstart else []
    for sentence in sentences:
        lines += (
            [f"{token} X {tag}" for token, tag in sentence] + ["", ""]
            if extra_blank
            else [f"{token} X {tag}" for token, tag in sentence] + [""]
        )
    path = _write(tmp_path_factory.mktemp("conll"), "a.conll", _join(lines, endings))
    assert readers.read_conll(path) == ([[w for w, _ in s] for s in sentences], [[t for _, t in s] for s in sentences])


@FUZZ
@given(
    sentences=st.lists(
        st.lists(st.tuples(TOKEN, st.sampled_from(["NOUN", "VERB", "PUNCT"])), min_size=1, max_size=8),
        min_size=1,
        max_size=10,
    ),
    endings=st.lists(ENDING, min_size=1),
    comments=st.booleans(),
    bom=st.booleans(),
)
def test_conllu_round_trip(tmp_path_factory, sentences, endings, comments, bom):
    lines = []
    for n, sentence in enumerate(sentences):
        if comments:
            lines.append(f"# sent_id = {n}")
        lines += [f"{i}\t{form}\t_\t{tag}\t_\t_\t{i - 1}\tdep\t_\t_" for i, (form, tag) in enumerate(sentence, start=1)]
        lines.append("")
    path = _write(tmp_path_factory.mktemp("conllu"), "a.conllu", _join(lines, endings), bom=bom)
    assert readers.read_conllu(path) == ([[w for w, _ in s] for s in sentences], [[t for _, t in s] for s in sentences])


@FUZZ
@given(
    pairs=st.lists(st.tuples(TEXT, TEXT), min_size=1, max_size=20),
    endings=st.lists(ENDING, min_size=1),
    layout=st.sampled_from(["tsv", "jsonl", "files"]),
)
def test_parallel_round_trip(tmp_path_factory, pairs, endings, layout):
    root = tmp_path_factory.mktemp("parallel")
    if layout == "tsv":
        _write(root, "a.tsv", _join([f"{s}\t{t}" for s, t in pairs], endings))
        got = parallel.read(str(root / "a.tsv"), "auto", "source", "target", "src", "tgt")
    elif layout == "jsonl":
        _write(root, "a.jsonl", _join([json.dumps({"source": s, "target": t}) for s, t in pairs], endings))
        got = parallel.read(str(root / "a.jsonl"), "auto", "source", "target", "src", "tgt")
    else:
        _write(root, "a.src", _join([s for s, _ in pairs], endings))
        _write(root, "a.tgt", _join([t for _, t in pairs], endings[::-1]))
        got = parallel.read(str(root / "a"), "auto", "source", "target", "src", "tgt")
    assert got == ([s for s, _ in pairs], [t for _, t in pairs])


# ------------------------------------------------------------------------ hostile inputs

VALID = {
    "tsv": b'text\tlabel\nfine film\tpos\n"quoted start\tneg\nok\t1\n',
    "csv": b'id,text,label\n1,"a, b",pos\n2,"say ""hi""",neg\n3,"two\nlines",pos\n',
    "jsonl": b'{"text": "good", "label": 1}\n\n{"text": "bad", "label": "neg"}\n',
    "label_first": b"1 a fine film .\n0 a dull one\n",
    "text_lines": b"one text\nanother text\n",
    "conll": b"-DOCSTART- -X- O\n\nAlice X B-PER\nmet X O\n\nBob X B-PER\n",
    "conllu": b"# c\n1\tHi\thi\tINTJ\tUH\t_\t0\troot\t_\t_\n2-3\tdon't\t_\t_\t_\t_\t_\t_\t_\t_\n2\tdo\t_\tAUX\t_\t_\t0\t_\t_\t_\n"
    b"3\tn't\t_\tPART\t_\t_\t0\t_\t_\t_\n\n",
    "parallel_tsv": b"cat\tK AE T\ndog\tD AO G\n",
    "parallel_jsonl": b'{"source": "cat", "target": "K AE T"}\n',
}
READ = {
    "tsv": lambda p: labeled.read_table(p, "text", "label", delimiter="\t"),
    "csv": lambda p: labeled.read_table(p, "text", "label"),
    "jsonl": lambda p: labeled.read_jsonl(p, "text", "label"),
    "label_first": labeled.read_label_first,
    "text_lines": lambda p: (labeled.read_text_lines(p, "pos"), None),
    "conll": readers.read_conll,
    "conllu": readers.read_conllu,
    "parallel_tsv": parallel.read_tsv,
    "parallel_jsonl": lambda p: parallel.read_jsonl(p, "source", "target"),
}


def _expected_count(fmt: str, data: bytes) -> int | None:
    """Rows an independent count finds in a file that reads without error (None: no simple
    count, e.g. CSV records or CoNLL-U sentences)."""
    lines = data.decode("utf-8").removeprefix("\ufeff").split("\n")
    lines = lines[:-1] if lines[-1] == "" else lines
    content = [line for line in lines if line.strip()]
    if fmt == "tsv":
        return len(content) - 1
    if fmt in ("jsonl", "label_first", "text_lines", "parallel_tsv", "parallel_jsonl"):
        return len(content)
    if fmt == "conll":
        blocks = re.split(r"\n\s*\n", "\n".join(line.rstrip("\r") for line in lines).strip())
        return sum(any(not line.startswith("-DOCSTART-") for line in b.split("\n") if line.strip()) for b in blocks)
    return None


def _mutate(data: bytes, edits: list[tuple[int, int, int]]) -> bytes:
    out = bytearray(data)
    for kind, where, byte in edits:
        where = where % (len(out) + 1)
        if kind == 0:
            out.insert(where, byte)
        elif kind == 1 and out:
            del out[min(where, len(out) - 1)]
        elif out:
            out[min(where, len(out) - 1)] = byte
    return bytes(out)


HOSTILE = st.one_of(
    st.binary(max_size=300),  # random bytes
    st.sampled_from(list(VALID.values())).flatmap(  # truncated
        lambda d: st.integers(0, len(d)).map(lambda n: d[:n])
    ),
    st.sampled_from(list(VALID.values())).flatmap(  # mutated
        lambda d: st.lists(
            st.tuples(
                st.integers(0, 2),
                st.integers(0, 10**6),
                st.sampled_from(b'"\t\n\r ,{}\\\xff\xfe\x00#-_' + bytes(range(97, 100))),
            ),
            min_size=1,
            max_size=6,
        ).map(lambda e: _mutate(d, e))
    ),
    st.sampled_from(list(VALID.values())).map(lambda d: d.replace(b"\n", b"\r\n")),  # line endings
    st.sampled_from(list(VALID.values())).map(lambda d: b"\xef\xbb\xbf" + d),  # byte-order mark
    st.sampled_from(list(VALID.values())).map(lambda d: "\ufeff".encode("utf-16-le") + d),
    st.sampled_from(list(VALID.values())).map(lambda d: d.decode().encode("utf-16")),  # wrong encoding
    st.integers(1, 200_000).map(lambda n: b"text\tlabel\n" + b"x" * n + b"\tpos\n"),  # over-long line
)


@FUZZ
@given(fmt=st.sampled_from(sorted(READ)), data=HOSTILE)
def test_any_bytes_read_as_exactly_their_rows_or_fail_in_one_line(tmp_path_factory, fmt, data):
    path = tmp_path_factory.mktemp(fmt) / f"input.{fmt}"
    path.write_bytes(data)
    try:
        rows = READ[fmt](path)
    except UserError as e:
        message = str(e)
        assert "\n" not in message and message.startswith(str(path)), message
        named = re.match(re.escape(str(path)) + r":(\d+):", message)
        if named:
            assert 1 <= int(named.group(1)) <= data.count(b"\n") + 1, message
        return
    expected = _expected_count(fmt, data)
    if expected is not None:
        assert len(rows[0]) == expected, (rows, data)
    if rows[1] is not None:
        assert len(rows[0]) == len(rows[1])


def test_an_over_long_line_and_a_nul_byte_are_data(tmp_path):
    path = tmp_path / "a.tsv"
    path.write_bytes(b"text\tlabel\n" + b"x" * 1_000_000 + b"\tpos\nnul\x00inside\tneg\n")
    texts, labels = labeled.read_table(path, "text", "label", delimiter="\t")
    assert [len(t) for t in texts] == [1_000_000, 10] and labels == ["pos", "neg"]


# ------------------------------------------------------------------------- predict input


@pytest.fixture(scope="module")
def tagger(tmp_path_factory):
    """A tiny, untrained tagging checkpoint: predict's reading of its input is under test."""
    import torch

    from convnlp import checkpoint
    from convnlp.data import tokenizer as tok
    from convnlp.model import build_model
    from tests.test_tagging import ENCODER, TASK

    tokenizer = tok.build("char", [["a", "b"]])
    torch.manual_seed(0)
    model = build_model(TASK, ENCODER, tokenizer.get_vocab_size(), 2)
    path = tmp_path_factory.mktemp("tagger") / "best"
    checkpoint.save(path, model, {"task": TASK, "encoder": ENCODER}, tokenizer, ["X", "Y"], {})
    return path


@FUZZ
@given(
    data=st.one_of(
        st.binary(max_size=400),
        st.lists(
            st.one_of(st.text(max_size=30).map(lambda t: t.encode("utf-8", "surrogatepass")), st.binary(max_size=20)),
            max_size=20,
        ).map(lambda parts: b"\n".join(parts)),
        st.lists(
            st.sampled_from([b"a b", b"\r", b"\xef\xbb\xbf", b"\xff\xfe", b"caf\xe9", b"", b" \t ", b"\x00"]),
            max_size=30,
        ).map(lambda parts: b"\n".join(parts)),
    ),
    ending=st.sampled_from([b"", b"\n", b"\r\n"]),
)
def test_predict_gives_one_record_per_input_line_whatever_the_bytes(tagger, tmp_path_factory, data, ending):
    from omegaconf import OmegaConf

    from convnlp.predict import predict_command

    root = tmp_path_factory.mktemp("predict")
    (root / "in.txt").write_bytes(data + ending)
    cfg = OmegaConf.create(
        {
            "checkpoint": str(tagger),
            "input": str(root / "in.txt"),
            "output": str(root / "out.jsonl"),
            "encoding": "utf-8",
            "on_error": "record",
            "batch_sentences": 7,
            "device": "cpu",
        }
    )
    raw = data + ending
    if raw.startswith((b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff")):  # UTF-16/32 read as UTF-8: refused
        with pytest.raises(UserError, match=r"in.txt:1: the input starts with a UTF-(16|32) byte-order mark"):
            predict_command(cfg)
        return
    predict_command(cfg)
    lines = raw.split(b"\n")
    lines = lines[:-1] if lines[-1] == b"" else lines
    records = [json.loads(line) for line in (root / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(records) == len(lines)
    for number, (line, record) in enumerate(zip(lines, records), start=1):
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            assert record["error"].startswith(f"line {number}: cannot decode byte") and record["tags"] is None
            continue
        text = text.removeprefix("\ufeff") if number == 1 else text
        text = text[:-1] if text.endswith("\r") else text
        assert record["tokens"] == text.split() and len(record["tags"]) == len(record["tokens"])


GARBAGE = {
    "utf-8": b"\xff",
    "utf-8-sig": b"\xc3",
    "utf-16": b"\x00\xd8",
    "utf-16-be": b"\xdc\x00",
    "utf-32": b"\xff\xff\xff\xff",
    "latin-1": None,
}


@FUZZ
@given(
    parts=st.lists(
        st.one_of(
            st.none(), st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r"), max_size=20)
        ),
        min_size=1,
        max_size=15,
    ),
    encoding=st.sampled_from(sorted(GARBAGE)),
    crlf=st.booleans(),
)
def test_predict_reads_each_encoding_line_by_line(tagger, tmp_path_factory, parts, encoding, crlf):
    """None in ``parts``: a line of bytes the encoding cannot decode; it gets an error record and
    the other lines their tags, in every encoding (UTF-16/32 are split at their own line feeds)."""
    from omegaconf import OmegaConf

    from convnlp.predict import predict_command

    if GARBAGE[encoding] is None:
        parts = [p for p in parts if p is not None] or [""]
        parts = [p.encode("latin-1", "replace").decode("latin-1") for p in parts]
    codec = {"utf-16": "utf-16-le", "utf-32": "utf-32-le", "utf-8-sig": "utf-8"}.get(encoding, encoding)
    newline = ("\r\n" if crlf else "\n").encode(codec)
    bom = {"utf-16": b"\xff\xfe", "utf-32": b"\xff\xfe\x00\x00", "utf-8-sig": b"\xef\xbb\xbf"}.get(encoding, b"")
    data = bom + b"".join((GARBAGE[encoding] if p is None else p.encode(codec)) + newline for p in parts)
    root = tmp_path_factory.mktemp("encodings")
    (root / "in.txt").write_bytes(data)
    cfg = OmegaConf.create(
        {
            "checkpoint": str(tagger),
            "input": str(root / "in.txt"),
            "output": str(root / "out.jsonl"),
            "encoding": encoding,
            "on_error": "record",
            "batch_sentences": 4,
            "device": "cpu",
        }
    )
    predict_command(cfg)
    records = [json.loads(line) for line in (root / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(records) == len(parts)
    for number, (part, record) in enumerate(zip(parts, records), start=1):
        if part is None:
            assert record["error"].startswith(f"line {number}: cannot decode") and record["tokens"] is None
        else:
            assert record["tokens"] == part.split(), (encoding, number, part, record)
