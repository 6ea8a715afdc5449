"""Encoder contract: shapes, padding invariance, exact receptive field."""

import math

import pytest
import torch

from convnlp.encoders import build_encoder
from convnlp.registry import ENCODERS

CONFIGS = {
    "plain": [
        dict(width=12, layers=1, kernel=3),
        dict(width=12, layers=4, kernel=5),
        dict(width=12, layers=16, kernel=3),
    ],
    "residual": [
        dict(width=12, layers=1, kernel=3),
        dict(width=12, layers=8, kernel=3),
        dict(width=12, layers=3, kernel=7),
    ],
    "dense": [
        dict(width=8, growth=4, layers_per_block=2, blocks=1, kernel=3),
        dict(width=8, growth=4, layers_per_block=3, blocks=3, kernel=3, bottleneck=False),
        dict(width=8, growth=6, layers_per_block=4, blocks=2, kernel=5, compression=0.3),
    ],
    "dilated": [
        dict(width=12, kernel=3, dilations=(1, 2, 4), blocks=1),
        dict(width=12, kernel=3, dilations=(1, 2, 4, 8), blocks=2),
        dict(width=12, kernel=5, dilations=(1, 3), blocks=3),
        dict(width=12, kernel=3, dilations=(1, 2, 4), blocks=3, shared=True),
    ],
    "separable": [
        dict(width=12, kernel=3, dilations=(1, 2, 4), blocks=1),
        dict(width=12, kernel=5, dilations=(1, 3), blocks=2),
        dict(width=12, kernel=3, dilations=(1, 2, 4, 8), blocks=2, norm="none"),
    ],
    "wide": [
        dict(width=5, kernels=(3,)),
        dict(width=4, kernels=(1, 3, 5), norm="layer"),
        dict(width=4, kernels=(7, 3)),
    ],
}
RECURRENT = [("lstm", dict(hidden=7, bidirectional=False)), ("bilstm", dict(hidden=7, layers=2))]
CASES = [(name, kwargs) for name, options in CONFIGS.items() for kwargs in options]


def make(name, kwargs, input_dim=6, **extra):
    torch.manual_seed(0)
    encoder = build_encoder({"name": name, "dropout": 0.0, **kwargs, **extra}, input_dim).double()
    return encoder.eval()


def test_every_family_is_covered():
    assert set(CONFIGS) | {name for name, _ in RECURRENT} == set(ENCODERS)


@pytest.mark.parametrize("name,kwargs", CASES + RECURRENT)
def test_shapes(name, kwargs):
    encoder = make(name, kwargs)
    x = torch.randn(3, 17, 6, dtype=torch.double)
    out = encoder(x, torch.ones(3, 17, dtype=torch.bool))
    assert out.shape == (3, 17, encoder.output_dim)


@pytest.mark.parametrize("name,kwargs", CASES + RECURRENT)
def test_respects_masking(name, kwargs):
    """Same sentence alone, or padded with garbage in a longer batch: identical real outputs."""
    encoder = make(name, kwargs)
    sentence = torch.randn(1, 7, 6, dtype=torch.double)
    alone = encoder(sentence, torch.ones(1, 7, dtype=torch.bool))[0]
    batch = torch.randn(2, 40, 6, dtype=torch.double) * 100  # garbage where padding is
    batch[0, :7] = sentence[0]
    mask = torch.zeros(2, 40, dtype=torch.bool)
    mask[0, :7] = True
    mask[1, :40] = True
    padded = encoder(batch, mask)
    torch.testing.assert_close(padded[0, :7], alone, rtol=0, atol=1e-9)
    assert padded[0, 7:].abs().max() == 0  # masked outputs are zero


