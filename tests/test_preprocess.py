"""`tensor_zoo.zoo.transforms`: every common image format to the model's input, or a refusal."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays
from PIL import Image

import tensor_zoo
from tensor_zoo.zoo import ImageTransform, transforms

GRAY = ImageTransform(1, (28, 28))
RGB = ImageTransform(3, (32, 32))


def test_transforms_of_a_name_and_of_a_network_agree():
    assert transforms("tt-mnist-r16") == GRAY
    assert transforms(tensor_zoo.create_model("cp-cifar10-r8")) == RGB
    with pytest.raises(TypeError, match="zoo name or a tensor_zoo network"):
        transforms(3)


def test_a_uint8_batch_tensor_becomes_the_models_input_batch():
    """The model's own input, straight from uint8: (B, C, H, W) -> float (B, C, H, W)."""
    model = tensor_zoo.load("tt-digits-r16")
    raw = torch.randint(0, 256, (5, 1, 12, 12), dtype=torch.uint8)
    batch = transforms(model)(raw)
    assert batch.shape == (5, 1, 8, 8) and batch.dtype == torch.float32
    singles = torch.stack([transforms(model)(image) for image in raw])
    torch.testing.assert_close(batch, singles)
    same_size = transforms(model)(raw[:, :, :8, :8])
    torch.testing.assert_close(same_size, raw[:, :, :8, :8].float() / 255)
    assert model(batch).shape == (5, 10)
    with pytest.raises(ValueError, match="holds no image"):
        transforms(model)(raw[:0])


def test_sixteen_bit_grayscale_reads_as_the_same_image_as_eight_bit(tmp_path):
    eight = (np.arange(28 * 28).reshape(28, 28) % 256).astype(np.uint8)
    sixteen = eight.astype(np.uint16) * 257  # the same intensities on 0..65535
    Image.fromarray(eight).save(tmp_path / "8.png")
    Image.fromarray(sixteen).save(tmp_path / "16.png")
    assert Image.open(tmp_path / "16.png").mode == "I;16"  # really a 16-bit file
    expected = torch.from_numpy(eight).float()[None] / 255
    torch.testing.assert_close(GRAY.read(tmp_path / "8.png"), expected)
    torch.testing.assert_close(GRAY.read(tmp_path / "16.png"), expected)


def test_palette_rgba_rgb_and_jpeg_convert_to_the_model_channels(tmp_path):
    rgb = np.zeros((32, 32, 3), np.uint8)
    rgb[..., 0] = 255  # pure red
    Image.fromarray(rgb).convert("P").save(tmp_path / "palette.png")
    rgba = np.concatenate([rgb, np.full((32, 32, 1), 255, np.uint8)], axis=-1)
    rgba[:16, :, 3] = 0  # transparent top half: composited over black
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(rgb).save(tmp_path / "red.jpg", quality=95)
    palette = RGB.read(tmp_path / "palette.png")
    torch.testing.assert_close(palette[0], torch.ones(32, 32))
    assert palette[1:].abs().max() == 0
    with_alpha = RGB.read(tmp_path / "rgba.png")
    assert with_alpha[:, :16].abs().max() == 0 and with_alpha[0, 16:].min() == 1
    torch.testing.assert_close(
        RGB.read(tmp_path / "red.jpg")[0], torch.ones(32, 32), atol=0.02, rtol=0
    )
    gray = GRAY.read(tmp_path / "red.jpg")  # RGB -> luma, as PIL's "L"
    assert gray.shape == (1, 28, 28)
    assert gray.mean().item() == pytest.approx(0.299, abs=0.02)
    color_of_gray = RGB(np.full((10, 10), 128, np.uint8))  # gray repeated, resized
    assert color_of_gray.shape == (3, 32, 32)
    torch.testing.assert_close(color_of_gray, torch.full((3, 32, 32), 128 / 255))


def test_ambiguous_or_out_of_range_pixels_are_refused():
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\].*do not normalise"):
        GRAY(np.full((28, 28), 200.0))
    with pytest.raises(ValueError, match="ambiguous; give uint8"):
        GRAY(np.zeros((28, 28), np.int32))
    with pytest.raises(ValueError, match="cannot feed a model"):
        ImageTransform(2, (4, 4))(np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(TypeError, match="PIL image, a numpy array or a torch tensor"):
        GRAY([[0, 1]])


@settings(max_examples=60, deadline=None)
@given(
    arrays(
        st.sampled_from([np.uint8, np.uint16, np.float32, np.float64, np.int64, np.bool_]),
        array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=6),
    ),
    st.sampled_from([GRAY, RGB]),
)
def test_any_array_is_converted_or_refused_with_a_value_error(values, transform):
    try:
        pixels = transform(values)
    except ValueError:
        return
    assert pixels.shape == (transform.channels, *transform.image_size)
    assert pixels.dtype == torch.float32 and 0 <= pixels.min() and pixels.max() <= 1
