"""`convnlp inspect`: what an encoder costs and what it sees, without data or a checkpoint.
With ``task=generation``, also the decoder's length arithmetic: the length after each stage.

- a per-layer table: output width, receptive field after the layer, parameters, FLOPs per
  input position (a multiply-add counts 2), and totals;
- optionally the *effective* receptive field (Luo et al. 2016): the gradient of one output
  position with respect to every input position, at initialization or from a checkpoint;
- optionally the gradient flow at initialization: the gradient norm reaching the first layer
  relative to the last, for several depths of every convolutional family.

Layers are found by running the encoder once with hooks on its convolutions and LSTMs, so the
table follows the real forward order of any encoder, with no per-family code.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import torch
from omegaconf import OmegaConf
from torch import nn

from convnlp import checkpoint
from convnlp.decoders import build_decoder
from convnlp.encoders import build_encoder
from convnlp.encoders.layers import MaskedConv1d
from convnlp.registry import ENCODERS

log = logging.getLogger(__name__)


def layer_table(encoder: nn.Module, input_dim: int, length: int = 64) -> list[dict]:
    """One row per convolution / LSTM in forward order, with the cumulative receptive field."""
    rows, hooks = [], []

    def record(module, _inputs, _output):
        if isinstance(module, MaskedConv1d):
            k, d, groups = module.kernel_size[0], module.dilation[0], module.groups
            flops = 2 * module.in_channels * module.out_channels * k // groups  # each output reads its group
            kind = (
                "" if groups == 1 else " dw" if groups == module.in_channels == module.out_channels else f" g={groups}"
            )
            rows.append(
                {
                    "layer": names[module],
                    "type": f"conv k={k} d={d}{kind}",
                    "in": module.in_channels,
                    "out": module.out_channels,
                    "growth": d * (k - 1),
                    "parameters": sum(p.numel() for p in module.parameters()),
                    "flops_per_position": flops,
                }
            )
        else:  # nn.LSTM: 4 gates, each an input and a recurrent matrix
            directions = 2 if module.bidirectional else 1
            flops, size_in = 0, module.input_size
            for _ in range(module.num_layers):
                flops += 2 * 4 * module.hidden_size * (size_in + module.hidden_size) * directions
                size_in = module.hidden_size * directions
            rows.append(
                {
                    "layer": names[module],
                    "type": "bilstm" if module.bidirectional else "lstm",
                    "in": module.input_size,
                    "out": module.hidden_size * directions,
                    "growth": math.inf,
                    "parameters": sum(p.numel() for p in module.parameters()),
                    "flops_per_position": flops,
                }
            )

    names = {m: n for n, m in encoder.named_modules()}
    for module in encoder.modules():
        if isinstance(module, (MaskedConv1d, nn.LSTM)):
            hooks.append(module.register_forward_hook(record))
    try:
        with torch.no_grad():
            encoder.eval()(torch.zeros(1, length, input_dim), torch.ones(1, length, dtype=torch.bool))
    finally:
        for hook in hooks:
            hook.remove()
    field = 1
    for row in rows:  # layers in sequence add to the field; side-by-side ones (wide) each read the input
        field = (1 if getattr(encoder, "parallel", False) else field) + row.pop("growth")
        row["receptive_field"] = field
    return rows


def format_table(rows: list[dict], encoder: nn.Module) -> str:
    def rf(value):
        return "unbounded" if math.isinf(value) else str(int(value))

    lines = [f"{'layer':<28} {'type':<14} {'in':>5} {'out':>5} {'receptive':>10} {'params':>9} {'FLOPs/pos':>11}"]
    for row in rows:
        lines.append(
            f"{row['layer']:<28} {row['type']:<14} {row['in']:>5} {row['out']:>5} "
            f"{rf(row['receptive_field']):>10} {row['parameters']:>9,} {row['flops_per_position']:>11,}"
        )
    total_params = sum(p.numel() for p in encoder.parameters())
    total_flops = sum(r["flops_per_position"] for r in rows)
    lines.append(
        f"{'total (norms included in params)':<49} {rf(encoder.receptive_field):>10} "
        f"{total_params:>9,} {total_flops:>11,}"
    )
    return "\n".join(lines)


def autoregressive_report(decoder: nn.Module, source_symbols: int) -> dict:
    """An autoregressive decoder's layers, its receptive field over the target prefix, and its
    FLOPs per output symbol (for a source of ``source_symbols``: the attention reads all of it)."""
    layers = []
    if hasattr(decoder, "convs"):
        reach = 1
        for i, conv in enumerate(decoder.convs):
            kernel, dilation = conv.conv.kernel_size[0], conv.conv.dilation[0]
            reach += (kernel - 1) * dilation
            layers.append({"layer": f"conv[{i}] causal GLU k={kernel} d={dilation} + attention", "prefix_reach": reach})
    else:
        for i in range(decoder.lstm.num_layers):
            layers.append({"layer": f"lstm[{i}] width {decoder.lstm.hidden_size}", "prefix_reach": "unbounded"})
        layers.append({"layer": "attention (Luong, general)", "prefix_reach": "unbounded"})
    field = decoder.receptive_field
    flops = decoder.flops(source_symbols)
    return {
        "decoder": type(decoder).__name__,
        "layers": layers,
        "prefix_receptive_field": field if math.isfinite(field) else "unbounded",
        "source_symbols": source_symbols,
        "flops": [{"part": part, "flops": n} for part, n in flops],
        "flops_per_symbol": sum(n for _, n in flops),
        "parameters": sum(p.numel() for n, p in decoder.named_parameters() if not n.startswith("output.")),
    }


def format_autoregressive(report: dict) -> str:
    lines = [f"decoder: {report['decoder']}, autoregressive; each layer and its reach over the target prefix"]
    lines += [f"  {row['layer']:<44} {row['prefix_reach']!s:>9}" for row in report["layers"]]
    lines.append(f"  receptive field over the prefix: {report['prefix_receptive_field']} symbols")
    lines.append(f"  FLOPs per output symbol, for a source of {report['source_symbols']} symbols:")
    lines += [f"    {row['part']:<42} {row['flops']:>11,}" for row in report["flops"]]
    lines.append(f"    {'total (output layer: 1 target symbol here)':<42} {report['flops_per_symbol']:>11,}")
    lines.append(f"  {report['parameters']:,} parameters (without the output layer, sized by the target vocabulary)")
    return "\n".join(lines)


def decoder_report(decoder: nn.Module) -> dict:
    """The deconvolutional decoder's length arithmetic (length after each stage), its resting
    stack's reach over output positions, and its parameters without the output layer."""
    rest = 1 + sum(conv.dilation[0] * (conv.kernel_size[0] - 1) for conv in decoder.rest)
    return {
        "bottleneck": decoder.bottleneck,
        "lengths": [{"stage": s, "length": n} for s, n in decoder.lengths()],
        "rest_layers": len(decoder.rest),
        "rest_receptive_field": rest,
        "parameters": sum(p.numel() for n, p in decoder.named_parameters() if not n.startswith("output.")),
    }


