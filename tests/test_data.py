"""Data modules on small fixture files written in the real formats."""

import gzip
import pickle
import struct
import tarfile

import numpy as np
import pytest
import torch

from tensor_zoo.data import (
    CIFAR10DataModule,
    DatasetCorruptError,
    DatasetNotFoundError,
    DigitsDataModule,
    FashionMNISTDataModule,
    MNISTDataModule,
    ShardSampler,
    ToyDataModule,
    random_crop_flip,
)


@pytest.fixture(autouse=True)
def _isolated_places(tmp_path, monkeypatch):
    """No test sees the user's cache or TENSOR_ZOO_DATA."""
    monkeypatch.setenv("TENSOR_ZOO_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("TENSOR_ZOO_DATA", raising=False)


def write_idx(path, array: np.ndarray, compress: bool) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    data = header + array.astype(np.uint8).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)


def make_idx_dataset(folder, train: int = 60, test: int = 20, compress: bool = True):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (train, 28, 28)),
        "train-labels-idx1-ubyte": np.arange(train) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (test, 28, 28)),
        "t10k-labels-idx1-ubyte": np.arange(test) % 10,
    }
    for name, array in arrays.items():
        write_idx(folder / name, array, compress)
    return arrays


@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize(
    ("module", "layout"),
    [
        (MNISTDataModule, ""),
        (MNISTDataModule, "MNIST/raw"),
        (FashionMNISTDataModule, "fashion-mnist"),
    ],
)
def test_idx_datasets_read_from_root(tmp_path, module, layout, compress):
    arrays = make_idx_dataset(tmp_path / "data" / layout, compress=compress)
    data = module(root=str(tmp_path / "data"), download=False, val_size=10, batch_size=8)
    data.setup()
    assert len(data.train_set) == 50 and len(data.val_set) == 10 and len(data.test_set) == 20
    images, labels = next(iter(data.test_dataloader()))
    assert images.shape == (8, 1, 28, 28) and images.dtype == torch.float32
    expected = torch.from_numpy(arrays["t10k-images-idx3-ubyte"][:8]).float() / 255
    torch.testing.assert_close(images[:, 0], expected)
    assert labels.tolist() == list(range(8))


def test_environment_variable_is_the_second_place(tmp_path, monkeypatch):
    make_idx_dataset(tmp_path / "env" / "mnist")
    monkeypatch.setenv("TENSOR_ZOO_DATA", str(tmp_path / "env"))
    data = MNISTDataModule(download=False, val_size=10)
    data.setup()
    assert len(data.test_set) == 20


def test_validation_split_is_fixed_by_the_seed(tmp_path):
    make_idx_dataset(tmp_path / "d")
    first, second = (
        MNISTDataModule(root=str(tmp_path / "d"), download=False, val_size=10) for _ in range(2)
    )
    first.setup()
    second.setup()
    assert torch.equal(first.val_set.labels, second.val_set.labels)
    assert torch.equal(first.val_set.images, second.val_set.images)


def write_cifar_fixture(folder, layout: str, per_batch: int = 12):
    rng = np.random.default_rng(1)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batches[name] = (rng.integers(0, 256, (per_batch, 3072)), rng.integers(0, 10, per_batch))
    if layout == "python":
        target = folder / "cifar-10-batches-py"
        target.mkdir(parents=True)
        for name, (data, labels) in batches.items():
            with open(target / name, "wb") as stream:
                pickle.dump({b"data": data.astype(np.uint8), b"labels": labels.tolist()}, stream)
        return batches
    records = {
        f"{name}.bin": np.concatenate([labels[:, None], data], axis=1).astype(np.uint8).tobytes()
        for name, (data, labels) in batches.items()
    }
    target = folder / "cifar-10-batches-bin"
    target.mkdir(parents=True)
    for name, blob in records.items():
        (target / name).write_bytes(blob)
    if layout.startswith("archive"):
        mode = "w:xz" if layout == "archive-xz" else "w:gz"
        suffix = "xz" if layout == "archive-xz" else "gz"
        with tarfile.open(folder / f"cifar-10-binary.tar.{suffix}", mode) as archive:
            archive.add(target, arcname="cifar-10-batches-bin")
        for path in target.iterdir():
            path.unlink()
        target.rmdir()
    return batches


@pytest.mark.parametrize("layout", ["python", "binary", "archive-gz", "archive-xz"])
def test_cifar10_layouts(tmp_path, layout):
    batches = write_cifar_fixture(tmp_path / "cifar10", layout)
    data = CIFAR10DataModule(root=str(tmp_path), download=False, val_size=6, batch_size=12)
    data.setup()
    assert len(data.train_set) == 54 and len(data.test_set) == 12
    images, labels = next(iter(data.test_dataloader()))
    test_data, test_labels = batches["test_batch"]
    assert images.shape == (12, 3, 32, 32)
    torch.testing.assert_close(
        images, torch.from_numpy(test_data).reshape(12, 3, 32, 32).float() / 255
    )
    assert labels.tolist() == test_labels.tolist()


