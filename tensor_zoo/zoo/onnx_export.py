"""A network as an ONNX file (torch.onnx.export with dynamo, dynamic batch), checked in onnxruntime.

The exported graph takes float images `images` (batch, C, H, W) in [0, 1], normalisation
included, and returns `logits` (batch, num_classes), like the network's forward.
"""

from __future__ import annotations

import copy
import os

import torch

from tensor_zoo.networks import TensorNetwork


def export_onnx(network: TensorNetwork, path: str | os.PathLike, check_batch: int = 3) -> float:
    """Write `network` to `path` as ONNX and return the largest relative logit difference.

    Args:
        network: the network to export (a copy in float32, eval mode, is exported).
        path: the .onnx file to write.
        check_batch: how many random images onnxruntime and torch compare on (a batch size
            other than the one traced with, so that the dynamic batch is exercised).

    Returns:
        max |onnx - torch| / max |torch| over the check batch.
    """
    import onnxruntime

    network = copy.deepcopy(network).float().eval()
    channels, size = network.patches.in_channels, network.patches.image_size
    example = torch.rand(2, channels, *size)
    batch = torch.export.Dim("batch", min=1)
    with torch.no_grad():
        program = torch.onnx.export(
            network,
            (example,),
            input_names=["images"],
            output_names=["logits"],
            dynamic_shapes={"images": {0: batch}},
            dynamo=True,
            verbose=False,
        )
    program.save(os.fspath(path))
    session = onnxruntime.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
    images = torch.rand(check_batch, channels, *size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = network(images)
    (logits,) = session.run(["logits"], {"images": images.numpy()})
    difference = (torch.from_numpy(logits) - expected).abs().max() / expected.abs().max()
    return difference.item()
