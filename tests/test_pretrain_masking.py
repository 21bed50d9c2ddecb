"""Masks: exact ratio, block structure, seeding, and the reversed masks' spatial equalisation (Fig. 3)."""
import numpy as np
import pytest
import torch

from uta_bench.errors import UtaBenchError
from uta_bench.pretrain.masking import MASK_KINDS, MaskGenerator, mask_probability


@pytest.mark.parametrize("kind", MASK_KINDS)
@pytest.mark.parametrize("grid,ratio", [((14, 14), 0.4), ((14, 14), 0.5), ((16, 16), 0.7), ((4, 4), 0.5),
                                        ((7, 9), 0.3)])
def test_ratio_is_exact(kind, grid, ratio):
    m = MaskGenerator(kind, grid, ratio, seed=3).batch(step=5, size=64)
    assert m.shape == (64, grid[0] * grid[1]) and m.dtype == torch.bool
    want = int(round(ratio * grid[0] * grid[1]))
    assert m.sum(1).tolist() == [want] * 64


def test_seeded_and_step_dependent():
    g = MaskGenerator("block_reversed", 14, 0.4, seed=1)
    assert torch.equal(g.batch(7, 8), MaskGenerator("block_reversed", 14, 0.4, seed=1).batch(7, 8))
    assert not torch.equal(g.batch(7, 8), g.batch(8, 8))
    assert not torch.equal(g.batch(7, 8), MaskGenerator("block_reversed", 14, 0.4, seed=2).batch(7, 8))


def _neighbour_fraction(masks: np.ndarray, grid: int) -> float:
    """Fraction of masked patches whose right neighbour is also masked (counted by hand)."""
    m = masks.reshape(-1, grid, grid)
    both = (m[:, :, :-1] & m[:, :, 1:]).sum()
    return both / m[:, :, :-1].sum()


def test_block_masks_are_blocky():
    block = MaskGenerator("block", 14, 0.4, seed=0).batch(0, 200).numpy()
    rand = MaskGenerator("random", 14, 0.4, seed=0).batch(0, 200).numpy()
    assert _neighbour_fraction(rand, 14) == pytest.approx(0.4 * 195 / 195, abs=0.03)
    assert _neighbour_fraction(block, 14) > 0.75


def _centre_over_border(p: np.ndarray) -> float:
    p = p.reshape(14, 14)
    border = np.concatenate([p[0], p[-1], p[1:-1, 0], p[1:-1, -1]])
    return p[4:10, 4:10].mean() / border.mean()


def test_reversed_equalises_location_probability():
    """Block masking skews towards the centre; reversal makes every location ~equally likely."""
    n = 2000
    probs = {}
    for ratio in (0.5, 0.4):
        for kind in ("block", "block_reversed"):   # independent of mask_probability: sum masks directly
            probs[kind, ratio] = MaskGenerator(kind, 14, ratio, seed=0).batch(0, n).numpy().sum(0) / n
    for ratio in (0.5, 0.4):
        block, rev = probs["block", ratio], probs["block_reversed", ratio]
        assert block.max() / block.min() > 5.0 and _centre_over_border(block) > 3.0
        assert 0.8 < _centre_over_border(rev) < 1.2
        assert rev.mean() == pytest.approx(round(ratio * 196) / 196)
    rev = probs["block_reversed", 0.5]       # at 0.5 reversal is exact in expectation: noise only
    assert rev.max() / rev.min() < 1.2
    p = mask_probability("block_reversed", 14, 0.5, n=1000)
    assert p.shape == (14, 14) and p.max() / p.min() < 1.3 and p.mean() == pytest.approx(0.5)


def test_bad_ratio_and_kind():
    with pytest.raises(UtaBenchError, match="mask ratio"):
        MaskGenerator("block", 14, 1.0)
    with pytest.raises(UtaBenchError, match="unknown mask kind"):
        MaskGenerator("blocky", 14, 0.4)
