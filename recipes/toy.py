"""Train a CP / TT / HT network on the paper's toy sets (scikit-learn's moons or circles).

Each point (x, y) is fed as two "patches" of one value: d = 2 positions, n = 1 (an "image" of
shape (1, 1, 2) cut into 1 x 1 patches). With d = 2 the weight tensor is an m x m matrix, so
CP, TT and HT of rank r are the same model class (rank-r matrices): the ranks, not the
architectures, are what the paper's decision-boundary figure compares. Seconds on a CPU.

python recipes/toy.py                                   # moons, TT rank 4: fit, then test
python recipes/toy.py --data.dataset=circles --model.network.rank=1
python recipes/toy.py fit --print_config                # the complete, reusable config
"""

from pathlib import Path

from tensor_zoo.data import ToyDataModule
from tensor_zoo.lightning.cli import run_recipe

if __name__ == "__main__":
    run_recipe(ToyDataModule, Path(__file__).parent / "configs" / "toy.yaml")