def test_archive_is_decoded_once_then_read_from_the_cache(tmp_path):
    batches = write_cifar_fixture(tmp_path / "cifar10", "archive-xz")
    first = CIFAR10DataModule(root=str(tmp_path), download=False).load()
    (entry,) = list((tmp_path / "cache" / "decoded").glob("cifar10-*.pt"))
    entry.write_bytes(b"")  # a broken entry is dropped and decoded again
    again = CIFAR10DataModule(root=str(tmp_path), download=False).load()
    assert entry.stat().st_size > 0
    torch.save([tensor[:1] for tensor in first], entry)  # proves the next read uses the cache
    cached = CIFAR10DataModule(root=str(tmp_path), download=False).load()
    assert [len(tensor) for tensor in cached] == [1, 1, 1, 1]
    for expected, actual in zip(first, again, strict=True):
        assert torch.equal(expected, actual)
    assert first[3].tolist() == batches["test_batch"][1].tolist()


@pytest.mark.parametrize("count, world", [(10, 2), (11, 2), (7, 3), (2, 4)])
def test_shard_sampler_covers_every_item_exactly_once(count, world):
    shards = [list(ShardSampler(range(count), world, rank)) for rank in range(world)]
    assert sorted(index for shard in shards for index in shard) == list(range(count))
    assert [len(ShardSampler(range(count), world, rank)) for rank in range(world)] == [
        len(shard) for shard in shards
    ]


def test_missing_data_says_where_it_looked_and_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr("torchvision.datasets.MNIST.mirrors", ["http://127.0.0.1:9/"])  # refused
    with pytest.raises(DatasetNotFoundError) as info:
        MNISTDataModule(root=str(tmp_path / "nowhere")).setup()
    message = str(info.value)
    assert "MNIST was not found" in message
    assert str(tmp_path / "nowhere") in message and str(tmp_path / "cache") in message
    assert "train-images-idx3-ubyte" in message and "The download failed" in message
    assert "--data.root" in message and "TENSOR_ZOO_DATA" in message


def test_missing_cifar_lists_the_accepted_layouts(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="cifar-10-batches-py"):
        CIFAR10DataModule(root=str(tmp_path), download=False).setup()


def test_random_crop_flip_keeps_content_and_shape():
    images = torch.rand(16, 3, 32, 32)
    augmented = random_crop_flip(images, padding=4)
    assert augmented.shape == images.shape
    assert not torch.equal(augmented, images)
    assert torch.equal(random_crop_flip(images, padding=0).sort(-1).values, images.sort(-1).values)


@pytest.mark.parametrize("dataset", ["moons", "circles"])
def test_toy_sets_are_two_one_pixel_patches(dataset):
    data = ToyDataModule(dataset, num_samples=200, val_size=20)
    data.setup()
    images, labels = next(iter(data.train_dataloader()))
    assert images.shape[1:] == (1, 1, 2) and set(labels.tolist()) <= {0, 1}
    assert len(data.test_set) == 100


def test_digits_module():
    data = DigitsDataModule()
    data.setup()
    assert len(data.train_set) + len(data.val_set) + len(data.test_set) == 1797
    images, _ = next(iter(data.train_dataloader()))
    assert images.shape[1:] == (1, 8, 8) and 0 <= images.min() and images.max() <= 1


def test_shift_without_flip_is_a_crop_of_the_padded_image():
    images = torch.rand(8, 1, 28, 28)
    shifted = random_crop_flip(images, padding=2, flip=False)
    padded = torch.nn.functional.pad(images, [2] * 4, mode="reflect")
    for original, result in zip(padded, shifted, strict=True):
        crops = [original[:, r : r + 28, c : c + 28] for r in range(5) for c in range(5)]
        assert any(torch.equal(crop, result) for crop in crops)


def test_mnist_augmentation_is_off_by_default_and_only_touches_training(tmp_path):
    make_idx_dataset(tmp_path / "mnist")
    assert not MNISTDataModule(root=str(tmp_path)).augment
    data = MNISTDataModule(root=str(tmp_path), download=False, augment=True, val_size=10)
    batch = (torch.rand(4, 1, 28, 28), torch.arange(4))
    assert data.on_after_batch_transfer(batch, 0) is batch  # no trainer: not training


