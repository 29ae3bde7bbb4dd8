"""The network families as plain torch.nn modules, and building one from its config."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tensor_zoo.networks.base import TensorNetwork
from tensor_zoo.networks.cp import CPNet
from tensor_zoo.networks.ht import HTNet
from tensor_zoo.networks.shared_tt import SharedTTNet
from tensor_zoo.networks.tt import TTNet

NETWORKS: dict[str, type[TensorNetwork]] = {
    "CPNet": CPNet,
    "TTNet": TTNet,
    "HTNet": HTNet,
    "SharedTTNet": SharedTTNet,
}


def build_network(config: Mapping[str, Any]) -> TensorNetwork:
    """Rebuild a network from `net.config` ({"class_path": ..., "init_args": {...}}).

    Only the classes in NETWORKS are accepted, so a config file can never import arbitrary code.
    """
    class_path = str(config.get("class_path", ""))
    name = class_path.rsplit(".", 1)[-1]
    if name not in NETWORKS:
        raise ValueError(
            f"Unknown network class {class_path!r}; expected one of {sorted(NETWORKS)} "
            f"(as 'tensor_zoo.TTNet' or 'TTNet')."
        )
    return NETWORKS[name](**config.get("init_args", {}))


__all__ = [
    "NETWORKS",
    "CPNet",
    "HTNet",
    "SharedTTNet",
    "TTNet",
    "TensorNetwork",
    "build_network",
]
