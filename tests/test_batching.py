from convnlp.data.batching import IGNORE, collate, token_batches


def test_batches_cover_everything_once_and_respect_the_budget():
    lengths = [5, 50, 3, 7, 7, 120, 1, 30, 30, 31] * 7
    batches = token_batches(lengths, batch_tokens=100, shuffle=True, seed=3)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        longest = max(lengths[i] for i in batch)
        assert longest * len(batch) <= 100 or len(batch) == 1  # a 120-symbol sentence rides alone
    assert token_batches(lengths, 100, shuffle=True, seed=3) == batches
    assert token_batches(lengths, 100, shuffle=True, seed=4) != batches


def test_collate_pads_and_masks():
    batch = collate([[4, 5, 6], [7]], [[0, 2], [0]], [[0, 2], [0]], [[1, 2], [3]])
    assert batch["ids"].tolist() == [[4, 5, 6], [7, 0, 0]]
    assert batch["mask"].tolist() == [[True, True, True], [True, False, False]]
    assert batch["word_mask"].tolist() == [[True, True], [True, False]]
    assert batch["tags"].tolist() == [[1, 2], [3, IGNORE]]