@pytest.mark.parametrize("name,kwargs", CASES)
@pytest.mark.parametrize("activation", ["gelu", "relu"])
def test_receptive_field_is_exact(name, kwargs, activation):
    """Input positions with non-zero gradient for one output = exactly the receptive field."""
    encoder = make(name, kwargs, activation=activation)
    rf = encoder.receptive_field
    length = rf + 30
    centre = length // 2
    x = torch.randn(1, length, 6, dtype=torch.double, requires_grad=True)
    out = encoder(x, torch.ones(1, length, dtype=torch.bool))
    # a random projection: the plain sum of a LayerNorm output is constant, with zero gradient
    (out[0, centre] * torch.randn(encoder.output_dim, dtype=torch.double)).sum().backward()
    seen = (x.grad[0].abs().sum(-1) > 0).nonzero().flatten().tolist()
    half = (rf - 1) // 2
    if activation == "gelu":  # smooth: every path carries gradient, so the set is exact
        assert seen == list(range(centre - half, centre + half + 1))
    else:  # relu may switch paths off, never on: never more than the receptive field
        assert min(seen) >= centre - half and max(seen) <= centre + half


def test_receptive_field_formulas():
    assert make("plain", dict(width=4, layers=4, kernel=3)).receptive_field == 9
    assert make("residual", dict(width=4, layers=8, kernel=3)).receptive_field == 17
    assert make("dense", dict(width=4, growth=2, layers_per_block=4, blocks=2)).receptive_field == 17
    assert make("dilated", dict(width=4, kernel=3, dilations=(1, 2, 4, 8), blocks=2)).receptive_field == 61
    assert make("separable", dict(width=4, kernel=3, dilations=(1, 2, 4, 8), blocks=2)).receptive_field == 61
    assert make("wide", dict(width=4, kernels=(3, 5, 7))).receptive_field == 7
    assert make("wide", dict(width=4, kernels=(3, 5, 7))).output_dim == 12
    assert make("lstm", dict(hidden=4)).receptive_field == math.inf


def test_shared_dilated_blocks_reuse_weights():
    shared = make("dilated", dict(width=8, dilations=(1, 2, 4), blocks=3, shared=True))
    separate = make("dilated", dict(width=8, dilations=(1, 2, 4), blocks=3))
    assert shared.receptive_field == separate.receptive_field == 1 + 3 * 2 * (1 + 2 + 4)
    assert len(shared.convs) == 3 and len(separate.convs) == 9


def test_recurrent_output_depends_on_the_whole_sentence():
    """The BiLSTM reads both directions: the first output changes when the last input does."""
    encoder = make("bilstm", dict(hidden=5))
    x = torch.randn(1, 8, 6, dtype=torch.double)
    mask = torch.ones(1, 8, dtype=torch.bool)
    y = x.clone()
    y[0, -1] += 1
    assert not torch.equal(encoder(x, mask)[0, 0], encoder(y, mask)[0, 0])
    lstm = make("lstm", dict(hidden=5, bidirectional=False))
    assert torch.equal(lstm(x, mask)[0, 0], lstm(y, mask)[0, 0])  # left to right only


def test_build_from_config_dict():
    encoder = build_encoder(
        {
            "name": "dilated",
            "width": 8,
            "kernel": 3,
            "dilations": [1, 2],
            "blocks": 1,
            "activation": "relu",
            "norm": "none",
            "dropout": 0.0,
        },
        5,
    )
    assert encoder.output_dim == 8 and encoder.receptive_field == 7


def test_even_kernel_is_rejected():
    with pytest.raises(ValueError, match="odd"):
        make("plain", dict(width=4, layers=2, kernel=4))


def test_separable_sees_as_far_as_dilated_for_a_third_of_its_flops():
    from convnlp.inspect import layer_table

    dilated, separable = (build_encoder({"name": name}, 64) for name in ("dilated", "separable"))
    assert separable.receptive_field == dilated.receptive_field == 61  # the defaults: 1-2-4-8, twice
    flops = [sum(r["flops_per_position"] for r in layer_table(e, 64)) for e in (dilated, separable)]
    # per layer 2 * 128 * (3 + 128) against 2 * 3 * 128**2; the 1x1 input projection is shared
    assert flops[1] == 2 * 64 * 128 + 8 * 2 * 128 * (3 + 128) and flops[0] > 2.8 * flops[1]
    rows = layer_table(separable, 64)
    assert [r["type"] for r in rows[1:3]] == ["conv k=3 d=1 dw", "conv k=1 d=1"]
    assert rows[-1]["receptive_field"] == 61  # the table's field, layer by layer, ends at the exact one
