"""The figures of a bench run: medians, ranges and ratios to the baseline, as tables and plots."""

from __future__ import annotations

import logging
import statistics
from pathlib import Path

from convnlp.inspect import plot_curves

log = logging.getLogger("convnlp.bench")


LOWER_IS_BETTER = ("latency_p50_ms", "latency_p95_ms")


def _key(r: dict) -> tuple:
    return r["threads"], r.get("neighbours", 0), r["measure"], r["encoder"]


def summarize(raw: list[dict], baseline: str) -> list[dict]:
    """Median, min and max of every (threads, neighbours, measurement, encoder) over the
    repetitions, and the median of the per-repetition ratios to the baseline encoder (how many
    times faster)."""
    rows = []
    measures = list(dict.fromkeys(r["measure"] for r in raw))  # in the order they were run
    first = [r for r in raw if r["repetition"] == 0 and _key(r)[:3] == _key(raw[0])[:3]]
    encoders = [r["encoder"] for r in sorted(first, key=lambda r: r["order"])]  # bench.encoders' order
    encoders += [e for e in dict.fromkeys(r["encoder"] for r in raw) if e not in encoders]
    keys = sorted({_key(r) for r in raw}, key=lambda k: (k[0], k[1], measures.index(k[2]), encoders.index(k[3])))
    by_rep = {(*_key(r), r["repetition"]): r for r in raw}
    for key in keys:
        mine = [r for r in raw if _key(r) == key]
        for metric in [k for k in mine[0] if k.endswith(("_per_s", "_ms"))]:
            values = [r[metric] for r in mine]
            ratios = []
            for r in mine:
                base = by_rep.get((*key[:3], baseline, r["repetition"]))
                if base is not None and base.get(metric, 0) > 0 and r[metric] > 0:
                    ratio = r[metric] / base[metric]
                    ratios.append(1 / ratio if metric in LOWER_IS_BETTER else ratio)
            rows.append(
                {
                    "threads": key[0],
                    "neighbours": key[1],
                    "measure": key[2],
                    "encoder": key[3],
                    "metric": metric,
                    "median": statistics.median(values),
                    "min": min(values),
                    "max": max(values),
                    "ratio_to_baseline": statistics.median(ratios) if ratios else None,
                    "ratios": ratios,
                    "repetitions": len(values),
                }
            )
    return rows


def gflops(symbols_per_s: float, measure: str, flops_per_symbol: int | None) -> float | None:
    """The encoder's achieved rate: forward FLOPs per symbol, x3 for training (backward ~ 2x forward)."""
    if flops_per_symbol is None:
        return None
    return symbols_per_s * (3 if measure.startswith("train") else 1) * flops_per_symbol / 1e9


def _setting(threads: int, neighbours: int) -> str:
    busy = f", beside {neighbours} busy neighbour process{'es' if neighbours > 1 else ''}" if neighbours else ""
    return f"{threads} thread(s){busy}"


def table(rows: list[dict], subjects: dict, peaks: dict, baseline: str) -> str:
    lines = [
        f"| threads | neighbours | measurement | encoder | median | min - max | × {baseline} | "
        "GFLOP/s (share of peak) |",
        "|---:|---:|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        unit = {
            "symbols_per_s": "symbols/s",
            "words_per_s": "words/s",
            "latency_p50_ms": "ms p50",
            "latency_p95_ms": "ms p95",
        }[r["metric"]]
        flops = ""
        rate = gflops(r["median"], r["measure"], subjects[r["encoder"]]["flops_per_symbol"])
        if r["metric"] == "symbols_per_s" and rate is not None:  # the peak was measured alone
            flops = f"{rate:.2f}" + (f" ({rate / peaks[r['threads']]:.1%})" if not r.get("neighbours") else "")
        ratio = f"{r['ratio_to_baseline']:.2f}" if r["ratio_to_baseline"] is not None else ""
        lines.append(
            f"| {r['threads']} | {r.get('neighbours', 0)} | {r['measure']} | {r['encoder']} | "
            f"{r['median']:,.1f} {unit} | {r['min']:,.1f} - {r['max']:,.1f} | {ratio} | {flops} |"
        )
    return "\n".join(lines) + "\n"


