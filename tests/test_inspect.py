"""`convnlp inspect`: layer tables, effective receptive field, gradient flow."""

import json
import math

import pytest

from convnlp.encoders import build_encoder
from convnlp.inspect import depth_config, effective_receptive_field, gradient_flow, layer_table
from tests.conftest import convnlp

FAMILIES = ["plain", "residual", "dense", "dilated"]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("depth", [4, 8, 16])
def test_layer_table_ends_at_the_encoders_receptive_field(family, depth):
    encoder = build_encoder(depth_config(family, depth, width=8), input_dim=5)
    rows = layer_table(encoder, input_dim=5)
    assert rows[-1]["receptive_field"] == encoder.receptive_field
    assert sum(r["parameters"] for r in rows) <= sum(p.numel() for p in encoder.parameters())
    kernel_wide = [r for r in rows if not r["type"].startswith("conv k=1")]
    assert len(kernel_wide) == depth


def test_flops_are_two_per_multiply_add():
    encoder = build_encoder(
        {"name": "plain", "width": 10, "layers": 2, "kernel": 3, "activation": "relu", "norm": "none", "dropout": 0.0},
        input_dim=4,
    )
    rows = layer_table(encoder, input_dim=4)
    assert [r["flops_per_position"] for r in rows] == [2 * 4 * 10 * 3, 2 * 10 * 10 * 3]
    assert [r["receptive_field"] for r in rows] == [3, 5]


def test_side_by_side_convolutions_each_read_the_input():
    encoder = build_encoder(
        {"name": "wide", "width": 3, "kernels": [3, 5, 7], "activation": "relu", "norm": "none", "dropout": 0.0},
        input_dim=4,
    )
    rows = layer_table(encoder, input_dim=4)
    assert [r["receptive_field"] for r in rows] == [3, 5, 7] == [3, 5, encoder.receptive_field]
    assert [r["out"] for r in rows] == [3, 3, 3] and encoder.output_dim == 9


def test_bilstm_row():
    encoder = build_encoder(
        {"name": "bilstm", "hidden": 6, "layers": 1, "bidirectional": True, "dropout": 0.0}, input_dim=4
    )
    (row,) = layer_table(encoder, input_dim=4)
    assert row["receptive_field"] == math.inf and row["out"] == 12
    assert row["flops_per_position"] == 2 * 4 * 6 * (4 + 6) * 2


@pytest.mark.parametrize("family", FAMILIES)
def test_effective_rf_lies_inside_the_theoretical_one(family):
    encoder = build_encoder(depth_config(family, 8, width=8), input_dim=5)
    length = encoder.receptive_field + 40
    erf = effective_receptive_field(encoder, 5, length, samples=2)
    half, centre = (encoder.receptive_field - 1) // 2, length // 2
    nonzero = [t for t, g in enumerate(erf) if g > 0]
    assert max(erf) == 1.0
    assert centre - half <= min(nonzero) and max(nonzero) <= centre + half
    assert erf[centre - half - 1] == 0 and erf[centre + half + 1] == 0


def test_gradient_flow_fades_in_a_deep_plain_stack_and_not_with_skips():
    flow = {
        (r["family"], r["depth"]): r["first_over_last"]
        for r in gradient_flow(FAMILIES, [4, 32], width=32, length=64, input_dim=16, norm="none")
    }
    assert flow[("plain", 32)] < 1e-4 * flow[("plain", 4)]
    for family in ("residual", "dense", "dilated"):
        assert flow[(family, 32)] > 0.05, (family, flow[(family, 32)])


@pytest.mark.slow
def test_inspect_cli_writes_table_json_and_pictures(tmp_path):
    result = convnlp(
        "inspect",
        "encoder=dilated",
        "effective_rf=true",
        "gradient_flow=true",
        "depths=[4,8]",
        "width=16",
        "length=128",
        "samples=2",
        cwd=tmp_path,
    )
    assert "convs.7" in result.stdout and "61" in result.stdout
    (run_dir,) = (tmp_path / "outputs" / "inspect").glob("*/")
    report = json.loads((run_dir / "inspect.json").read_text())
    assert report["receptive_field"] == 61
    assert report["effective_rf"]["nonzero_span"][1] <= 30
    assert {r["family"] for r in report["gradient_flow"]} == set(FAMILIES)
    for picture in ("effective_rf.png", "gradient_flow.png"):
        assert (run_dir / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
