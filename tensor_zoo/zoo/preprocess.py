"""Images as a zoo model wants them: `transforms(model)` is the one way in (like torchvision's
`weights.transforms()`).

    preprocess = tensor_zoo.zoo.transforms("tt-mnist-r16")  # or a network
    batch = torch.stack([preprocess(Image.open(path)) for path in paths])  # (B, C, H, W)
    probs = model(batch).softmax(-1)

Accepted: PIL images of any common mode (8- and 16-bit grayscale, RGB, RGBA, palette, 1-bit,
CMYK), uint8 / uint16 numpy arrays (H, W) or (H, W, C), torch tensors (H, W) or (C, H, W) and
batches of them (B, C, H, W), float arrays already in [0, 1]. The result is float32 (C, H, W)
(a batch: (B, C, H, W)) in [0, 1] with the model's channels (grayscale repeated to RGB; RGB to
luma by ITU-R 601-2, as PIL does) and size (resized with antialiasing). Anything else is
refused with a ValueError that says why.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

log = logging.getLogger(__name__)
LUMA = (0.299, 0.587, 0.114)  # ITU-R 601-2, PIL's "L" conversion
INTEGER_RANGES = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


@dataclass(frozen=True)
class ImageTransform:
    """Turn an image (or a batch tensor of them) into a model's input: float32 (C, H, W)
    (a batch: (B, C, H, W)) in [0, 1], which the model normalises itself.

    Args:
        channels: the model's input channels (1: grayscale, 3: RGB).
        image_size: the model's (H, W).
    """

    channels: int
    image_size: tuple[int, int]

    def __call__(self, image: Any) -> Tensor:
        """A PIL image, a numpy array (H, W[, C]) or a tensor ([C,] H, W) -> (C, H, W); a
        batch tensor (B, C, H, W) -> (B, C, H, W)."""
        if isinstance(image, Tensor) and image.ndim == 4:
            if len(image) == 0:
                raise ValueError("the batch (0, C, H, W) holds no image.")
            return torch.stack([self(one) for one in image])
        pixels = _to_float_chw(image)
        return self._fit(pixels)

    def read(self, path: str | os.PathLike) -> Tensor:
        """An image file (PNG, JPEG, GIF, WebP, BMP, TIFF, ...) -> (C, H, W)."""
        from PIL import Image, ImageOps, UnidentifiedImageError

        if not Path(path).is_file():
            raise FileNotFoundError(f"{path} does not exist; give the paths of image files.")
        try:
            with Image.open(path) as opened:
                image = ImageOps.exif_transpose(opened)
                image.load()
        except (UnidentifiedImageError, OSError, SyntaxError) as error:
            raise ValueError(
                f"Cannot read {path} as an image ({error}); give PNG, JPEG, GIF, WebP, BMP or "
                f"TIFF files."
            ) from error
        try:
            return self(image)
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from error

    def _fit(self, pixels: Tensor) -> Tensor:
        """(c, h, w) in [0, 1] -> the model's channels and size."""
        if pixels.shape[0] != self.channels:
            if pixels.shape[0] == 1:
                pixels = pixels.expand(self.channels, -1, -1)
            elif self.channels == 1:
                luma = torch.tensor(LUMA, dtype=pixels.dtype).view(3, 1, 1)
                pixels = (pixels * luma).sum(0, keepdim=True)
            else:
                raise ValueError(
                    f"an image with {pixels.shape[0]} channels cannot feed a model with "
                    f"{self.channels}."
                )
        if tuple(pixels.shape[-2:]) != self.image_size:
            log.info("Resizing an image from %s to %s", tuple(pixels.shape[-2:]), self.image_size)
            pixels = F.interpolate(
                pixels[None],
                size=self.image_size,
                mode="bilinear",
                antialias=True,
                align_corners=False,
            )[0].clamp(0, 1)
        return pixels.contiguous()


