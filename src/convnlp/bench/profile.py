"""Where batched inference spends its time (``bench.profile=true``): torch.profiler's operators
grouped by what they are."""

from __future__ import annotations

import logging

import torch

log = logging.getLogger("convnlp.bench")


PROFILE_GROUPS = (
    ("convolution", ("conv",)),
    ("matmul", ("addmm", "matmul", "aten::mm", "bmm", "linear")),
    ("layout copies", ("copy_", "clone", "contiguous", "cat", "transpose", "permute")),
    ("normalization", ("norm",)),
    ("elementwise", ("add", "mul", "clamp", "relu", "gelu", "tanh", "sigmoid", "where", "fill", "div")),
)


def _scopes(model: torch.nn.Module) -> list:
    """Mark each part of the model (embedding, encoder, head) in the profiler's trace."""
    open_scopes, handles = {}, []
    for name, module in model.named_children():

        def enter(_module, _inputs, name=name):
            open_scopes[name] = torch.profiler.record_function(f"part::{name}")
            open_scopes[name].__enter__()

        def leave(_module, _inputs, _output, name=name):
            open_scopes.pop(name).__exit__(None, None, None)

        handles += [module.register_forward_pre_hook(enter), module.register_forward_hook(leave)]
    return handles


def profile_shares(subject, work: list[tuple], top: int = 15, run=None) -> tuple[dict, str]:
    """Where one pass of batched inference over ``work`` spends its time (torch profiler, CPU):
    the share of each part of the model (its total time; "rest": the model's own glue) and of
    each kind of operator (``PROFILE_GROUPS``, by self time; "other": embedding lookups,
    gathers, allocation, the LSTM's own bookkeeping; "python": the time inside a part between
    its operators), how many calls each part and each kind of operator made (``calls``: counts,
    which no busy machine changes), and the table of the ``top`` operators."""
    from torch.profiler import ProfilerActivity, profile

    handles, run = _scopes(subject.model), run or subject.infer
    try:
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for batch, _ in work:
                run(batch)
    finally:
        for handle in handles:
            handle.remove()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    parts = {e.key.removeprefix("part::"): e.cpu_time_total / total for e in events if e.key.startswith("part::")}
    parts["rest"] = max(0.0, 1.0 - sum(parts.values()))
    kinds = {group: 0.0 for group, _ in PROFILE_GROUPS} | {"other": 0.0, "python": 0.0}
    calls = {"parts": {}, "operators": {group: 0 for group in kinds}}
    for event in events:  # a part's own time is the Python that runs between its operators
        name = event.key.lower()
        group = (
            "python"
            if name.startswith("part::")
            else next((g for g, keys in PROFILE_GROUPS if any(k in name for k in keys)), "other")
        )
        kinds[group] += event.self_cpu_time_total / total
        calls["operators"][group] += event.count
        if name.startswith("part::"):
            calls["parts"][event.key.removeprefix("part::")] = event.count
    return (
        {"parts": parts, "operators": kinds, "calls": calls},
        events.table(sort_by="self_cpu_time_total", row_limit=top),
    )


def profile_table(profiles: dict[str, dict], threads: int) -> str:
    columns = list(
        dict.fromkeys((kind, g) for kind in ("parts", "operators") for p in profiles.values() for g in p[kind])
    )
    stages = any("stages" in p for p in profiles.values())
    columns = [("stages", g) for g in ("input", "network", "output") if stages] + columns
    lines = [
        f"Where batched inference spends its time ({threads} thread(s); torch profiler, CPU): the model's "
        "parts, then the kinds of operator"
        + (
            "; for a trained checkpoint first the stages of a whole "
            "prediction (input: tokenization, word features, padding; "
            "output: argmax and labels; each timed on its own)"
            if stages
            else ""
        ),
        "",
        "| encoder | " + " | ".join(g for _, g in columns) + " |",
        "|---" + "|---:" * len(columns) + "|",
    ]
    lines += [
        f"| `{name}` | "
        + " | ".join(f"{shares[k][g]:.0%}" if g in shares.get(k, {}) else "" for k, g in columns)
        + " |"
        for name, shares in profiles.items()
    ]
    return "\n".join(lines) + "\n"
