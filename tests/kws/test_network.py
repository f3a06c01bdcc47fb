"""The numpy forward pass (what the .eim runs) against the torch network (what training runs)."""

from __future__ import annotations

import numpy as np
import pytest
from kws_helpers import random_model, windows_of_speechlike

from kwtrain.mfcc.features import Mfcc
from kwtrain.mfcc.network import forward

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("channels", [(8, 16), (5, 7, 9)])
def test_numpy_forward_equals_torch(channels: tuple[int, ...]) -> None:
    from kwtrain.mfcc.train import build_torch_net

    model = random_model(channels)
    net = build_torch_net(model.net).eval()
    net.load_state_dict({k: torch.from_numpy(v) for k, v in model.weights.items()})
    feats = Mfcc().flat(windows_of_speechlike(6))
    with torch.no_grad():
        expected = torch.softmax(net(torch.from_numpy(feats)), 1).numpy()
    got = forward(model.net, model.weights, feats)
    assert got.shape == (6, 3)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert np.ptp(got[:, 0]) > 0.01, "scores differ between inputs: the test can fail"
    np.testing.assert_allclose(forward(model.net, model.weights, feats[2]), got[2], atol=1e-6)


def test_parameter_names_and_count_match_studios_network() -> None:
    from kwtrain.mfcc.train import build_torch_net

    net = build_torch_net(random_model().net)
    shapes = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert shapes == {
        "conv1.weight": (8, 13, 3),
        "conv1.bias": (8,),
        "conv2.weight": (16, 8, 3),
        "conv2.bias": (16,),
        "dense.weight": (3, 13 * 16),  # 50 frames -> 25 -> 13 after two 'same' pools
        "dense.bias": (3,),
    }