def transforms(model: Any) -> ImageTransform:
    """The preprocessing of a model, as torchvision's `weights.transforms()`: an ImageTransform
    with the model's channels and image size (`tensor-zoo predict` reads files through it).

    Args:
        model: a name (`tensor_zoo.list_models(pretrained=False)`) or a TensorNetwork.

    Returns:
        A callable: PIL image, array or tensor -> float32 (C, H, W) in [0, 1]; a batch
        tensor (B, C, H, W) -> (B, C, H, W).
    """
    if isinstance(model, str):
        from tensor_zoo.zoo.registry import default_network_config

        args = default_network_config(model)["init_args"]
        size = args["image_size"]
        size = (size, size) if isinstance(size, int) else tuple(size)
        return ImageTransform(int(args.get("in_channels", 1)), size)
    patches = getattr(model, "patches", None)
    if patches is None:
        raise TypeError(f"transforms() takes a zoo name or a tensor_zoo network, got {model!r}.")
    return ImageTransform(int(patches.in_channels), tuple(patches.image_size))


def _to_float_chw(image: Any) -> Tensor:
    """Any accepted image -> float32 (c, h, w) in [0, 1] with c in {1, 3}."""
    if _is_pil(image):
        return _from_pil(image)
    if isinstance(image, Tensor):
        if image.ndim == 3:  # torch layout (C, H, W) -> numpy layout
            image = image.permute(1, 2, 0)
        image = image.detach().cpu().numpy()
    if not isinstance(image, np.ndarray):
        raise TypeError(
            f"expected a PIL image, a numpy array or a torch tensor, got {type(image).__name__}."
        )
    return _from_array(image)


def _is_pil(image: Any) -> bool:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - torchvision brings Pillow
        return False
    return isinstance(image, Image.Image)


def _from_pil(image: Any) -> Tensor:
    """A PIL image of any common mode -> float (c, h, w) in [0, 1]."""
    mode = image.mode
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif mode in ("1", "CMYK", "YCbCr", "LAB", "HSV"):
        image = image.convert("L" if mode == "1" else "RGB")
    elif mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        return _from_array(np.asarray(image).astype(np.uint16))
    elif mode == "I":  # 32-bit integers: Pillow's mode for some 16-bit files
        values = np.asarray(image)
        if values.min() < 0 or values.max() > 65535:
            raise ValueError("a 32-bit integer image has values outside 16 bits; convert it.")
        return _from_array(values.astype(np.uint16))
    return _from_array(np.asarray(image))


def _from_array(values: np.ndarray) -> Tensor:
    """(h, w) or (h, w, c) uint8 / uint16 / bool / float in [0, 1] -> float (c, h, w)."""
    if values.ndim == 2:
        values = values[:, :, None]
    if values.ndim != 3 or values.shape[2] not in (1, 2, 3, 4) or 0 in values.shape:
        raise ValueError(
            f"an image is (H, W) or (H, W, C) with C in 1..4 (a tensor: (C, H, W)); got shape "
            f"{tuple(values.shape)}."
        )
    if values.dtype == np.bool_:
        pixels = values.astype(np.float32)
    elif values.dtype in INTEGER_RANGES:
        pixels = values.astype(np.float32) / INTEGER_RANGES[values.dtype]
    elif np.issubdtype(values.dtype, np.floating):
        if not np.isfinite(values).all() or values.min() < 0 or values.max() > 1:
            raise ValueError(
                f"float images must lie in [0, 1]; these range over [{values.min():g}, "
                f"{values.max():g}]. Divide by 255 (8-bit) or 65535 (16-bit) first, and do not "
                f"normalise: the model does that itself."
            )
        pixels = values.astype(np.float32)
    else:
        raise ValueError(
            f"pixels of type {values.dtype} are ambiguous; give uint8 (0-255), uint16 "
            f"(0-65535) or float in [0, 1]."
        )
    if pixels.shape[2] in (2, 4):  # an alpha channel: composite over black, as datasets are
        alpha = pixels[:, :, -1:]
        pixels = pixels[:, :, :-1] * alpha
    return torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1)
