"""Classification data: readers of labeled texts, the named sets (SST-2, MR folds, CMUdict
syllables), their downloads against a real HTTP server, and raw-text tokenizers."""

import io
import json
import logging
import shutil
import tarfile

import datasets
import pytest
from omegaconf import OmegaConf

from convnlp.config import validate_group
from convnlp.data import cmudict_syllables, download, labeled, load_splits, sentiment
from convnlp.data import tokenizer as tok
from convnlp.errors import UserError
from tests.test_download import server  # noqa: F401  (the fixture)


def write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding))
    return path


def test_label_first_lines(tmp_path):
    path = write(tmp_path / "train.txt", "1 a fine film .\n0 dull\n")
    assert labeled.read_label_first(path) == (["a fine film .", "dull"], ["1", "0"])
    with pytest.raises(UserError, match=r"train.txt:2: label '0' has no text after it"):
        labeled.read_label_first(write(tmp_path / "train.txt", "1 fine\n0\n"))
    with pytest.raises(UserError, match=r"train.txt:2: empty line"):
        labeled.read_label_first(write(tmp_path / "train.txt", "1 fine\n\n0 bad\n"))


def test_csv_and_tsv_tables(tmp_path):
    path = write(tmp_path / "a.csv", 'id,text,label\n1,"good, really",pos\n2,bad,neg\n3,so so,1\n')
    assert labeled.read_table(path, "text", "label") == (["good, really", "bad", "so so"], ["pos", "neg", "1"])
    tsv = write(tmp_path / "a.tsv", "sentence\tstars\nnice\t5\nmeh\t2\n")
    assert labeled.read_table(tsv, "sentence", "stars", delimiter="\t") == (["nice", "meh"], ["5", "2"])


@pytest.mark.parametrize(
    "content,message",
    [
        (
            "id,body,label\n1,x,pos\n",
            "a.csv:1: no text column 'text'; the header has: id, body, label (set data.text_column=...)",
        ),
        ("text,label\nok,pos\nfine,\n", "a.csv:3: no label in column 'label'"),
        (
            "text,label\nok,pos\n ,neg\n",
            "a.csv:3: empty text in column 'text' (remove the row, or set data.skip_empty=true)",
        ),
        ("text,label\nok,pos,extra\n", "a.csv:2: 3 fields, the header has 2"),
    ],
)
def test_csv_errors_name_file_and_line(tmp_path, content, message):
    with pytest.raises(UserError) as error:
        labeled.read_table(write(tmp_path / "a.csv", content), "text", "label")
    assert str(error.value) == f"{tmp_path / 'a.csv'}{message[len('a.csv') :]}"


def test_skip_empty_reports_the_count(tmp_path, caplog):
    path = write(tmp_path / "a.csv", "text,label\nok,pos\n,neg\n  ,neg\nfine,pos\n")
    with caplog.at_level(logging.WARNING):
        assert labeled.read_table(path, "text", "label", skip_empty=True) == (["ok", "fine"], ["pos", "pos"])
    assert "a.csv: left out 2 row(s) with an empty text (first at line 3)" in caplog.text


def test_jsonl(tmp_path):
    rows = [{"text": "good", "label": 1}, {"text": "bad", "label": 0.0}, {"text": "meh", "label": "mixed"}]
    path = write(tmp_path / "a.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n\n")
    assert labeled.read_jsonl(path, "text", "label") == (["good", "bad", "meh"], ["1", "0", "mixed"])
    for content, message in [
        ('{"text": "a", "label": 1}\n{"text": "b"\n', "a.jsonl:2: not valid JSON"),
        ('{"text": "a"}\n', "a.jsonl:1: no label in field 'label'"),
        ('{"body": "a", "label": 1}\n', "a.jsonl:1: no text field 'text'; the object has: body, label"),
        ("[1, 2]\n", "a.jsonl:1: expected a JSON object, found list"),
    ]:
        with pytest.raises(UserError, match=message.replace("[", r"\[")):
            labeled.read_jsonl(write(tmp_path / "a.jsonl", content), "text", "label")


def test_huggingface_dataset_directory_with_class_labels(tmp_path):
    features = datasets.Features(
        {"sentence": datasets.Value("string"), "label": datasets.ClassLabel(names=["negative", "positive"])}
    )
    root = tmp_path / "my_data"
    root.mkdir()
    for split, rows in (("train", [("good", 1), ("bad", 0)]), ("test", [("fine", 1)])):
        dataset = datasets.Dataset.from_dict(
            {"sentence": [r[0] for r in rows], "label": [r[1] for r in rows]}, features=features
        )
        dataset.to_parquet(str(root / f"{split}.parquet"))
    assert labeled.read_hf(str(root), None, "train", "sentence", "label") == (["good", "bad"], ["positive", "negative"])
    with pytest.raises(UserError, match=r"no text column 'text'; columns: sentence, label"):
        labeled.read_hf(str(root), None, "train", "text", "label")
    cfg = validate_group(
        "data",
        OmegaConf.create({"name": "hub", "path": str(root), "validation_split": None, "text_column": "sentence"}),
    )
    splits = load_splits(cfg, task="classification")
    assert set(splits) == {"train", "test"} and splits["test"]["label"] == ["positive"]