@pytest.mark.parametrize("flip", [False, True])
def test_fashion_mnist_flips_training_images_only_when_asked(tmp_path, flip):
    """Through a real Trainer: every training image the model sees is a shifted crop of a
    training image (reflection padding of 2) or, with flip, of its mirror image, and with flip
    some are mirrored."""
    import lightning as L

    arrays = make_idx_dataset(tmp_path / "fashion-mnist", train=40, test=8)
    originals = torch.tensor(arrays["train-images-idx3-ubyte"], dtype=torch.float32) / 255
    seen: list[torch.Tensor] = []

    class Recorder(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(1))

        def training_step(self, batch, batch_idx):
            seen.append(batch[0][:, 0].clone())
            return self.weight.sum()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    data = FashionMNISTDataModule(
        root=str(tmp_path), download=False, augment=True, flip=flip, val_size=8, batch_size=8
    )
    trainer = L.Trainer(
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        accelerator="cpu",
    )
    trainer.fit(Recorder(), data)

    def crops(image):
        padded = torch.nn.functional.pad(image[None, None], [2] * 4, mode="reflect")[0, 0]
        return [padded[r : r + 28, c : c + 28] for r in range(5) for c in range(5)]

    plain = [crop for image in originals for crop in crops(image)]
    mirrored = [crop for image in originals for crop in crops(image.flip(-1))]
    kinds = []
    for image in torch.cat(seen):
        if any(torch.allclose(image, crop) for crop in plain):
            kinds.append("plain")
        else:
            assert any(torch.allclose(image, crop) for crop in mirrored)
            kinds.append("mirrored")
    assert len(kinds) == 32
    assert ("mirrored" in kinds) == flip


def py2_cifar_pickle(data: np.ndarray, labels: list[int]) -> bytes:
    """A batch as Python 2's cPickle (protocol 2) wrote the official python release: str keys
    (SHORT_BINSTRING), the array through numpy.core.multiarray._reconstruct."""

    def string(value: bytes) -> bytes:
        if len(value) < 256:
            return b"U" + bytes([len(value)]) + value
        return b"T" + struct.pack("<I", len(value)) + value

    def integer(value: int) -> bytes:
        return b"J" + struct.pack("<i", value)

    dtype = (
        b"cnumpy\ndtype\n"
        + string(b"u1")
        + integer(0)
        + integer(1)
        + b"\x87R("
        + integer(3)
        + string(b"|")
        + b"NNN"
        + integer(-1)
        + integer(-1)
        + integer(0)
        + b"tb"
    )
    array = (
        b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n"
        + integer(0)
        + b"\x85"
        + string(b"b")
        + b"\x87R("
        + integer(1)
        + integer(data.shape[0])
        + integer(data.shape[1])
        + b"\x86"
        + dtype
        + b"\x89"
        + string(data.astype(np.uint8).tobytes())
        + b"tb"
    )
    values = b"](" + b"".join(integer(label) for label in labels) + b"e"
    return (
        b"\x80\x02}("
        + string(b"batch_label")
        + string(b"training batch 1 of 5")
        + string(b"data")
        + array
        + string(b"labels")
        + values
        + b"u."
    )


def test_cifar10_python_release_as_python_2_wrote_it(tmp_path):
    batches = write_cifar_fixture(tmp_path / "cifar10", "python")
    folder = tmp_path / "cifar10" / "cifar-10-batches-py"
    for name, (data, labels) in batches.items():
        blob = py2_cifar_pickle(data, labels.tolist())
        assert pickle.loads(blob, encoding="bytes")[b"labels"] == labels.tolist()  # a real pickle
        (folder / name).write_bytes(blob)
    data = CIFAR10DataModule(root=str(tmp_path), download=False, val_size=6, batch_size=12)
    data.setup()
    images, labels = next(iter(data.test_dataloader()))
    test_data, test_labels = batches["test_batch"]
    assert torch.equal(
        (images * 255).round().to(torch.uint8).flatten(1),
        torch.from_numpy(test_data.astype(np.uint8)),
    )
    assert labels.tolist() == test_labels.tolist()