def format_decoder(report: dict) -> str:
    lines = [
        f"decoder: {report['bottleneck']} bottleneck; length after each stage",
        f"  {'stage':<36} {'length':>6}",
    ]
    lines += [f"  {row['stage']:<36} {row['length']:>6}" for row in report["lengths"]]
    lines.append(
        f"  then {report['rest_layers']} resting residual convs (length kept), reach "
        f"{report['rest_receptive_field']} output positions"
    )
    lines.append(f"  {report['parameters']:,} parameters (without the output layer, sized by the target vocabulary)")
    return "\n".join(lines)


def effective_receptive_field(
    encoder: nn.Module, input_dim: int, length: int, samples: int = 16, seed: int = 0
) -> list[float]:
    """Mean |d output[centre] / d input[t]| over random inputs, normalized to a maximum of 1."""
    torch.manual_seed(seed)
    encoder.eval()
    centre = length // 2
    total = torch.zeros(length)
    for _ in range(samples):
        x = torch.randn(1, length, input_dim, requires_grad=True)
        out = encoder(x, torch.ones(1, length, dtype=torch.bool))
        # a random projection: a LayerNorm output summed over channels is constant
        (out[0, centre] * torch.randn(out.shape[-1])).sum().backward()
        total += x.grad[0].abs().sum(-1)
    return (total / total.max().clamp(min=1e-30)).tolist()


