"""Tasks: each file holds its head, loss, metrics, encoding and prediction.

Every task module offers the same functions, which the trainer, ``eval`` and ``predict`` call.
``task_cfg`` is the run's ``task`` group, with the ``decoder`` group under ``task_cfg["decoder"]``
(see ``task_config``):

    COLUMNS                                  the data set's column names
    OUTPUT_FIELDS                            the fields of a predict record (null, plus "error",
                                             for an input line that cannot be read)
    build_head(task_cfg, input_dim, num_labels) -> nn.Module
    label_vocabulary(train_split, task_cfg) -> list[str]
    tokenizer_examples(train_split)          what the vocabulary is trained on
    report_unseen(split, labels, where, task_cfg, tokenizer)
                                             warn about labels training never saw; their counts
    encode(split, tokenizer, labels, where, task_cfg)   lists the batches are cut from ("ids" first)
    make_batch(encoded, indices)             padded tensors, "ids" and "mask" included
    describe(encoded)                        "12544 sentences, 204577 words" for the log
    loss(logits, batch, task_cfg) -> (mean loss, count)
    evaluate(model, tokenizer, labels, split, task_cfg, device, batch_tokens) -> metrics
                                             ("accuracy" selects the best checkpoint)
    log_metrics(writer, prefix, metrics, step)   to TensorBoard
    read_input(line)                         one line of `convnlp predict` input
    predict_records(model, tokenizer, labels, inputs, device, task_cfg) -> JSON-ready dicts
"""

from convnlp.tasks import classification, generation, tagging

TASKS = {"tagging": tagging, "classification": classification, "generation": generation}


def task_config(config: dict) -> dict:
    """The ``task`` group of a resolved run config, with its ``decoder`` group (None if none)."""
    return {**config["task"], "decoder": config.get("decoder")}
