"""Train a CP / TT / HT network on CIFAR-10.

python recipes/cifar10.py fit --trainer.devices=2
python recipes/cifar10.py --model.network=HTNet      # no subcommand: fit, then test
python recipes/cifar10.py fit --print_config          # the complete, reusable config
"""

from pathlib import Path

from tensor_zoo.data import CIFAR10DataModule
from tensor_zoo.lightning.cli import run_recipe

if __name__ == "__main__":
    run_recipe(CIFAR10DataModule, Path(__file__).parent / "configs" / "cifar10.yaml")