class _PlantedPayload:
    """Unpickling this runs `open(path, "w")`: it creates a file."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


@pytest.mark.parametrize("where", ["top", "inside the data"])
def test_a_planted_cifar_pickle_is_refused_without_running_it(tmp_path, where):
    write_cifar_fixture(tmp_path / "cifar10", "python")
    marker = tmp_path / "planted-code-ran"
    payload = _PlantedPayload(marker)
    batch = payload if where == "top" else {b"data": payload, b"labels": [0]}
    blob = pickle.dumps(batch, protocol=2)
    pickle.loads(pickle.dumps(_PlantedPayload(tmp_path / "probe"), protocol=2))
    assert (tmp_path / "probe").exists()  # plain pickle.load would run it
    target = tmp_path / "cifar10" / "cifar-10-batches-py" / "data_batch_1"
    target.write_bytes(blob)
    with pytest.raises(DatasetCorruptError, match="is refused: it asks to run") as info:
        CIFAR10DataModule(root=str(tmp_path), download=False).setup()
    assert not marker.exists()
    assert str(target) in str(info.value) and "download CIFAR-10 again" in str(info.value)


def _flip(path, offset):
    blob = bytearray(path.read_bytes())
    blob[offset] ^= 0xFF
    path.write_bytes(bytes(blob))


def _cut(path, keep=0.5):
    blob = path.read_bytes()
    path.write_bytes(blob[: int(len(blob) * keep)])


IDX_FAULTS = {
    "gz truncated": (True, "t10k-images-idx3-ubyte.gz", _cut, "cannot be decompressed"),
    "gz flipped byte": (
        True,
        "train-images-idx3-ubyte.gz",
        lambda p: _flip(p, 300),
        "cannot be decompressed",
    ),
    "gz empty": (True, "train-labels-idx1-ubyte.gz", lambda p: _cut(p, 0), "not an unsigned-byte"),
    "plain truncated": (False, "t10k-images-idx3-ubyte", lambda p: _cut(p, 0.9), "is truncated"),
    "header flipped": (
        False,
        "train-images-idx3-ubyte",
        lambda p: _flip(p, 2),
        "not an unsigned-byte IDX",
    ),
    "count in header flipped": (
        False,
        "t10k-labels-idx1-ubyte",
        lambda p: _flip(p, 7),
        "has trailing bytes|is truncated",
    ),
    "label byte flipped": (
        False,
        "train-labels-idx1-ubyte",
        lambda p: _flip(p, 8 + 5),
        "holds label 250, outside 0..9",
    ),
}


@pytest.mark.parametrize("fault", list(IDX_FAULTS))
def test_damaged_idx_files_are_named_with_what_to_do(tmp_path, fault):
    compress, name, damage, problem = IDX_FAULTS[fault]
    make_idx_dataset(tmp_path / "mnist", compress=compress)
    damage(tmp_path / "mnist" / name)
    with pytest.raises(DatasetCorruptError, match=problem) as info:
        MNISTDataModule(root=str(tmp_path), download=False).setup()
    assert str(tmp_path / "mnist" / name) in str(info.value)
    assert "delete it and download it again" in str(info.value)


CIFAR_FAULTS = {
    "tar.xz truncated": ("archive-xz", "cifar-10-binary.tar.xz", _cut, "cannot be unpacked"),
    "tar.gz flipped byte": (
        "archive-gz",
        "cifar-10-binary.tar.gz",
        lambda p: _flip(p, 2000),
        "cannot be unpacked",
    ),
    "binary truncated": (
        "binary",
        "cifar-10-batches-bin/data_batch_3.bin",
        lambda p: _cut(p, 0.7),
        "not whole 3,073-byte CIFAR-10 records",
    ),
    "binary label flipped": (
        "binary",
        "cifar-10-batches-bin/test_batch.bin",
        lambda p: _flip(p, 3073),
        "outside 0..9",
    ),
    "pickle truncated": (
        "python",
        "cifar-10-batches-py/data_batch_2",
        _cut,
        "is not a readable pickle",
    ),
    "pickle flipped byte": (
        "python",
        "cifar-10-batches-py/test_batch",
        lambda p: _flip(p, 1),
        "is not a readable pickle",
    ),
}


@pytest.mark.parametrize("fault", list(CIFAR_FAULTS))
def test_damaged_cifar_files_are_named_with_what_to_do(tmp_path, fault):
    layout, name, damage, problem = CIFAR_FAULTS[fault]
    write_cifar_fixture(tmp_path / "cifar10", layout)
    damage(tmp_path / "cifar10" / name)
    with pytest.raises(DatasetCorruptError, match=problem) as info:
        CIFAR10DataModule(root=str(tmp_path), download=False).setup()
    assert str(tmp_path / "cifar10" / name) in str(info.value)


def test_a_failed_download_names_its_reason_and_leaves_no_empty_folders(tmp_path, monkeypatch):
    monkeypatch.setattr("torchvision.datasets.MNIST.mirrors", ["http://127.0.0.1:9/"])  # refused
    monkeypatch.setenv("TENSOR_ZOO_DATA", str(tmp_path / "cache"))  # the cache named twice
    with pytest.raises(DatasetNotFoundError) as info:
        MNISTDataModule().setup()
    message = str(info.value)
    assert message.count(str(tmp_path / "cache")) == 1
    assert "127.0.0.1:9" in message and "refused" in message.lower()  # the reason, not just a name
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize(
    "arguments",
    [
        {"batch_size": 0},
        {"batch_size": 8.0},
        {"val_size": -1},
        {"num_workers": True},
        {"seed": "0"},
    ],
)
def test_data_module_arguments_are_checked_by_name(arguments):
    (name,) = arguments
    with pytest.raises(ValueError, match=f"{name} must be an int"):
        DigitsDataModule(**arguments)
