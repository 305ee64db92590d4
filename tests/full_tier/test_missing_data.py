"""A full preset started offline without its dataset stops at once, in one line that says how to get the data."""

from __future__ import annotations

import pytest
from helpers.compose import compose_config

from optrepro.data import fashion_mnist_data
from optrepro.errors import DatasetUnavailableError
from optrepro.train import run

# One full preset per dataset the full tier reads, and what its message must offer.
REMEDIES = {
    "sam_cifar": ("uoft-cs/cifar10", "dataset.path=", "save_to_disk", "internet"),
    "sam_cifar100": ("uoft-cs/cifar100", "dataset.path=", "save_to_disk", "internet"),
    "sam_fmnist": ("apt-get install dataset-fashion-mnist", "dataset.path=", "internet"),
    "saf_imagenet": ("ILSVRC/imagenet-1k", "huggingface-cli login", "dataset.path=", "train/ and val/"),
}


@pytest.mark.parametrize("preset", sorted(REMEDIES))
def test_full_preset_without_its_data_says_how_to_get_it(preset, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(fashion_mnist_data, "DEBIAN_DIR", tmp_path / "no-debian-package")
    monkeypatch.setattr(fashion_mnist_data, "SHIPPED_DIR", tmp_path / "no-shipped-copy")
    on_this_cpu = ["hardware.accelerator=cpu", "hardware.devices=1", "hardware.num_nodes=1"]  # else: "no GPU" first
    cfg = compose_config([f"+repro={preset}", *on_this_cpu, f"paths.data_dir={tmp_path / 'data'}"], tmp_path)
    with pytest.raises(DatasetUnavailableError) as err:
        run(cfg)
    message = str(err.value)
    assert "\n" not in message and "To get it" in message
    for remedy in REMEDIES[preset]:
        assert remedy in message, remedy
    assert not (tmp_path / "runs").exists()  # stopped before the run had a folder
