"""tensor_zoo: CP (shallow), TT (recurrent) and HT (deep) tensor-network classifiers."""

from tensor_zoo.networks import NETWORKS, CPNet, HTNet, TensorNetwork, TTNet, build_network

__version__ = "0.1.0"

__all__ = ["NETWORKS", "CPNet", "HTNet", "TTNet", "TensorNetwork", "__version__", "build_network"]
