"""Lightning training layer on top of the plain torch.nn networks."""

from tensor_zoo.lightning.module import TensorNetClassifier

__all__ = ["TensorNetClassifier"]
