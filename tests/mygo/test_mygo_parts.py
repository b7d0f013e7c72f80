"""Augmentation specs, TTA views, ensembles, the submission check and the shared CNN factory."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stages.common.cnn import CNNConfig, ConvNet, build_model, count_parameters, torchvision_model
from stages.common.io import DataError
from stages.common.params import ParamsError
from stages.mygo import augment, config, ensemble, package


def test_augment_specs():
    assert augment.parse("hflip", 32)[0] == "RandomHorizontalFlip"
    name, t = augment.parse("resized_crop(scale=(0.3, 1.0))", 32)
    assert name == "RandomResizedCrop" and t.scale == (0.3, 1.0) and t.size == (32, 32)
    assert augment.parse("RandomPosterize(bits=4)", 32)[0] == "RandomPosterize"
    with pytest.raises(ParamsError, match="unknown augmentation"):
        augment.parse("sharpen_more", 32)
    with pytest.raises(ParamsError, match="bad arguments"):
        augment.parse("rotate(30)", 32)
    mean, std = torch.full((3,), 0.5), torch.full((3,), 0.25)
    tf = augment.train_transform(["hflip", "crop", "trivial_augment", "erasing"], 16, mean, std)
    out = tf(torch.randint(0, 256, (3, 16, 16), dtype=torch.uint8))
    assert out.shape == (3, 16, 16) and out.dtype == torch.float32
    mix = augment.batch_mix(10, 0.2, 0.2)
    _, y = mix(torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 2, 3]))
    assert y.shape == (4, 10) and torch.allclose(y.sum(1), torch.ones(4))
    assert augment.batch_mix(10, 0, 0) is None


def test_tta_views():
    assert augment.check_views(["hflip", "identity", "hflip", "zoom"]) == ["identity", "hflip", "zoom"]
    with pytest.raises(ParamsError, match="unknown TTA view"):
        augment.check_views(["rot90"])
    x = torch.arange(2 * 3 * 16 * 16, dtype=torch.float32).reshape(2, 3, 16, 16)
    for name in augment.TTA_VIEWS:
        assert augment.view(x, name).shape == x.shape
    assert torch.equal(augment.view(x, "hflip"), x.flip(-1))
    assert torch.equal(augment.view(x, "shift_right")[..., 1:], x[..., :-1])


def test_ensemble_combination():
    a = np.array([[3.0, 0, 0], [0, 2, 0], [0, 0, 1]])
    b = np.array([[0, 3.0, 0], [0, 2, 0], [1, 0, 0]])
    c = np.array([[0, 2.5, 0], [5, 0, 0], [1, 0, 0]])
    assert ensemble.combine([a, b, c], "majority_vote").tolist() == [1, 1, 0]
    assert ensemble.combine([a, b, c], "logit_sum").tolist()[1] == 0  # c's confident vote wins the sum
    # a 1-1 tie between two members goes to the larger logit sum
    assert (
        ensemble.combine([a, b], "majority_vote").tolist()[0] == 0
        or ensemble.combine([a, b], "majority_vote").tolist()[0] == 1
    )
    views = np.stack([a, a, b])
    assert ensemble.tta(views).shape == (3, 3)


def test_submission_check():
    s, classes = config.SubmissionParams(), ["x", "y"]
    package.check_submission("id,label\n1,0\n2,1\n", ["1", "2"], classes, s)
    with pytest.raises(DataError, match="do not match"):
        package.check_submission("id,label\n1,0\n", ["1", "2"], classes, s)
    with pytest.raises(DataError, match="more than once"):
        package.check_submission("id,label\n1,0\n1,0\n", ["1"], classes, s)
    with pytest.raises(DataError, match="outside"):
        package.check_submission("id,label\n1,2\n", ["1"], classes, s)


def test_convnet_shapes():
    model = ConvNet(7, CNNConfig(width=8, depth=3, convs_per_block=2, dropout=0.1))
    assert model(torch.randn(2, 3, 24, 40)).shape == (2, 7)
    assert ConvNet(2, CNNConfig(width=4, depth=1), in_channels=1)(torch.randn(1, 1, 8, 8)).shape == (1, 2)
    with pytest.raises(ParamsError):
        ConvNet(2, CNNConfig(kernel_size=4))


def test_torchvision_by_name_and_local_weights(tmp_path):
    model = torchvision_model("resnet18", 10, small_input=True)
    assert model.fc.out_features == 10 and model.conv1.stride == (1, 1)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    # "pretrained" weights from a local file (made here: nothing is downloaded in tests)
    source = torchvision_model("resnet18", 1000)
    torch.save(source.state_dict(), tmp_path / "r18.pth")
    loaded = build_model("resnet18", 5, weights=str(tmp_path / "r18.pth"))
    assert torch.equal(loaded.layer1[0].conv1.weight, source.layer1[0].conv1.weight)
    assert loaded.fc.out_features == 5
    with pytest.raises(DataError, match="not found"):
        build_model("resnet18", 5, weights=str(tmp_path / "missing.pth"))
    with pytest.raises(ParamsError, match="unknown architecture"):
        build_model("resnet9000", 5)
    assert count_parameters(build_model("cnn", 3, CNNConfig(width=4, depth=1))) > 0


@pytest.mark.parametrize("arch", ["efficientnet_b0", "mobilenet_v3_small"])
def test_other_torchvision_heads(arch):
    model = torchvision_model(arch, 4)
    model.eval()
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 4)