def overview(rows: list[dict], info: dict, peaks: dict, baseline: str) -> str:
    """One compact table per setting (thread count, busy neighbours): a subject per row;
    medians, and in brackets the median per-repetition ratio to the baseline. Then, where
    neighbours were measured, each speed beside them as a share of the speed alone."""
    find = {(*_key(r), r["metric"]): r for r in rows}

    def cell(setting, measure, encoder, metric, fmt="{:,.0f}"):
        r = find.get((*setting, measure, encoder, metric))
        if r is None:
            return ""
        ratio = f" ({r['ratio_to_baseline']:.2f}×)" if r["ratio_to_baseline"] is not None else ""
        return fmt.format(r["median"]) + ratio

    encoders = list(dict.fromkeys(r["encoder"] for r in rows))
    out = []
    for setting in dict.fromkeys(_key(r)[:2] for r in rows):
        threads = setting[0]
        measures = list(dict.fromkeys(r["measure"] for r in rows if _key(r)[:2] == setting))
        lengths = [m.partition("@")[2] for m in measures if m.startswith("infer@")]
        scored = any(info[e].get("accuracy") is not None for e in encoders)
        head = [
            "encoder",
            "parameters",
            *(["accuracy"] if scored else []),
            "FLOPs/symbol",
            "infer words/s",
            "latency p50 ms",
            "train symbols/s",
            *[f"infer T={t}" for t in lengths],
            *[f"train T={t}" for t in lengths],
            "infer GFLOP/s (peak share)",
        ]
        out += [
            f"{_setting(*setting)}; symbols/s unless said, ({baseline} = 1.00×); fp32 matmul peak "
            f"{peaks[threads]:.0f} GFLOP/s" + (" (alone)" if setting[1] else ""),
            "",
            "| " + " | ".join(head) + " |",
            "|---" + "|---:" * (len(head) - 1) + "|",
        ]
        for e in encoders:
            speed = find.get((*setting, "infer", e, "symbols_per_s"))
            if speed is None:
                continue
            rate = gflops(speed["median"], "infer", info[e]["flops_per_symbol"])
            flops = info[e]["flops_per_symbol"]
            size = f" ({info[e]['size']})" if "@" in e else ""
            accuracy = info[e].get("accuracy")
            cells = [
                f"`{e}`{size}",
                f"{info[e]['parameters']:,}",
                *([f"{accuracy:.2%}" if accuracy is not None else ""] if scored else []),
                "" if flops is None else f"{flops:,}",
                cell(setting, "infer", e, "words_per_s"),
                cell(setting, "latency", e, "latency_p50_ms", "{:.1f}"),
                cell(setting, "train", e, "symbols_per_s"),
                *[cell(setting, f"infer@{t}", e, "symbols_per_s") for t in lengths],
                *[cell(setting, f"train@{t}", e, "symbols_per_s") for t in lengths],
                "" if rate is None else f"{rate:.1f}" + ("" if setting[1] else f" ({rate / peaks[threads]:.1%})"),
            ]
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    busy = [s for s in dict.fromkeys(_key(r)[:2] for r in rows) if s[1] > 0]
    if busy:
        head = ["encoder", *[f"{m} {t} thr. + {n}" for t, n in busy for m in ("infer", "train")]]
        out += [
            "Beside busy neighbours: symbols/s (share of the same thread count alone)",
            "",
            "| " + " | ".join(head) + " |",
            "|---" + "|---:" * (len(head) - 1) + "|",
        ]
        for e in encoders:
            cells = []
            for threads, n in busy:
                for m in ("infer", "train"):
                    here = find.get((threads, n, m, e, "symbols_per_s"))
                    alone = find.get((threads, 0, m, e, "symbols_per_s"))
                    share = f" ({here['median'] / alone['median']:.0%})" if here and alone else ""
                    cells.append(f"{here['median']:,.0f}{share}" if here else "")
            out.append(f"| `{e}` | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def _plots(
    run_dir: Path, rows: list[dict], threads_list: list[int], encoders: list[str], lengths: list[int], base: str
) -> None:
    find = {(*_key(r), r["metric"]): r for r in rows}
    if not any(r["neighbours"] == 0 for r in rows):
        return  # inputs of length T are measured alone only
    for threads in threads_list if lengths else []:
        curves = {
            name: (lengths, [find[(threads, 0, f"infer@{t}", name, "symbols_per_s")]["median"] for t in lengths])
            for name in encoders
        }
        plot_curves(
            run_dir / f"length_{threads}threads.png",
            f"inference, {threads} thread(s)",
            "input length T (symbols)",
            "symbols/s",
            curves,
            log_y=True,
            log_x=True,
        )
        ratios = {
            name: (
                lengths,
                [find[(threads, 0, f"infer@{t}", name, "symbols_per_s")]["ratio_to_baseline"] or 0.0 for t in lengths],
            )
            for name in encoders
            if name != base
        }
        if ratios:
            plot_curves(
                run_dir / f"ratio_{threads}threads.png",
                f"inference speed / {base}, {threads} thread(s)",
                "input length T (symbols)",
                f"times {base}'s symbols/s",
                ratios,
                log_y=True,
                log_x=True,
            )
