"""Train a CP / TT / HT network on Fashion-MNIST.

python recipes/fashion_mnist.py fit --trainer.devices=2
python recipes/fashion_mnist.py --model.network=HTNet      # no subcommand: fit, then test
python recipes/fashion_mnist.py fit --print_config          # the complete, reusable config
"""

from pathlib import Path

from tensor_zoo.data import FashionMNISTDataModule
from tensor_zoo.lightning.cli import run_recipe

if __name__ == "__main__":
    run_recipe(FashionMNISTDataModule, Path(__file__).parent / "configs" / "fashion_mnist.yaml")