def depth_config(family: str, depth: int, width: int, norm: str = "none"):
    """An encoder config of a family with ``depth`` kernel-wide convolution layers: the family's
    own ``at_depth`` (declared where it registers)."""
    at_depth = ENCODERS[family].info.get("at_depth")
    if at_depth is None:
        raise ValueError(f"no depth schedule for {family!r}")
    return at_depth(depth, width, norm)


def gradient_flow(
    families: list[str],
    depths: list[int],
    width: int = 64,
    length: int = 128,
    input_dim: int = 64,
    seed: int = 0,
    norm: str = "none",
) -> list[dict]:
    """Gradient norm of the first kernel-wide conv's weights over the last one's, at init.

    With ``norm="none"`` this shows what the connections alone do; a LayerNorm after every
    layer (``norm="layer"``) also keeps a plain stack's gradient from fading at these depths.
    """
    results = []
    for family in families:
        for depth in depths:
            torch.manual_seed(seed)
            encoder = build_encoder(depth_config(family, depth, width, norm), input_dim)
            convs = [m for m in encoder.modules() if isinstance(m, MaskedConv1d) and m.kernel_size[0] > 1]
            x = torch.randn(8, length, input_dim)
            out = encoder(x, torch.ones(8, length, dtype=torch.bool))
            (out * torch.randn_like(out)).sum().backward()
            first, last = convs[0].weight.grad.norm().item(), convs[-1].weight.grad.norm().item()
            results.append(
                {
                    "family": family,
                    "depth": depth,
                    "first_over_last": first / last,
                    "first": first,
                    "last": last,
                    "receptive_field": encoder.receptive_field,
                }
            )
    return results


