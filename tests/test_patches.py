import pytest
import torch

from tensor_zoo.layers import ORDERINGS, PatchExtractor, ordering_permutation

POWER_OF_TWO_GRIDS = [(1, 28, 7, None), (3, 32, 4, None), (3, (16, 8), 4, 4), (1, 10, 4, 2)]
OTHER_GRIDS = [(2, 17, 5, 4), (1, 28, 4, None), (3, 12, 4, 2)]  # 4x4 with overlap, 7x7, 5x5
CASES = [
    (ordering, *grid)
    for ordering in ORDERINGS
    for grid in POWER_OF_TWO_GRIDS + (OTHER_GRIDS if ordering != "zorder" else [])
]


@pytest.mark.parametrize(("ordering", "channels", "size", "patch", "stride"), CASES)
def test_patches_put_back_give_the_image(ordering, channels, size, patch, stride):
    extractor = PatchExtractor(channels, size, patch, stride, ordering)
    images = torch.rand(3, channels, *extractor.image_size)
    patches = extractor(images)
    assert patches.shape == (3, extractor.num_positions, channels * patch * patch)
    torch.testing.assert_close(extractor.fold(patches), images, rtol=0, atol=1e-6)


@pytest.mark.parametrize(("ordering", "channels", "size", "patch", "stride"), CASES)
def test_patches_are_unfold_in_the_ordering(ordering, channels, size, patch, stride):
    """The partition shortcut (stride = patch size: a reshape) gives what unfold gives."""
    extractor = PatchExtractor(channels, size, patch, stride, ordering)
    images = torch.rand(2, channels, *extractor.image_size)
    unfolded = torch.nn.functional.unfold(images, kernel_size=patch, stride=extractor.stride)
    assert torch.equal(extractor(images), unfolded.transpose(1, 2)[:, extractor.order])


def test_each_patch_holds_its_pixels_in_raster_order():
    extractor = PatchExtractor(1, 4, 2, ordering="raster")
    image = torch.arange(16.0).reshape(1, 1, 4, 4)
    patches = extractor(image)[0]
    assert patches[0].tolist() == [0, 1, 4, 5]
    assert patches[1].tolist() == [2, 3, 6, 7]
    assert patches[2].tolist() == [8, 9, 12, 13]


def test_snake_reverses_every_other_row():
    assert ordering_permutation(3, 3, "snake").tolist() == [0, 1, 2, 5, 4, 3, 6, 7, 8]


@pytest.mark.parametrize(("rows", "cols"), [(4, 4), (8, 8), (2, 8), (8, 4), (1, 2)])
def test_zorder_blocks_of_consecutive_positions_are_spatial_blocks(rows, cols):
    order = ordering_permutation(rows, cols, "zorder")
    assert sorted(order.tolist()) == list(range(rows * cols))
    ys, xs = order // cols, order % cols
    block = 2
    while block <= rows * cols:
        for start in range(0, rows * cols, block):
            y, x = ys[start : start + block], xs[start : start + block]
            height, width = int(y.max() - y.min() + 1), int(x.max() - x.min() + 1)
            # a block of 2^k consecutive positions fills a rectangle of exactly 2^k cells
            assert height * width == block, (block, start, y.tolist(), x.tolist())
        block *= 2


def test_zorder_pairs_are_neighbours_and_quads_are_squares():
    order = ordering_permutation(8, 8, "zorder")
    ys, xs = order // 8, order % 8
    for start in range(0, 64, 2):
        assert abs(ys[start] - ys[start + 1]) + abs(xs[start] - xs[start + 1]) == 1
    for start in range(0, 64, 4):
        quad = zip(ys[start : start + 4].tolist(), xs[start : start + 4].tolist(), strict=True)
        assert {(y % 2, x % 2) for y, x in quad} == {(0, 0), (0, 1), (1, 0), (1, 1)}


def test_zorder_rejects_other_grids():
    with pytest.raises(ValueError, match="powers of two"):
        PatchExtractor(1, 28, 4, ordering="zorder")  # 7 x 7 grid


def test_patches_that_do_not_tile_raise_an_actionable_error():
    with pytest.raises(ValueError, match="do not tile an image height of 28"):
        PatchExtractor(1, 28, 5)


def test_wrong_image_shape_is_reported():
    extractor = PatchExtractor(3, 32, 4)
    with pytest.raises(ValueError, match=r"Expected images of shape \(B, 3, 32, 32\)"):
        extractor(torch.rand(2, 1, 28, 28))
