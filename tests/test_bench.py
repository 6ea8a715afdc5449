"""`convnlp bench` on tiny inputs: the JSON's structure, the interleaving of the encoders, ratios
computed within each repetition, the plots. No timing assertions: speed is what bench reports,
not what a test can promise."""

import json

import pytest
from hydra import compose, initialize_config_module

from convnlp.bench.command import bench_command
from convnlp.bench.tables import summarize
from convnlp.config import validate
from convnlp.errors import UserError
from tests.conftest import conll_args, convnlp

TINY_BENCH = [
    "bench.encoders=[plain,dilated,bilstm]",
    "bench.threads=[1]",
    "bench.repetitions=3",
    "bench.seconds=0.01",
    "bench.sentences=12",
    "bench.latency_sentences=4",
    "bench.lengths=[16,64]",
    "bench.length_tokens=128",
    "bench.batch_tokens=400",
    "task.embedding_dim=8",
    "bench.neighbours=[0]",
    "bench.peers=[]",
]


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
            assert [r["encoder"] for r in group] == (["plain", "dilated", "bilstm"] * 2)[rep : rep + 3]
    assert [r["measure"] for r in raw[:9:3]] == ["infer", "latency", "train"]
    # ratios: within each repetition, then the median
    row = next(
        r
        for r in saved["summary"]
        if (r["measure"], r["encoder"], r["metric"]) == ("train@64", "plain", "symbols_per_s")
    )
    mine = {r["repetition"]: r["symbols_per_s"] for r in raw if (r["measure"], r["encoder"]) == ("train@64", "plain")}
    base = {r["repetition"]: r["symbols_per_s"] for r in raw if (r["measure"], r["encoder"]) == ("train@64", "bilstm")}
    assert row["ratios"] == pytest.approx([mine[k] / base[k] for k in range(3)])
    assert row["median"] == pytest.approx(sorted(mine.values())[1])
    latency = next(
        r
        for r in saved["summary"]
        if (r["measure"], r["encoder"], r["metric"]) == ("latency", "plain", "latency_p50_ms")
    )
    assert latency["ratios"] == pytest.approx(
        [
            b["latency_p50_ms"] / m["latency_p50_ms"]
            for m, b in zip(
                [r for r in raw if (r["measure"], r["encoder"]) == ("latency", "plain")],
                [r for r in raw if (r["measure"], r["encoder"]) == ("latency", "bilstm")],
            )
        ]
    )  # lower is better
    assert all(r["words_per_s"] > 0 for r in raw if r["measure"] == "infer")
    for name in ("length_1threads.png", "ratio_1threads.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| threads | neighbours | measurement | encoder |" in (tmp_path / "bench.md").read_text()


def test_bench_beside_busy_neighbours_measures_real_sentences_and_stops_them(tmp_path, conll_files):
    before = _children()
    saved = run_bench(
        tmp_path, conll_files, "bench.neighbours=[0,1]", "bench.repetitions=2", "bench.encoders=[plain,bilstm]"
    )
    assert _children() == before  # the neighbour processes are gone
    busy = [r for r in saved["raw"] if r["neighbours"] == 1]
    assert {r["measure"] for r in busy} == {"infer", "latency", "train"}  # lengths: alone only
    assert len(busy) == 2 * 3 * 2
    assert {r["measure"] for r in saved["raw"] if r["neighbours"] == 0} >= {"infer@16", "train@64"}
    row = next(
        r
        for r in saved["summary"]
        if (r["neighbours"], r["measure"], r["encoder"], r["metric"]) == (1, "train", "plain", "symbols_per_s")
    )
    mine = [r["symbols_per_s"] for r in busy if (r["measure"], r["encoder"]) == ("train", "plain")]
    base = [r["symbols_per_s"] for r in busy if (r["measure"], r["encoder"]) == ("train", "bilstm")]
    assert row["ratios"] == pytest.approx([m / b for m, b in zip(mine, base)])  # beside the same neighbour
    text = (tmp_path / "bench.md").read_text()
    assert "1 thread(s), beside 1 busy neighbour process;" in text and "Beside busy neighbours" in text


def _children() -> set[int]:
    """This process's child processes (Linux)."""
    import os
    from pathlib import Path

    me = str(os.getpid())
    return {
        int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and (p / "stat").exists() and _parent(p) == me
    }


def _parent(proc) -> str | None:
    try:
        return (proc / "stat").read_text().rsplit(")", 1)[1].split()[1]
    except (OSError, IndexError):
        return None


def test_spacy_tagger_is_timed_beside_the_encoders_on_the_same_sentences(tmp_path, conll_files):
    pytest.importorskip("spacy")
    saved = run_bench(tmp_path, conll_files, "bench.peers=[spacy]", "bench.lengths=[16]")
    raw = saved["raw"]
    assert {r["measure"] for r in raw if r["encoder"] == "spacy"} == {"infer", "latency"}
    for rep in range(3):  # interleaved with the encoders, from a rotating first one
        group = [r for r in raw if r["repetition"] == rep and r["measure"] == "infer"]
        assert [r["order"] for r in group] == [0, 1, 2, 3]
        assert [r["encoder"] for r in group] == (["plain", "dilated", "bilstm", "spacy"] * 2)[rep : rep + 4]
    row = next(
        r for r in saved["summary"] if (r["measure"], r["encoder"], r["metric"]) == ("infer", "spacy", "words_per_s")
    )
    assert row["repetitions"] == 3 and len(row["ratios"]) == 3 and row["median"] > 0
    info = saved["encoders"]["spacy"]
    assert info["parameters"] > 0 and info["flops_per_symbol"] is None and info["accuracy"] is None
    assert "untrained efficiency tok2vec + tagger" in saved["peers"]["spacy"]
    assert "| `spacy` |" in (tmp_path / "bench.md").read_text()


def test_a_trained_spacy_pipeline_is_timed_and_scored(tmp_path, conll_files):
    spacy = pytest.importorskip("spacy")
    from spacy.training import Example

    from convnlp.data import load_splits
    from convnlp.peers import SpacyTagger

    tokens, tags = (
        [["EU", "rejects", "German", "call"], ["Peter", "Blackburn"]],
        [["B-ORG", "O", "B-MISC", "O"], ["B-PER", "I-PER"]],
    )
    peer = SpacyTagger(tokens, tags)
    examples = [Example.from_dict(doc, {"tags": gold}) for doc, gold in zip(peer.docs(tokens), tags)]
    optimizer = peer.nlp.create_optimizer()
    for _ in range(40):
        peer.nlp.update(examples, sgd=optimizer)
    assert peer.accuracy(tokens, tags) == 1.0  # learned by heart
    peer.nlp.to_disk(tmp_path / "pipeline")
    saved = run_bench(
        tmp_path / "run",
        conll_files,
        "bench.peers=[spacy]",
        f"bench.spacy_model={tmp_path / 'pipeline'}",
        "bench.encoders=[plain]",
        "bench.baseline=plain",
        "bench.lengths=[]",
        "bench.repetitions=1",
    )
    with initialize_config_module(config_module="convnlp.conf", version_base="1.3"):
        data = compose(config_name="bench", overrides=conll_args(conll_files)).data
    test = load_splits(data, task="tagging")["test"]
    expected = SpacyTagger([], [], model=str(tmp_path / "pipeline")).accuracy(test["tokens"], test["tags"])
    assert saved["encoders"]["spacy"]["accuracy"] == pytest.approx(expected)
    assert saved["peers"]["spacy"].startswith(f"spaCy {spacy.__version__}, trained pipeline")
    assert f"tagging accuracy {expected:.2%} on the 40 test sentences" in saved["peers"]["spacy"]


@pytest.mark.parametrize(
    "content,message",
    [
        (None, "not a spaCy pipeline directory (no config.cfg in it)"),
        ("[nlp\nlang = ", "spaCy cannot load it: "),
        ('[nlp]\nlang = "zz"\npipeline = []\n', "spaCy cannot load it: "),
    ],
)
def test_a_bad_spacy_pipeline_is_one_line(tmp_path, conll_files, content, message):
    pytest.importorskip("spacy")
    (tmp_path / "pipeline").mkdir()
    if content is not None:
        (tmp_path / "pipeline" / "config.cfg").write_text(content)
    with pytest.raises(UserError) as error:
        run_bench(tmp_path / "run", conll_files, "bench.peers=[spacy]", f"bench.spacy_model={tmp_path / 'pipeline'}")
    assert message in str(error.value) and "\n" not in str(error.value)


def test_an_unknown_spacy_language_is_one_line(tmp_path, conll_files):
    pytest.importorskip("spacy")
    with pytest.raises(UserError, match="^bench.spacy_lang=zz: spaCy cannot make a pipeline for it: "):
        run_bench(tmp_path, conll_files, "bench.peers=[spacy]", "bench.spacy_lang=zz")


def test_beside_neighbours_only_there_are_no_length_plots(tmp_path, conll_files):
    saved = run_bench(
        tmp_path, conll_files, "bench.neighbours=[1]", "bench.repetitions=1", "bench.encoders=[plain,bilstm]"
    )
    assert {r["neighbours"] for r in saved["raw"]} == {1} and not list(tmp_path.glob("*.png"))


def test_without_spacy_its_row_is_absent_and_bench_says_why(tmp_path, conll_files):
    hidden = tmp_path / "hidden"  # an installation without spaCy: importing it fails
    hidden.mkdir()
    (hidden / "spacy.py").write_text("raise ImportError(\"No module named 'spacy'\")\n")
    result = convnlp(
        "bench",
        *conll_args(conll_files),
        *TINY_BENCH,
        "bench.lengths=[]",
        "bench.repetitions=1",
        "bench.peers=[spacy]",
        cwd=tmp_path,
        env={"PYTHONPATH": str(hidden)},
    )
    line = 'spaCy is not installed (pip install -e ".[peers]"), so its row is absent'
    assert f"spacy: {line}" in result.stdout and "`spacy`" not in result.stdout
    (run,) = tmp_path.glob("outputs/bench/*/")
    saved = json.loads((run / "bench.json").read_text())
    assert saved["peers"] == {"spacy": line} and "spacy" not in {r["encoder"] for r in saved["raw"]}


def test_matched_variants_come_near_the_baselines_size(tmp_path, conll_files):
    saved = run_bench(
        tmp_path,
        conll_files,
        "bench.match=parameters",
        "bench.lengths=[]",
        "bench.repetitions=1",
        "bench.encoders=[plain,dense,bilstm]",
    )
    info = saved["encoders"]
    assert set(info) == {"plain", "dense", "bilstm", "plain@parameters", "dense@parameters"}
    target = info["bilstm"]["encoder_parameters"]
    for name in ("plain@parameters", "dense@parameters"):
        assert abs(info[name]["encoder_parameters"] - target) / target < 0.05
    assert info["plain"]["size"] == "width=128" and info["dense@parameters"]["size"].startswith("growth=")
    assert {r["encoder"] for r in saved["raw"]} == set(info)
    assert "`plain@parameters` (width=" in (tmp_path / "bench.md").read_text()
    flops = run_bench(
        tmp_path / "flops",
        conll_files,
        "bench.match=flops",
        "bench.lengths=[]",
        "bench.repetitions=1",
        "bench.encoders=[dilated,bilstm]",
    )["encoders"]
    assert abs(flops["dilated@flops"]["flops_per_symbol"] / flops["bilstm"]["flops_per_symbol"] - 1) < 0.1


def test_the_profile_says_where_inference_spends_its_time(tmp_path, conll_files):
    saved = run_bench(
        tmp_path,
        conll_files,
        "bench.profile=true",
        "bench.lengths=[]",
        "bench.repetitions=1",
        "bench.encoders=[dilated,bilstm]",
    )
    # shares of time differ from run to run (a busy machine preempts some operators); what was called,
    # and how often, does not
    for name in ("dilated", "bilstm"):
        parts, kinds, calls = (saved["profile"][name][k] for k in ("parts", "operators", "calls"))
        assert set(parts) == {"embedding", "dropout", "encoder", "head", "rest"}
        assert sum(parts.values()) == pytest.approx(1.0, abs=0.02) and min(parts.values()) >= 0
        assert sum(kinds.values()) == pytest.approx(1.0) and min(kinds.values()) >= 0
        assert "Self CPU" in (tmp_path / f"profile_{name}.txt").read_text()
        passes = calls["parts"]["encoder"]  # one per batch
        assert passes >= 1 and calls["parts"]["embedding"] == calls["parts"]["head"] == passes
    dilated, bilstm = (saved["profile"][name]["calls"]["operators"] for name in ("dilated", "bilstm"))
    passes = saved["profile"]["dilated"]["calls"]["parts"]["encoder"]
    # the dilated encoder: a projection and 8 dilated convolutions per pass, each an aten::conv2d at least
    assert dilated["convolution"] >= 9 * passes and dilated["convolution"] > bilstm["convolution"]
    assert "Where batched inference spends its time (1 thread(s)" in (tmp_path / "bench.md").read_text()


def test_summarize_without_the_baseline_in_a_repetition_gives_no_ratio():
    raw = [{"threads": 1, "repetition": 0, "measure": "infer", "encoder": "plain", "order": 0, "symbols_per_s": 10.0}]
    (row,) = summarize(raw, "bilstm")
    assert row["ratio_to_baseline"] is None and row["median"] == 10.0


@pytest.mark.parametrize(
    "override,message",
    [
        ("bench.repetitions=0", "bench.repetitions=0 must be a whole number, at least 1"),
        ("bench.encoders=[plain,dialted]", "bench.encoders: unknown encoder(s) dialted"),
        ("bench.baseline=lstm", "bench.baseline=lstm is not among bench.encoders"),
        ("bench.neighbours=[-1]", "bench.neighbours=[-1] must be a list of whole numbers (0: alone)"),
        ("bench.neighbours=[]", "bench.neighbours is empty"),
        ("bench.match=size", "bench.match='size' must be parameters, flops or null"),
        ("bench.neighbours=[0,0]", "bench.neighbours=[0, 0] names a setting twice"),
        ("bench.encoders=[plain,plain]", "bench.encoders=['plain', 'plain'] names a setting twice"),
        ("bench.peers=[spcy]", "bench.peers: unknown peer(s) spcy; known: spacy"),
        ("bench.runtimes=[tflite]", "bench.runtimes=['tflite'] must name each of torch, onnx, onnx-int8 at most once"),
        ("bench.runtimes=[onnx]", "bench.runtimes=['onnx'] runs trained checkpoints: give bench.checkpoints=[DIR,...]"),
    ],
)
def test_bad_bench_settings_are_one_line(tmp_path, conll_files, override, message):
    with pytest.raises(UserError) as error:
        run_bench(tmp_path, conll_files, override)
    assert str(error.value).startswith(message)


def test_bench_through_the_cli(tmp_path, conll_files):
    result = convnlp(
        "bench", *conll_args(conll_files), *TINY_BENCH, "bench.lengths=[]", "bench.repetitions=1", cwd=tmp_path
    )
    assert "| `plain` |" in result.stdout and "1 thread(s)" in result.stdout
    (run,) = tmp_path.glob("outputs/bench/*/")
    assert json.loads((run / "bench.json").read_text())["raw"]
    bad = convnlp("bench", "bench.threads=[-1]", cwd=tmp_path, check=False)
    assert bad.returncode == 2 and bad.stderr.startswith("convnlp: error: bench.threads=[-1] must be")


def test_the_thread_policy_follows_a_busy_neighbour(tmp_path):
    """A real busy neighbour takes a thread away (whatever else runs: the test suite on several
    workers); the way back, which needs the machine free, is read here from counters the test
    writes, and from the kernel's in test_the_thread_policy_follows_the_real_load_of_the_machine (run alone)."""
    import os
    import subprocess
    import sys
    import time

    import torch

    from convnlp.threads import ThreadPolicy, busy_seconds

    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(cpus) < 2 or busy_seconds(cpus) is None:
        pytest.skip("needs 2 cores and /proc/stat")
    before = torch.get_num_threads()
    neighbour = subprocess.Popen(
        [sys.executable, "-c", "while True: pass"],  # one busy core
        preexec_fn=lambda: os.sched_setaffinity(0, {cpus[0]}),
    )
    try:
        policy = ThreadPolicy(0, interval=0.0, cpus=cpus[:2])
        policy.cap, policy.auto = 2, True
        torch.set_num_threads(2)
        time.sleep(1.5)
        assert policy.update(force=True) == 1 and torch.get_num_threads() == 1
    finally:
        neighbour.kill()
        neighbour.wait()
    try:
        stat = tmp_path / "stat"

        def busy(ticks: int) -> None:  # cpu0 and cpu1: user, nice, system, idle, iowait, ...
            stat.write_text(f"cpu0 {ticks} 0 0 100 0 0 0 0 0 0\ncpu1 {ticks} 0 0 100 0 0 0 0 0 0\n")

        busy(0)
        policy = ThreadPolicy(0, interval=0.0, cpus=cpus[:2], stat=str(stat))
        policy.cap, policy.auto = 2, True
        torch.set_num_threads(1)
        time.sleep(0.2)  # no other load in this window: the thread comes back
        assert policy.update(force=True) == 2
        busy(10**6)  # both cores busy with others' work: down to one
        time.sleep(0.2)
        assert policy.update(force=True) == 1
        assert [threads for _, threads in policy.history] == [2, 1]
        torch.set_num_threads(2)
        fixed = ThreadPolicy(1)
        assert fixed.auto is False and torch.get_num_threads() == 1 and fixed.summary() == {"threads": 1}
        fixed.restore()
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def _other_processes_cpu_seconds() -> float:
    """CPU seconds of every process but this one, with the children each has reaped
    (/proc/<pid>/stat: utime, stime, cutime, cstime): the machine's load counted per process,
    another route than the per-core counters of /proc/stat that the thread policy reads."""
    import os

    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                text = f.read()
        except OSError:  # gone meanwhile: its time went to its parent's cutime
            continue
        total += sum(int(v) for v in text[text.rindex(")") + 2 :].split()[11:15])
    return total / os.sysconf("SC_CLK_TCK")


@pytest.mark.alone
def test_the_thread_policy_follows_the_real_load_of_the_machine():
    """From the kernel's real counters, a policy down to one thread takes the second core back
    when no other process keeps it busy, and keeps one thread while another process does (a busy
    neighbour). Which holds is measured over the same window another way, from every other
    process's CPU time, and the policy's own reading of the load must agree with it. The test
    runs after the parallel workers (tests/conftest.py), so the suite's own workers are no load."""
    import os
    import time

    import torch

    from convnlp.threads import ThreadPolicy, busy_seconds

    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(cpus) != 2 or busy_seconds(cpus) is None or not os.path.isdir("/proc/self"):
        pytest.skip("needs exactly 2 cores (this test's thresholds), /proc/stat and /proc/<pid>/stat")
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        policy = ThreadPolicy(0, interval=0.0, cpus=cpus)
        policy.cap, policy.auto = 2, True
        seen, read = [], policy.others
        policy.others = lambda: seen.append(read()) or seen[-1]
        start, others_before = time.monotonic(), _other_processes_cpu_seconds()
        time.sleep(1.5)
        others = (_other_processes_cpu_seconds() - others_before) / (time.monotonic() - start)
        chosen = policy.update(force=True)
    finally:
        torch.set_num_threads(before)
    assert abs(seen[0] - others) < 0.25, (seen[0], others)  # both routes see the same load
    if others < 0.1:  # free: 2 - others > 1 + 0.75, the policy's margin to take a thread back
        assert chosen == 2, (others, seen)
    elif others > 0.4:  # a neighbour keeps (most of) a core busy: at most one is free
        assert chosen == 1, (others, seen)


def test_busy_seconds_reads_the_cpus_asked_for(tmp_path):
    import os

    from convnlp.threads import busy_seconds

    stat = tmp_path / "stat"
    stat.write_text("cpu  10 0 10 100 5 0 0 0 0 0\ncpu0 4 1 3 50 2 1 1 0 0 0\ncpu1 6 0 7 50 3 0 0 0 0 0\n")
    tick = os.sysconf("SC_CLK_TCK")
    assert busy_seconds([0], str(stat)) == pytest.approx(10 / tick)  # idle and iowait are not busy
    assert busy_seconds([0, 1], str(stat)) == pytest.approx(23 / tick)
    assert busy_seconds([0], str(tmp_path / "absent")) is None