def test_shared_sst2_and_mr(shared_datasets):
    data_dir = str(shared_datasets)
    sst2 = sentiment.load_sst2(data_dir, "unused", None, ("train", "validation", "test"))
    assert [len(sst2[s][0]) for s in ("train", "validation", "test")] == [6920, 872, 1821]
    assert set(sst2["train"][1]) == {"0", "1"}
    folds = [
        sentiment.load_mr(k, data_dir, "unused", None, "latin-1", ("train", "validation", "test")) for k in range(10)
    ]
    tests = [text for fold in folds for text in fold["test"][0]]
    assert len(tests) == 10662  # every sentence is tested exactly once over the ten folds
    assert all(len(f["train"][0]) + len(f["validation"][0]) + len(f["test"][0]) == 10662 for f in folds)
    assert set(folds[0]["test"][0]) == set(folds[9]["validation"][0])
    assert any("é" in text for text in tests)  # latin-1 decoded


def test_sst2_and_mr_download_and_check(server, shared_datasets, tmp_path, monkeypatch):  # noqa: F811
    root, base = server
    monkeypatch.delenv("CONVNLP_DATA_DIR", raising=False)
    shutil.copy(shared_datasets / "sst2" / "dev.txt", root / "stsa.binary.dev")
    path = sentiment.sst2_path("validation", None, base + "/{file}", str(tmp_path / "cache"))
    assert download.sha256_of(path) == sentiment.SST2_FILES["validation"][2]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for polarity in ("pos", "neg"):
            tar.add(shared_datasets / "mr" / f"rt-polarity.{polarity}", f"rt-polaritydata/rt-polarity.{polarity}")
    (root / "rt-polaritydata.tar.gz").write_bytes(buffer.getvalue())
    paths = sentiment.mr_paths(None, base + "/rt-polaritydata.tar.gz", str(tmp_path / "cache"))
    assert {p: download.sha256_of(path) for p, path in paths.items()} == sentiment.MR_FILES
    # a damaged archive member is refused and not kept
    with tarfile.open(fileobj=(buffer := io.BytesIO()), mode="w:gz") as tar:
        for polarity in ("pos", "neg"):
            info = tarfile.TarInfo(f"rt-polaritydata/rt-polarity.{polarity}")
            info.size = 3
            tar.addfile(info, io.BytesIO(b"x\n\n"))
    (root / "other.tar.gz").write_bytes(buffer.getvalue())
    with pytest.raises(UserError, match="rt-polarity.pos has an unexpected checksum"):
        sentiment.mr_paths(None, base + "/other.tar.gz", str(tmp_path / "cache2"))
    assert not (tmp_path / "cache2" / "mr" / "rt-polarity.pos").exists()


def test_mr_empty_line_is_an_error(tmp_path):
    (tmp_path / "mr").mkdir()
    write(tmp_path / "mr" / "rt-polarity.pos", "good\n\nfine\n", "latin-1")
    write(tmp_path / "mr" / "rt-polarity.neg", "bad\n", "latin-1")
    with pytest.raises(UserError, match=r"rt-polarity.pos:2: empty line"):
        sentiment.load_mr(0, str(tmp_path), "unused", None, "latin-1", ("train",))


def test_cmudict_syllables():
    data = cmudict_syllables.load()
    texts, labels = [], []
    for split in data.values():
        texts += split[0]
        labels += split[1]
    label_of = dict(zip(texts, labels))
    assert label_of["queue"] == "1" and label_of["naive"] == "2" and label_of["syllable"] == "3"
    assert len(texts) == len(set(texts)) > 120000  # one row per word
    assert len(data["test"][0]) > 5000


def test_raw_text_tokenizers(tmp_path):
    texts = ["the cat sat, ok?", "the dog sat", "cats and dogs"]
    word = tok.build("word", texts)
    assert tok.encode_texts(word, ["the cat, zebra"]) == [[word.token_to_id(w) for w in ("the", "cat", ",")] + [1]]
    bpe = tok.build("bpe", texts * 10, max_vocab=60)
    ids = tok.encode_texts(bpe, ["the cats sat"])[0]
    assert tok.kind_of(bpe) == "bpe" and len(ids) >= 3 and bpe.token_to_id(tok.PAD) == tok.PAD_ID
    tok.save(bpe, tmp_path / "t.json")
    assert tok.encode_texts(tok.load(tmp_path / "t.json"), ["the cats sat"])[0] == ids
    # bpe for tagging: every word gets its first and last subword
    ids, firsts, lasts = tok.encode(bpe, [["the", "cats", "sat"]])
    assert (
        firsts[0][0] == 0
        and all(first <= last for first, last in zip(firsts[0], lasts[0]))
        and lasts[0][-1] == len(ids[0]) - 1
    )