def plot_curves(
    path: Path,
    title: str,
    xlabel: str,
    ylabel: str,
    curves: dict,
    log_y: bool = False,
    log_x: bool = False,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    markers = ["o", "s", "^", "D", "v", "x"]  # distinct, so curves that coincide stay visible
    for i, (label, (xs, ys)) in enumerate(curves.items()):
        ax.plot(
            xs,
            ys,
            marker=markers[i % len(markers)] if len(xs) < 20 else None,
            linestyle="-" if i % 2 == 0 else "--",
            label=label,
        )
    if log_y:
        ax.set_yscale("log")
    if log_x:
        ax.set_xscale("log", base=2)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def inspected(cfg) -> tuple[nn.Module, int, str, nn.Module | None]:
    """The encoder, its input width, its name and (generation) the decoder: a checkpoint's, or
    the configured ones."""
    if cfg.checkpoint:
        loaded = checkpoint.load(cfg.checkpoint)
        config = loaded.config
        decoder = loaded.model.head if config.get("decoder") else None
        return (
            loaded.model.encoder,
            config["task"]["embedding_dim"],
            config["encoder"]["name"],
            decoder,
        )
    input_dim = cfg.task.embedding_dim
    encoder = build_encoder(OmegaConf.to_container(cfg.encoder, resolve=True), input_dim)
    decoder = None
    if cfg.task.name == "generation" and cfg.get("decoder"):
        # the output layer's size comes from the data; 1 here, so it is left out of the count
        decoder = build_decoder(OmegaConf.to_container(cfg.decoder, resolve=True), encoder.output_dim, 1)
    return encoder, input_dim, cfg.encoder.name, decoder


def effective_rf_report(cfg, encoder: nn.Module, input_dim: int, name: str, run_dir: Path) -> dict:
    """``effective_rf=true``: the measured reach, printed, plotted and as a dict."""
    field = encoder.receptive_field
    length = cfg.length if math.isinf(field) else max(cfg.length, int(field) + 20)
    erf = effective_receptive_field(encoder, input_dim, length, cfg.samples, cfg.seed)
    offsets = [t - length // 2 for t in range(length)]
    seen = [o for o, g in zip(offsets, erf) if g > 0]
    cumulative, needed = 0.0, 0
    for g in sorted(erf, reverse=True):  # how many positions hold 90% of the gradient mass
        cumulative += g
        needed += 1
        if cumulative >= 0.9 * sum(erf):
            break
    print(
        f"effective receptive field: non-zero gradient at offsets {min(seen)}..{max(seen)}; "
        f"90% of the gradient mass on {needed} positions"
    )
    plot_curves(
        run_dir / "effective_rf.png",
        f"effective receptive field: {name}",
        "input position relative to the output",
        "|gradient| (max = 1)",
        {name: (offsets, erf)},
    )
    return {
        "offsets": offsets,
        "gradient": erf,
        "nonzero_span": [min(seen), max(seen)],
        "positions_with_90_percent": needed,
    }


def gradient_flow_report(cfg, input_dim: int, run_dir: Path) -> list[dict]:
    """``gradient_flow=true``: the first layer's gradient over the last one's, per family and depth."""
    flow = gradient_flow(list(cfg.families), list(cfg.depths), cfg.width, cfg.length, input_dim, cfg.seed, cfg.norm)
    print(f"\ngradient norm at the first conv layer / at the last, at initialization (norm={cfg.norm}):")
    print(f"{'depth':>6} " + " ".join(f"{f:>10}" for f in cfg.families))
    for depth in cfg.depths:
        ratios = {r["family"]: r["first_over_last"] for r in flow if r["depth"] == depth}
        print(f"{depth:>6} " + " ".join(f"{ratios[f]:>10.3g}" for f in cfg.families))
    curves = {
        f: (
            [r["depth"] for r in flow if r["family"] == f],
            [r["first_over_last"] for r in flow if r["family"] == f],
        )
        for f in cfg.families
    }
    plot_curves(
        run_dir / "gradient_flow.png",
        f"gradient reaching the first layer at init (norm={cfg.norm})",
        "depth (kernel-wide conv layers)",
        "|grad first| / |grad last|",
        curves,
        log_y=True,
    )
    return flow


def inspect_command(cfg, run_dir: Path) -> dict:
    """Print the layer table (and the optional measurements); write JSON and PNGs to run_dir."""
    encoder, input_dim, name, decoder = inspected(cfg)
    rows = layer_table(encoder, input_dim)
    print(f"encoder={name}, input width {input_dim}")
    print(format_table(rows, encoder))
    field = encoder.receptive_field
    report = {
        "encoder": name,
        "layers": rows,
        "parameters": sum(p.numel() for p in encoder.parameters()),
        "flops_per_position": sum(r["flops_per_position"] for r in rows),
        "receptive_field": field if math.isfinite(field) else "unbounded",
    }
    for row in rows:
        if math.isinf(row["receptive_field"]):
            row["receptive_field"] = "unbounded"
    if decoder is not None and getattr(decoder, "autoregressive", False):
        report["decoder"] = autoregressive_report(decoder, cfg.get("source_symbols", 10))
        print()
        print(format_autoregressive(report["decoder"]))
    elif decoder is not None:
        report["decoder"] = decoder_report(decoder)
        print()
        print(format_decoder(report["decoder"]))
    if cfg.effective_rf:
        report["effective_rf"] = effective_rf_report(cfg, encoder, input_dim, name, run_dir)
    if cfg.gradient_flow:
        report["gradient_flow"] = gradient_flow_report(cfg, input_dim, run_dir)
    (run_dir / "inspect.json").write_text(json.dumps(report, indent=2))
    log.info("wrote %s", run_dir / "inspect.json")
    return report
