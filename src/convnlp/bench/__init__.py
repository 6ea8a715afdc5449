"""`convnlp bench`: the speed of every encoder family, measured side by side by the tool itself.

The same model (embedding, task head, tokenizer, data) is built around each encoder of
``bench.encoders``, each at its schema's defaults. For every thread count of ``bench.threads``
and every repetition, each measurement runs for every encoder in turn (the encoders are
interleaved, starting at a rotating one), and the ratio to ``bench.baseline`` is computed within
the repetition, so a busy neighbour slows both sides of a ratio alike. Measurements:

    infer        batched inference on real sentences (as `predict` runs it): symbols/s, words/s
    latency      batch size 1, one sentence at a time: ms per sentence, p50 and p95
    train        forward + backward + optimizer step on real batches: symbols/s
    infer@T      batched inference on inputs of about T symbols (real sentences joined)
    train@T      training steps on the same

Every thread count is measured alone and, for each ``bench.neighbours`` count n > 0, again beside n
busy neighbour processes (one thread each, computing without pause, as a single-thread training
does), which is how a shared machine slows a run.

With ``task=tagging`` and spaCy installed (``pip install -e ".[peers]"``), spaCy's CPU tagger is
timed beside the encoders on the same sentences at the same thread count (``convnlp.peers``).

Each figure is the median of the repetitions, with min and max. Also per encoder: parameters,
forward FLOPs per symbol of the encoder (as `inspect` counts them), the GFLOP/s that achieves,
and its share of the machine's peak, measured here as an fp32 matrix multiply at the same thread
count. Everything goes to ``bench.json`` (with every raw repetition), ``bench.md`` and PNG plots
in the run directory.

The parts: ``workload.py`` (the inputs), ``subjects.py`` (what is measured), ``harness.py``
(timing, neighbours, repetitions), ``profile.py`` (where the time goes), ``tables.py`` (figures,
tables, plots) and ``command.py`` (the command).
"""
