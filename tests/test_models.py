"""Model zoo: every config builds through Hydra, shapes and parameter counts match the papers."""

from functools import cache
from itertools import pairwise
from pathlib import Path

import huggingface_hub.constants
import pytest
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import OmegaConf
from sklearn.datasets import load_digits
from torch import nn

from optrepro.errors import ConfigError
from optrepro.models import (
    MLP,
    PretrainedWeightsUnavailableError,
    PyramidNet,
    SmallCNN,
    UnknownTimmModelError,
    WideResNet,
    cifar_resnet18,
    he_cifar_resnet,
    timm_model,
)
from optrepro.models.pyramidnet import pyramid_widths

MODEL_CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs" / "model"
IMAGE_32 = (3, 32, 32)
GRAY_28 = (1, 28, 28)
DIGITS_8 = (1, 8, 8)
MNIST1D = (40,)

# Input shapes each preset must accept (batch 2). CIFAR architectures also take 28x28 (odd sizes
# after downsampling); the 25M+ parameter ones run 32x32 only, to keep the suite fast.
SUPPORTED_SHAPES = {
    "mlp": [IMAGE_32, GRAY_28, DIGITS_8, MNIST1D],
    "small_cnn": [IMAGE_32, GRAY_28, DIGITS_8],
    "resnet18": [IMAGE_32, GRAY_28],
    "resnet32": [IMAGE_32, GRAY_28],
    "resnet56": [IMAGE_32],
    "wrn16_8": [IMAGE_32, GRAY_28],
    "wrn28_10": [IMAGE_32],
    "pyramidnet110": [IMAGE_32],
    "pyramidnet272": [IMAGE_32],
    "timm": [IMAGE_32],
}

# Published parameter counts (10 classes), in millions.
# PyramidNet: Han et al. 2017 Table 4 rounds counts that exclude BatchNorm parameters; the exact
# counts below equal those of the independent imgclsmob/pytorchcv ports of the authors' models
# (28,485,477 and 26,210,842), and the bottleneck count without BN is 25.999978M.
PUBLISHED_MILLIONS = {
    "wrn28_10": 36.5,  # Zagoruyko & Komodakis 2016, Table 1
    "wrn16_8": 11.0,  # Zagoruyko & Komodakis 2016, Table 4
    "resnet18": 11.17,  # CIFAR ResNet-18 (3x3 stem), the count SAM-family papers quote
    "resnet32": 0.46,  # He et al. 2016, Table 6
    "resnet56": 0.85,  # He et al. 2016, Table 6
    "pyramidnet110": 28.3,  # alpha 270, basic
    "pyramidnet272": 26.0,  # alpha 200, bottleneck
}

EXACT_COUNTS = {
    "wrn28_10": 36_479_194,
    "wrn16_8": 10_961_370,
    "resnet18": 11_173_962,
    "resnet32": 464_154,
    "resnet56": 853_018,
    "pyramidnet110": 28_485_477,
    "pyramidnet272": 26_210_842,
}


