"""fp32 linears through oneDNN while decoding: same values up to rounding, training untouched."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from llmos_grammar.engines.onednn import available, use_onednn_linears  # noqa: E402

pytestmark = pytest.mark.skipif(not available(), reason="this PyTorch has no oneDNN")


def model() -> object:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(64, 96), torch.nn.SiLU(), torch.nn.Linear(96, 32, bias=False)
    )


def test_decoding_goes_through_onednn_with_the_same_values(monkeypatch: pytest.MonkeyPatch) -> None:
    net = model()
    x = torch.randn(1, 7, 64)
    with torch.inference_mode():
        reference = net(x)
    assert use_onednn_linears(net) == 2
    calls = []
    fused = torch.ops.mkldnn._linear_pointwise

    def counted(*args: object) -> object:
        calls.append(args)
        return fused(*args)

    monkeypatch.setattr(torch.ops.mkldnn, "_linear_pointwise", counted)
    with torch.inference_mode():
        out = net(x)
    assert len(calls) == 2
    assert torch.allclose(out, reference, atol=1e-5, rtol=1e-5)


def test_training_and_other_dtypes_keep_nn_linear() -> None:
    net = model()
    x = torch.randn(3, 64, requires_grad=True)
    reference = net(x)
    use_onednn_linears(net)
    use_onednn_linears(net)  # a second call changes nothing
    out = net(x)
    assert torch.equal(out, reference)  # outside inference mode: nn.Linear itself
    out.sum().backward()
    assert x.grad is not None and net[0].weight.grad is not None
    half = model().to(torch.bfloat16)
    assert use_onednn_linears(half) == 0
