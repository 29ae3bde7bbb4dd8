"""tensor_zoo: CP (shallow), TT (recurrent) and HT (deep) tensor-network classifiers."""

from tensor_zoo.networks import (
    NETWORKS,
    CPNet,
    HTNet,
    SharedTTNet,
    TensorNetwork,
    TTNet,
    build_network,
)
from tensor_zoo.zoo import create_model, list_models, load, model_info

__version__ = "0.1.0"

__all__ = [
    "NETWORKS",
    "CPNet",
    "HTNet",
    "SharedTTNet",
    "TTNet",
    "TensorNetwork",
    "__version__",
    "build_network",
    "create_model",
    "list_models",
    "load",
    "model_info",
]
