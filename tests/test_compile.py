"""`hardware.compile`: the model is compiled in place, so checkpoints keep plain keys and load into an uncompiled
model; weights saved from a `torch.compile(...)` wrapper (keys prefixed `_orig_mod.`) load too."""

from __future__ import annotations

import pytest
import torch
from helpers.run_if import RunIf

from optrepro.builders import DataInfo, build_module, build_net
from optrepro.train import run

DIGITS_CNN = ["dataset=digits", "model=small_cnn", "model.width=8"]
DATA = DataInfo(num_classes=10, input_shape=(1, 8, 8), num_train=100, noisy_label_fraction=0.0)


def test_compile_is_in_place_and_keeps_the_state_dict_keys(make_cfg):
    plain = build_net(make_cfg(DIGITS_CNN), DATA)
    compiled = build_net(make_cfg([*DIGITS_CNN, "hardware.compile=true"]), DATA)
    assert type(compiled) is type(plain), "the model itself, not an OptimizedModule wrapper"
    assert compiled._compiled_call_impl is not None and plain._compiled_call_impl is None
    assert list(compiled.state_dict()) == list(plain.state_dict())


def test_weights_saved_from_a_compile_wrapper_load_into_the_plain_model(make_cfg):
    cfg = make_cfg(DIGITS_CNN)
    module = build_module(cfg, build_net(cfg, DATA), DATA)
    wrapper_state = torch.compile(module).state_dict()
    assert all(k.startswith("_orig_mod.") for k in wrapper_state)
    checkpoint = {"state_dict": dict(wrapper_state)}
    module.on_load_checkpoint(checkpoint)
    assert list(checkpoint["state_dict"]) == list(module.state_dict())
    module.load_state_dict(checkpoint["state_dict"])


@pytest.mark.slow
def test_a_compiled_run_trains_on_cpu(make_cfg):
    """Inductor on the CPU needs a C compiler and about a minute; the default suite leaves it out."""
    record = run(make_cfg([*DIGITS_CNN, "debug=smoke", "logger=csv", "hardware.compile=true"]))
    assert record["status"] == "finished"


@RunIf(min_gpus=1)
def test_a_compiled_run_trains_on_gpu(make_cfg):
    record = run(make_cfg([*DIGITS_CNN, "debug=smoke", "logger=csv", "hardware=gpu", "hardware.compile=true"]))
    assert record["status"] == "finished"