@pytest.fixture(autouse=True, scope="module")
def single_intra_op_thread():
    """Tiny forward passes run 50x slower with 2 OpenMP threads when other processes hold the cores."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def load_model_config(preset: str):
    return OmegaConf.load(MODEL_CONFIG_DIR / f"{preset}.yaml")


def count_parameters(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


@cache
def preset_parameter_count(preset: str) -> int:
    """Parameters of a preset built for 10 classes and 32x32 RGB (built once: the big ones take seconds)."""
    return count_parameters(instantiate(load_model_config(preset), num_classes=10, input_shape=IMAGE_32))


def test_every_config_file_has_a_shape_table_entry():
    presets = {path.stem for path in MODEL_CONFIG_DIR.glob("*.yaml")}
    assert presets == set(SUPPORTED_SHAPES)


@pytest.mark.parametrize("preset", sorted(SUPPORTED_SHAPES))
def test_config_records_its_preset_name(preset):
    config = load_model_config(preset)
    expected_name = "resnet50" if preset == "timm" else preset
    assert config.name == expected_name
    assert config._target_.startswith("optrepro.models.")


@pytest.mark.parametrize(
    ("preset", "input_shape"),
    [
        pytest.param(preset, shape, id=f"{preset}-{'x'.join(map(str, shape))}")
        for preset, shapes in SUPPORTED_SHAPES.items()
        for shape in shapes
    ],
)
def test_config_instantiates_and_gives_logits_per_class(preset, input_shape):
    num_classes = 7
    model = instantiate(load_model_config(preset), num_classes=num_classes, input_shape=input_shape)
    model.eval()
    with torch.no_grad():
        logits = model(torch.randn(2, *input_shape))
    assert logits.shape == (2, num_classes)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("preset", sorted(PUBLISHED_MILLIONS))
def test_parameter_count_matches_published_figure_within_one_percent(preset):
    published = PUBLISHED_MILLIONS[preset] * 1e6
    assert abs(preset_parameter_count(preset) - published) / published < 0.01


@pytest.mark.parametrize(("preset", "expected"), sorted(EXACT_COUNTS.items()))
def test_parameter_count_is_exact(preset, expected):
    assert preset_parameter_count(preset) == expected


def test_pyramidnet_bottleneck_count_without_batchnorm_rounds_to_paper_figure():
    model = PyramidNet(depth=272, alpha=200, bottleneck=True, num_classes=10)
    batchnorm = sum(count_parameters(module) for module in model.modules() if isinstance(module, nn.BatchNorm2d))
    assert round((count_parameters(model) - batchnorm) / 1e6, 1) == 26.0


@pytest.mark.parametrize(
    ("num_blocks", "alpha", "expected_first", "expected_last"),
    [(54, 270, 21, 286), (90, 200, 18, 216), (54, 48, 17, 64)],
)
def test_pyramid_widths_grow_linearly_from_16_to_16_plus_alpha(num_blocks, alpha, expected_first, expected_last):
    widths = pyramid_widths(num_blocks, alpha)
    assert len(widths) == num_blocks
    assert (widths[0], widths[-1]) == (expected_first, expected_last)
    assert all(later >= earlier for earlier, later in pairwise(widths))


@pytest.mark.parametrize(
    ("build", "bad_depth"),
    [
        (lambda depth: WideResNet(depth, 2, 10), 27),
        (lambda depth: he_cifar_resnet(depth, 10), 33),
        (lambda depth: PyramidNet(depth, 48, False, 10), 111),
        (lambda depth: PyramidNet(depth, 48, True, 10), 111),
    ],
)
def test_invalid_depth_names_the_rule(build, bad_depth):
    with pytest.raises(ValueError, match=rf"n\+\d.*got {bad_depth}"):
        build(bad_depth)


def test_he_resnet_uses_parameter_free_option_a_shortcuts():
    """Option A: no 1x1 convolutions anywhere; every conv is a 3x3 in the residual path or the stem."""
    model = he_cifar_resnet(32, 10)
    kernel_sizes = {module.kernel_size for module in model.modules() if isinstance(module, nn.Conv2d)}
    assert kernel_sizes == {(3, 3)}


def test_resnet18_projects_shortcuts_with_1x1_convolutions():
    model = cifar_resnet18(10)
    projections = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1)]
    assert len(projections) == 3


@pytest.mark.parametrize(
    "model",
    [
        pytest.param(SmallCNN(10, 1), id="small_cnn"),
        pytest.param(MLP(10, GRAY_28, batch_norm=True), id="mlp_bn"),
        pytest.param(he_cifar_resnet(20, 10, in_channels=1), id="resnet20"),
        pytest.param(WideResNet(10, 1, 10, in_channels=1), id="wrn10_1"),
        pytest.param(PyramidNet(20, 12, True, 10, in_channels=1), id="pyramidnet20_bottleneck"),
    ],
)
def test_models_contain_batchnorm_for_sam_on(model):
    assert any(isinstance(module, nn.modules.batchnorm._BatchNorm) for module in model.modules())


@pytest.mark.parametrize(
    ("batch_norm", "bias", "expected_parameters"),
    [
        # 40 -> 8 -> 3: weights 320 + 24; biases 8 + 3; BN affine 2 x 8
        (False, True, 320 + 8 + 24 + 3),
        (False, False, 320 + 24),
        (True, True, 320 + 8 + 16 + 24 + 3),
    ],
)
def test_mlp_options_change_its_layers(batch_norm, bias, expected_parameters):
    model = MLP(3, MNIST1D, hidden=(8,), batch_norm=batch_norm, bias=bias)
    assert count_parameters(model) == expected_parameters


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda: SmallCNN(10, 3, width=8), id="small_cnn"),
        pytest.param(lambda: he_cifar_resnet(8, 10), id="resnet8"),
        pytest.param(lambda: WideResNet(10, 1, 10), id="wrn10_1"),  # no dropout: its mask depends on memory format
        pytest.param(lambda: PyramidNet(11, 12, True, 10), id="pyramidnet11_bottleneck"),
        pytest.param(lambda: PyramidNet(8, 12, False, 10), id="pyramidnet8_basic"),
    ],
)
def test_channels_last_training_step_matches_contiguous(build):
    """No view() on non-contiguous tensors: a channels_last forward and backward agree with NCHW. The model is built
    here after seeding (built at collection time, its weights depended on what was collected before it)."""
    torch.manual_seed(0)
    model = build()
    inputs = torch.randn(4, 3, 16, 16)
    model.train()
    torch.manual_seed(1)
    reference = model(inputs)
    reference.sum().backward()
    reference_grads = [parameter.grad.clone() for parameter in model.parameters()]
    model.zero_grad()
    model.to(memory_format=torch.channels_last)
    torch.manual_seed(1)
    logits = model(inputs.to(memory_format=torch.channels_last))
    logits.sum().backward()
    torch.testing.assert_close(logits, reference, rtol=1e-4, atol=1e-4)
    for grad, reference_grad in zip((p.grad for p in model.parameters()), reference_grads):
        torch.testing.assert_close(grad, reference_grad, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize(
    ("model", "input_shape"),
    [
        pytest.param(MLP(10, MNIST1D, batch_norm=True), MNIST1D, id="mlp"),
        pytest.param(SmallCNN(10, 1), DIGITS_8, id="small_cnn"),
        pytest.param(he_cifar_resnet(8, 10), IMAGE_32, id="resnet8"),
        pytest.param(WideResNet(10, 1, 10), IMAGE_32, id="wrn10_1"),
        pytest.param(PyramidNet(11, 12, True, 10), IMAGE_32, id="pyramidnet11"),
    ],
)
def test_models_run_in_float64(model, input_shape):
    model = model.double().train()
    logits = model(torch.randn(3, *input_shape, dtype=torch.float64))
    logits.sum().backward()
    assert logits.dtype == torch.float64
    assert all(parameter.grad.dtype == torch.float64 for parameter in model.parameters())


@pytest.mark.parametrize("preset", ["small_cnn", "resnet18", "wrn28_10", "pyramidnet110", "timm"])
def test_convolutional_models_reject_vector_inputs_with_a_fix(preset):
    with pytest.raises(InstantiationException) as raised:
        instantiate(load_model_config(preset), num_classes=10, input_shape=MNIST1D)
    assert isinstance(raised.value.__cause__, ConfigError)
    assert "(40,)" in str(raised.value.__cause__)
    assert "model=mlp" in str(raised.value.__cause__)


def test_timm_config_name_override_picks_the_architecture():
    """What `model=timm model.name=resnet18` does: the name selects the timm model."""
    config = load_model_config("timm")
    config.name = "resnet18"
    model = instantiate(config, num_classes=5, input_shape=GRAY_28)
    assert model.pretrained_cfg["architecture"] == "resnet18"
    assert model.conv1.in_channels == 1
    assert model(torch.randn(2, *GRAY_28)).shape == (2, 5)


@pytest.mark.parametrize(
    ("misspelled", "expected_suggestion"),
    [("resnet_18", "resnet18"), ("resnt50", "resnet50"), ("vit_tiny_patch16", "vit_tiny_patch16_224")],
)
def test_unknown_timm_name_lists_close_matches(misspelled, expected_suggestion):
    with pytest.raises(UnknownTimmModelError, match=rf"unknown timm model '{misspelled}'") as raised:
        timm_model(misspelled, num_classes=10, input_shape=IMAGE_32)
    suggestions = str(raised.value).split("close matches: ")[1].split(". ")[0].split(", ")
    assert expected_suggestion in suggestions


def test_pretrained_weights_offline_fail_with_instructions(monkeypatch, tmp_path):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(PretrainedWeightsUnavailableError, match="HF_HOME.*pretrained=false"):
        timm_model("resnet18", num_classes=10, input_shape=IMAGE_32, pretrained=True)


@pytest.mark.parametrize(
    "build_model",
    [
        pytest.param(lambda: SmallCNN(10, 1, width=8), id="small_cnn"),
        pytest.param(lambda: MLP(10, DIGITS_8, hidden=(64,), batch_norm=True), id="mlp_bn"),
    ],
)
def test_cpu_tier_models_learn_digits(build_model):
    """The CPU-tier models train from their initialisation: 8x8 digits (bundled with scikit-learn).

    The model is built inside the test after seeding: built at collection time, its initialisation depended on
    which tests were collected before it, and one draw of it landed under the bar.
    """
    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1)
    images = (images - images.mean()) / images.std()
    labels = torch.tensor(digits.target)
    train_images, train_labels = images[:1400], labels[:1400]
    torch.manual_seed(0)
    model = build_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.train()
    for _ in range(3):
        for batch in torch.randperm(1400).split(50):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(train_images[batch]), train_labels[batch]).backward()
            optimizer.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(images[1400:]).argmax(1) == labels[1400:]).float().mean().item()
    assert accuracy > 0.85, accuracy
