"""`optrepro data fetch`: what a login node runs so that compute nodes read datasets offline."""

from __future__ import annotations

import pytest

from optrepro.cli import main
from optrepro.data.fashion_mnist_data import DEBIAN_DIR


def test_offline_fetch_of_a_hub_dataset_stops_with_one_line_saying_how(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["data", "fetch", "cifar10", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("optrepro: error: cifar10 is not available.") and err.count("\n") == 1
    assert "internet" in err and "dataset.path" in err


@pytest.mark.skipif(not DEBIAN_DIR.is_dir(), reason=f"Debian's dataset-fashion-mnist is not installed ({DEBIAN_DIR})")
def test_fetch_reports_what_is_ready_where(tmp_path, capsys):
    assert main(["data", "fetch", "fashion_mnist", "--data-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out == f"fashion_mnist: ready in {tmp_path} (60000 train / 10000 test)\n"


def test_an_unknown_name_lists_the_downloadable_datasets(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["data", "fetch", "cifar11"])
    assert exited.value.code == 2
    assert "choose from 'cifar10', 'cifar100', 'fashion_mnist', 'imagenet'" in capsys.readouterr().err
