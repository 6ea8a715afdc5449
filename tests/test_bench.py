"""`convnlp bench` on tiny inputs: the JSON's structure, the interleaving of the encoders, ratios
computed within each repetition, the plots. No timing assertions: speed is what bench reports,
not what a test can promise."""

import json

import pytest
from hydra import compose, initialize_config_module

from convnlp.bench import bench_command, summarize
from convnlp.config import validate
from convnlp.errors import UserError
from tests.conftest import conll_args, convnlp

TINY_BENCH = ["bench.encoders=[plain,dilated,bilstm]", "bench.threads=[1]", "bench.repetitions=3",
              "bench.seconds=0.01", "bench.sentences=12", "bench.latency_sentences=4", "bench.lengths=[16,64]",
              "bench.length_tokens=128", "bench.batch_tokens=400", "task.embedding_dim=8"]


def run_bench(tmp_path, conll_files, *overrides):
    with initialize_config_module(config_module="convnlp.conf", version_base="1.3"):
        cfg = compose(config_name="bench", overrides=[*conll_args(conll_files), *TINY_BENCH, *overrides])
    return bench_command(validate(cfg, ("task", "decoder", "data", "tokenizer")), tmp_path)


def test_bench_measures_every_encoder_interleaved_with_ratios_per_repetition(tmp_path, conll_files):
    result = run_bench(tmp_path, conll_files)
    saved = json.loads((tmp_path / "bench.json").read_text())
    assert saved["summary"] == json.loads(json.dumps(result["summary"]))
    assert saved["baseline"] == "bilstm" and saved["threads"] == [1] and saved["repetitions"] == 3
    assert set(saved["encoders"]) == {"plain", "dilated", "bilstm"}
    assert all(e["parameters"] > 0 and e["flops_per_symbol"] > 0 for e in saved["encoders"].values())
    assert saved["peak_gflops"]["1"] > 0
    measures = ["infer", "latency", "train", "infer@16", "train@16", "infer@64", "train@64"]
    raw = saved["raw"]
    assert len(raw) == 3 * len(measures) * 3
    # interleaved: every measurement runs all encoders back to back, from a rotating first one
    for rep in range(3):
        for measure in measures:
            group = [r for r in raw if r["repetition"] == rep and r["measure"] == measure]
            assert [r["order"] for r in group] == [0, 1, 2]
            assert [r["encoder"] for r in group] == (["plain", "dilated", "bilstm"] * 2)[rep:rep + 3]
    assert [r["measure"] for r in raw[:9:3]] == ["infer", "latency", "train"]
    # ratios: within each repetition, then the median
    row = next(r for r in saved["summary"] if (r["measure"], r["encoder"], r["metric"]) ==
               ("train@64", "plain", "symbols_per_s"))
    mine = {r["repetition"]: r["symbols_per_s"] for r in raw if (r["measure"], r["encoder"]) == ("train@64", "plain")}
    base = {r["repetition"]: r["symbols_per_s"] for r in raw if (r["measure"], r["encoder"]) == ("train@64", "bilstm")}
    assert row["ratios"] == pytest.approx([mine[k] / base[k] for k in range(3)])
    assert row["median"] == pytest.approx(sorted(mine.values())[1])
    latency = next(r for r in saved["summary"] if (r["measure"], r["encoder"], r["metric"]) ==
                   ("latency", "plain", "latency_p50_ms"))
    assert latency["ratios"] == pytest.approx(
        [b["latency_p50_ms"] / m["latency_p50_ms"] for m, b in zip(
            [r for r in raw if (r["measure"], r["encoder"]) == ("latency", "plain")],
            [r for r in raw if (r["measure"], r["encoder"]) == ("latency", "bilstm")])])  # lower is better
    assert all(r["words_per_s"] > 0 for r in raw if r["measure"] == "infer")
    for name in ("length_1threads.png", "ratio_1threads.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| threads | measurement | encoder |" in (tmp_path / "bench.md").read_text()


def test_summarize_without_the_baseline_in_a_repetition_gives_no_ratio():
    raw = [{"threads": 1, "repetition": 0, "measure": "infer", "encoder": "plain", "order": 0, "symbols_per_s": 10.0}]
    (row,) = summarize(raw, "bilstm")
    assert row["ratio_to_baseline"] is None and row["median"] == 10.0


@pytest.mark.parametrize("override,message", [
    ("bench.repetitions=0", "bench.repetitions=0 must be a whole number, at least 1"),
    ("bench.encoders=[plain,dialted]", "bench.encoders: unknown encoder(s) dialted"),
    ("bench.baseline=lstm", "bench.baseline=lstm is not among bench.encoders"),
])
def test_bad_bench_settings_are_one_line(tmp_path, conll_files, override, message):
    with pytest.raises(UserError) as error:
        run_bench(tmp_path, conll_files, override)
    assert str(error.value).startswith(message)


def test_bench_through_the_cli(tmp_path, conll_files):
    result = convnlp("bench", *conll_args(conll_files), *TINY_BENCH, "bench.lengths=[]", "bench.repetitions=1",
                     cwd=tmp_path)
    assert "| `plain` |" in result.stdout and "1 thread(s)" in result.stdout
    (run,) = tmp_path.glob("outputs/bench/*/")
    assert json.loads((run / "bench.json").read_text())["raw"]
    bad = convnlp("bench", "bench.threads=[-1]", cwd=tmp_path, check=False)
    assert bad.returncode == 2 and bad.stderr.startswith("convnlp: error: bench.threads=[-1] must be")
