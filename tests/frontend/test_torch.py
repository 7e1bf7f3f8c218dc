"""The PyTorch frontend: a torch.nn.Module is exported through torch.onnx and compiled; its own output is the
reference."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

import woodpecker  # noqa: E402


class SmallNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 24, 3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(24)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(24 * 4 * 4, 10)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = self.pool(torch.relu(self.bn2(self.conv2(x))))
        return self.fc(torch.flatten(x, 1))


def _randomize_batchnorm(module: nn.Module, seed: int) -> None:
    """Fresh BatchNorm layers are the identity; give them statistics so that folding them is actually tested."""
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            with torch.no_grad():
                m.weight.copy_(torch.rand(c, generator=g) + 0.5)
                m.bias.copy_(torch.randn(c, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(c, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(c, generator=g) + 0.5)


def test_conv_bn_relu_pool_linear():
    torch.manual_seed(0)
    module = SmallNet().eval()
    _randomize_batchnorm(module, 1)
    x = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = module(x).numpy()
    compiled = woodpecker.compile(module, example_inputs=(x,))
    got = compiled.run({"input": x.numpy()})
    assert list(got) == [compiled.outputs[0].name]
    (out,) = got.values()
    assert out.shape == expected.shape == (1, 10)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)  # BatchNorm folded into the weights


class TwoInputs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(8, 8)
        self.norm = nn.LayerNorm(8)

    def forward(self, a, b):
        h = self.norm(self.proj(a) + b)
        return torch.softmax(h @ h.transpose(-1, -2) / 8**0.5, dim=-1)


def test_two_inputs_layernorm_softmax():
    torch.manual_seed(0)
    module = TwoInputs().eval()
    g = torch.Generator().manual_seed(3)
    a, b = torch.randn(2, 5, 8, generator=g), torch.randn(2, 5, 8, generator=g)
    with torch.no_grad():
        expected = module(a, b).numpy()
    compiled = woodpecker.compile(module, example_inputs=(a, b))
    assert [t.name for t in compiled.inputs] == ["input0", "input1"]
    (out,) = compiled.run({"input0": a.numpy(), "input1": b.numpy()}).values()
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)


def test_module_without_example_inputs():
    from woodpecker.errors import ModelLoadError

    with pytest.raises(ModelLoadError, match="example_inputs"):
        woodpecker.compile(SmallNet().eval())
