"""Train a CP / TT / HT network on MNIST.

python recipes/mnist.py fit --trainer.devices=2
python recipes/mnist.py --model.network=HTNet      # no subcommand: fit, then test
python recipes/mnist.py fit --print_config          # the complete, reusable config
"""

from pathlib import Path

from tensor_zoo.data import MNISTDataModule
from tensor_zoo.lightning.cli import run_recipe

if __name__ == "__main__":
    run_recipe(MNISTDataModule, Path(__file__).parent / "configs" / "mnist.yaml")
