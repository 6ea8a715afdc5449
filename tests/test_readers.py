"""File readers and named datasets: real files, and every kind of bad input."""

import re

import pytest
from omegaconf import OmegaConf

from convnlp.data import cmudict_stress, load_splits, probe_longrange
from convnlp.data.readers import read_conll, read_conllu
from convnlp.errors import UserError

CONLLU = """# sent_id = 1
# text = I can't go.
1\tI\tI\tPRON\tPRP\t_\t3\tnsubj\t_\t_
2-3\tcan't\t_\t_\t_\t_\t_\t_\t_\t_
2\tca\tcan\tAUX\tMD\t_\t3\taux\t_\t_
3\tn't\tnot\tPART\tRB\t_\t3\tadvmod\t_\t_
4\tgo\tgo\tVERB\tVB\t_\t0\troot\t_\t_
4.1\tgone\t_\t_\t_\t_\t_\t_\t_\t_
5\t.\t.\tPUNCT\t.\t_\t4\tpunct\t_\t_

1\tHi\thi\tINTJ\tUH\t_\t0\troot\t_\t_
"""


def test_conllu_reads_words_not_ranges_or_empty_nodes(tmp_path):
    path = tmp_path / "a.conllu"
    path.write_text(CONLLU)
    tokens, tags = read_conllu(path)
    assert tokens == [["I", "ca", "n't", "go", "."], ["Hi"]]
    assert tags == [["PRON", "AUX", "PART", "VERB", "PUNCT"], ["INTJ"]]
    assert read_conllu(path, "xpos")[1][0] == ["PRP", "MD", "RB", "VB", "."]


@pytest.mark.parametrize(
    "bad_line,line_no,message",
    [
        ("2\tgo\tgo\tVERB", 12, "expected 10 tab-separated columns, found 4"),
        ("x\tgo\tgo\tVERB\tVB\t_\t0\troot\t_\t_", 12, "ID column is 'x'"),
        ("2\tgo\tgo\t_\tVB\t_\t0\troot\t_\t_", 12, "token 'go' has no UPOS tag"),
    ],
)
def test_conllu_malformed_line_names_file_and_line(tmp_path, bad_line, line_no, message):
    path = tmp_path / "bad.conllu"
    path.write_text(
        CONLLU.replace("1\tHi\thi\tINTJ\tUH\t_\t0\troot\t_\t_", "1\tHi\thi\tINTJ\tUH\t_\t0\troot\t_\t_\n" + bad_line)
    )
    with pytest.raises(UserError) as error:
        read_conllu(path)
    assert str(error.value).startswith(f"{path}:{line_no}: ") and message in str(error.value)
    assert "\n" not in str(error.value)


def test_conll_columns_docstart_and_blank_lines(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("-DOCSTART- -X- O O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\n\nPeter NNP B-NP B-PER\n")
    tokens, tags = read_conll(path)
    assert tokens == [["EU", "rejects"], ["Peter"]]
    assert tags == [["B-ORG", "O"], ["B-PER"]]
    assert read_conll(path, tag_column=1)[1] == [["NNP", "VBZ"], ["NNP"]]


@pytest.mark.parametrize(
    "content,message",
    [
        ("EU NNP B-ORG\nrejects O\n", ":2: line has 2 column(s), earlier lines have 3"),
        ("EU\nrejects\n", ":1: token column 0 and tag column -1 are the same column of 1"),
    ],
)
def test_conll_bad_columns(tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_text(content)
    with pytest.raises(UserError, match=re.escape(message)):
        read_conll(path)


def test_conll_column_out_of_range(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("EU B-ORG\n")
    with pytest.raises(UserError, match=r"a.txt:1: line has 2 column\(s\), need columns 0 \(token\) and 5"):
        read_conll(path, tag_column=5)


@pytest.mark.parametrize("reader", [read_conll, read_conllu])
def test_empty_missing_and_undecodable_files(tmp_path, reader):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    with pytest.raises(UserError, match="empty.txt: file is empty"):
        reader(empty)
    with pytest.raises(UserError, match="nope.txt: no such file"):
        reader(tmp_path / "nope.txt")
    latin = tmp_path / "latin.txt"
    latin.write_bytes(b"ok O\n\ncaf\xe9 O\n")
    with pytest.raises(UserError, match=r"latin.txt:3: cannot decode byte b'\\xe9' at column 4 as utf-8"):
        reader(latin)


def test_conll_other_encoding(tmp_path):
    latin = tmp_path / "latin.txt"
    latin.write_bytes(b"caf\xe9 O\n")
    assert read_conll(latin, encoding="latin-1")[0] == [["café"]]


def test_cmudict_stress_split_is_deterministic_and_by_word():
    data = cmudict_stress.load()
    sizes = {split: len(tokens) for split, (tokens, _) in data.items()}
    assert sum(sizes.values()) > 130_000
    assert 0.04 < sizes["test"] / sum(sizes.values()) < 0.06
    assert cmudict_stress.split_of("cat", 5, 5) == cmudict_stress.split_of("cat", 5, 5)
    tokens, tags = data["train"]
    for words, labels in zip(tokens[:1000], tags[:1000]):
        assert len(words) == len(labels)
        assert all(not w[-1].isdigit() for w in words)
        assert set(labels) <= {"0", "1", "2", "_"}


def test_load_splits_gives_hf_datasets_with_tokens_and_tags(conll_files):
    cfg = OmegaConf.create(
        {
            "name": "conll",
            "train": str(conll_files["train"]),
            "validation": None,
            "test": str(conll_files["test"]),
            "token_column": 0,
            "tag_column": -1,
            "encoding": "utf-8",
        }
    )
    data = load_splits(cfg)
    assert set(data) == {"train", "test"}
    assert data["train"].column_names == ["tokens", "tags"]
    assert data["train"].num_rows == 200


def test_ud_ewt_from_data_dir(shared_datasets):
    cfg = OmegaConf.create(
        {
            "name": "ud_ewt",
            "tagset": "upos",
            "data_dir": str(shared_datasets),
            "url": "http://127.0.0.1:9/unused",
            "cache_dir": None,
        }
    )
    data = load_splits(cfg, splits=("validation",))
    assert data["validation"].num_rows == 2001
    assert sum(len(t) for t in data["validation"]["tokens"]) == 25147


def test_byte_order_mark_is_not_part_of_the_first_token(tmp_path):
    path = tmp_path / "bom.txt"
    path.write_bytes("\ufeffthe O\n".encode("utf-8"))
    assert read_conll(path)[0] == [["the"]]
    conllu_path = tmp_path / "bom.conllu"
    conllu_path.write_bytes(("\ufeff" + CONLLU).encode("utf-8"))
    assert read_conllu(conllu_path)[0][1] == ["Hi"]


def test_utf16_files_decode_whole(tmp_path):
    path = tmp_path / "u16.txt"
    path.write_bytes("naïve O\n\nok O\n".encode("utf-16"))
    assert read_conll(path, encoding="utf-16")[0] == [["naïve"], ["ok"]]


def test_probe_longrange_tags_the_token_distance_earlier():
    data = probe_longrange.load(distance=3, length=12, alphabet=5, train_size=20, eval_size=4, seed=1)
    tokens, tags = data["train"]
    assert len(tokens) == 20 and len(data["test"][0]) == 4
    for words, labels in zip(tokens, tags):
        assert labels[:3] == words[:3] and labels[3:] == words[:-3]
        assert set(words) <= set("abcde")
    assert probe_longrange.load(3, 12, 5, 20, 4, seed=1) == data
    assert data["validation"] != data["test"]
