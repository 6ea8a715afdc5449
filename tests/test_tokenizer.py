"""Char and word vocabularies with HF tokenizers, and word positions."""

from convnlp.data import tokenizer as tok

SENTENCES = [["The", "cat", "sat", "."], ["A", "dog", "!"]]


def test_char_ids_and_word_positions(tmp_path):
    tokenizer = tok.build("char", SENTENCES)
    ids, firsts, lasts = tok.encode(tokenizer, [["The", "cat"], ["é"], []])
    assert len(ids[0]) == len("The cat")
    assert firsts[0] == [0, 4] and lasts[0] == [2, 6]
    vocab = tokenizer.get_vocab()
    assert ids[0][3] == vocab[" "] and ids[0][0] == vocab["T"]
    assert ids[1] == [vocab[tok.UNK]]  # unseen character
    assert ids[2] == [] and firsts[2] == []
    assert vocab[tok.PAD] == tok.PAD_ID
    tok.save(tokenizer, tmp_path / "tokenizer.json")
    again = tok.load(tmp_path / "tokenizer.json")
    assert tok.encode(again, SENTENCES) == tok.encode(tokenizer, SENTENCES)
    assert tok.kind_of(again) == "char"


def test_char_min_frequency():
    tokenizer = tok.build("char", [["aaa", "b"]], min_frequency=2)
    assert "a" in tokenizer.get_vocab() and "b" not in tokenizer.get_vocab()


def test_word_ids_one_per_word(tmp_path):
    tokenizer = tok.build("word", SENTENCES + [["the", "cat"]], min_frequency=2, lowercase=True)
    ids, firsts, lasts = tok.encode(tokenizer, [["THE", "cat", "zebra", "two words"]])
    vocab = tokenizer.get_vocab()
    assert ids[0][:2] == [vocab["the"], vocab["cat"]]
    assert ids[0][2] == vocab[tok.UNK] and len(ids[0]) == 4  # a token with a space stays one word
    assert firsts == lasts == [[0, 1, 2, 3]]
    tok.save(tokenizer, tmp_path / "t.json")
    assert tok.kind_of(tok.load(tmp_path / "t.json")) == "word"


def test_special_symbols_in_text_are_ordinary_text():
    tokenizer = tok.build("char", [["x", "<unk>", "<pad>"]])
    ids, firsts, lasts = tok.encode(tokenizer, [["x", "<unk>", "<pad>"]])
    assert len(ids[0]) == len("x <unk> <pad>") and tok.PAD_ID not in ids[0]
    assert firsts == [[0, 2, 8]] and lasts == [[0, 6, 12]]
    words = tok.build("word", [["a", "x<pad>y", "b"]])
    ids, firsts, _ = tok.encode(words, [["a", "x<pad>y", "b"]])
    assert len(ids[0]) == 3 and tok.PAD_ID not in ids[0] and firsts == [[0, 1, 2]]


def test_lowercasing_that_changes_length_keeps_word_positions():
    tokenizer = tok.build("char", [["İstanbul", "is"]], lowercase=True)
    ids, firsts, lasts = tok.encode(tokenizer, [["İstanbul", "is"]])
    assert len(ids[0]) == len("i̇stanbul is")  # "İ" lowercases to two code points
    assert firsts == [[0, 10]] and lasts == [[8, 11]]