def test_probe_longrange_for_classification():
    from convnlp.data import probe_longrange

    texts, labels = probe_longrange.generate_classification(400, 12, 5, 4, seed=1)
    for text, label in zip(texts, labels):
        tokens = text.split()
        assert len(tokens) == 12 and label == ("same" if tokens[0] == tokens[5] else "different")
    assert 150 < labels.count("same") < 250


def test_a_tsv_row_is_a_line_and_a_quote_is_text(tmp_path, caplog):
    """Issue 16: texts that begin with a quote must not swallow the rows after them."""
    rows = [(f'"quoted {i} ...' if i % 7 == 0 else f"plain text {i}", "pos" if i % 2 else "neg") for i in range(40)]
    path = write(tmp_path / "a.tsv", "text\tlabel\n" + "".join(f"{t}\t{label}\n" for t, label in rows))
    texts, labels = labeled.read_table(path, "text", "label", delimiter="\t")
    assert list(zip(texts, labels)) == rows  # 40 rows, not 19
    # the same file through the named data set
    cfg = validate_group("data", OmegaConf.create({"name": "tsv", "train": str(path)}))
    assert load_splits(cfg, splits=("train",), task="classification")["train"].num_rows == 40
    # CSV-style quoting on request: a quoted field may hold a tab, and with multiline a line break
    quoted = write(tmp_path / "q.tsv", 'text\tlabel\n"a\ttab and\na break"\tpos\nplain\tneg\n')
    with caplog.at_level(logging.WARNING):
        assert labeled.read_table(quoted, "text", "label", delimiter="\t", quoting="multiline") == (
            ["a\ttab and\na break", "plain"],
            ["pos", "neg"],
        )
    with pytest.raises(
        UserError,
        match=r"q.tsv:2: malformed TSV: a quoted field that starts on this line runs on "
        r"to line 3; .* or set data.quoting=multiline",
    ):
        labeled.read_table(quoted, "text", "label", delimiter="\t", quoting="csv")
    assert "q.tsv: 1 row(s) have a quoted field with a line break inside (first at line 2)" in caplog.text
    assert labeled.read_table(quoted, "text", "label", delimiter="\t")[0] == ['"a', 'a break"', "plain"]


def test_a_csv_with_a_stray_quote_names_the_line_where_it_opened(tmp_path):
    rows = "".join(f"{'x' if i != 3 else chr(34) + 'x'} {i},pos\n" for i in range(10))
    path = write(tmp_path / "a.csv", "text,label\n" + rows)
    for quoting in ("csv", "multiline"):  # the quote opened on line 5 meets text after its close
        with pytest.raises(UserError) as error:
            labeled.read_table(path, "text", "label", quoting=quoting)
        assert str(error.value).startswith(f"{path}:5: malformed CSV: a quoted field that starts on this line ")
    unclosed = write(tmp_path / "b.csv", 'text,label\nfine,pos\n"never closed,neg\nmore,pos\n')
    with pytest.raises(UserError, match=r"b.csv:3: malformed CSV: .*unexpected end of data"):
        labeled.read_table(unclosed, "text", "label", quoting="multiline")
    # closed on a later line, so that it swallows whole rows: refused unless multiline is asked for
    swallowing = write(tmp_path / "c.csv", 'label,text\n1,"best film ever\n0,ok\n1,fine\n0,he is 6 ft 2"\n1,last\n')
    with pytest.raises(
        UserError,
        match=r"c.csv:2: malformed CSV: a quoted field that starts on this line runs on "
        r"to line 5",
    ):
        labeled.read_table(swallowing, "text", "label")
    # a lone carriage return is a character of its line, never a row break
    assert labeled.read_table(write(tmp_path / "d.csv", "label,text\npos,good\rneg bad\n"), "text", "label") == (
        ["good\rneg bad"],
        ["pos"],
    )
    with pytest.raises(UserError, match=r"d.csv:2: 3 fields, the header has 2"):
        labeled.read_table(write(tmp_path / "d.csv", "label,text\npos,good\rneg,bad\n"), "text", "label")
    assert labeled.read_table(write(tmp_path / "e.csv", 'label,text\npos,"good\rbad"\n'), "text", "label") == (
        ["good\rbad"],
        ["pos"],
    )
    long = write(tmp_path / "f.csv", "label,text\npos," + "x" * 200_000 + "\n")  # past csv's default field limit
    assert [len(t) for t in labeled.read_table(long, "text", "label")[0]] == [200_000]
    # quoting=none reads a CSV whose quotes are text
    assert labeled.read_table(path, "text", "label", quoting="none")[0][3] == '"x 3'


def test_every_record_of_a_table_is_read_skipped_or_ignored(tmp_path, caplog):
    path = write(tmp_path / "a.csv", "text,label\nok,pos\n\n,neg\nfine,pos\n\n")
    with caplog.at_level(logging.DEBUG):
        assert labeled.read_table(path, "text", "label", skip_empty=True) == (["ok", "fine"], ["pos", "pos"])
    assert "a.csv: left out 1 row(s) with an empty text (first at line 4)" in caplog.text
    assert "a.csv: 2 blank line(s) between rows (first at line 3)" in caplog.text
