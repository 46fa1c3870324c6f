"""Unstructured magnitude pruning: exact counts, ties, schedules, sparse storage."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

from tunelab.compress.prune import (
    apply_masks_,
    count_nonzero_params,
    dense_state_dict,
    magnitude_masks,
    prunable_weights,
    prune_magnitude_,
    sparse_state_dict,
    sparsity_schedule,
    weight_sparsity,
)
from tunelab.errors import ModelError, TunelabError


def _weights(seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(7, 5, generator=g), torch.randn(3, 4, 3, generator=g), torch.randn(11, generator=g)]


@pytest.mark.parametrize("sparsity", [0.0, 0.1, 0.5, 0.9, 0.95, 0.999])
def test_global_masks_zero_exactly_the_rounded_count_of_smallest(sparsity):
    ws = _weights()
    masks = magnitude_masks(ws, sparsity, "global")
    n = sum(w.numel() for w in ws)
    k = int(sparsity * n + 0.5)
    assert sum(int((~m).sum()) for m in masks) == k
    # Reference: the k smallest magnitudes of the concatenation are the pruned ones.
    flat = torch.cat([w.abs().flatten() for w in ws])
    pruned = torch.cat([(~m).flatten() for m in masks])
    if 0 < k < n:
        assert flat[pruned].max() <= flat[~pruned].min()
    assert [m.shape for m in masks] == [w.shape for w in ws] and all(m.dtype == torch.bool for m in masks)


def test_layerwise_masks_prune_each_tensor_by_its_own_count():
    ws = _weights()
    masks = magnitude_masks(ws, 0.5, "layerwise")
    for w, m in zip(ws, masks, strict=True):
        assert int((~m).sum()) == int(0.5 * w.numel() + 0.5)
        assert w.abs()[~m].max() <= w.abs()[m].min()


def test_ties_still_give_the_exact_count_deterministically():
    ws = [torch.ones(10), torch.ones(6, 2)]  # 22 equal magnitudes
    a = magnitude_masks(ws, 0.5, "global")
    b = magnitude_masks(ws, 0.5, "global")
    assert sum(int((~m).sum()) for m in a) == 11
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_previous_masks_are_never_revived():
    # A weight pruned earlier (now trained back to a large value by a stray update) stays pruned,
    # and a weight that is zero but was never pruned does not take its place.
    w = [torch.tensor([5.0, 0.0, 1.0, 2.0, 3.0, 4.0])]
    prev = [torch.tensor([False, True, True, True, True, True])]
    m = magnitude_masks(w, 2 / 6, "global", previous=prev)[0]
    assert m.tolist() == [False, False, True, True, True, True]


def test_mask_errors_name_the_problem():
    with pytest.raises(TunelabError, match=r"sparsity must be in \[0, 1\)"):
        magnitude_masks(_weights(), 1.0)
    with pytest.raises(TunelabError, match="scope must be"):
        magnitude_masks(_weights(), 0.5, "per_layer")  # type: ignore[arg-type]
    with pytest.raises(ModelError):
        magnitude_masks([], 0.5)


def test_apply_masks_float_and_bool():
    w = [torch.tensor([1.0, -2.0, 3.0]), torch.tensor([[4.0, 5.0]])]
    apply_masks_(w, [torch.tensor([1.0, 0.0, 1.0]), torch.tensor([[False, True]])])
    assert w[0].tolist() == [1.0, 0.0, 3.0] and w[1].tolist() == [[0.0, 5.0]]
    with pytest.raises(TunelabError):
        apply_masks_(w, [torch.ones(3)])


def test_cubic_schedule_is_zhu_and_gupta():
    final, initial = 0.9, 0.1
    for p in (0.0, 0.2, 0.5, 0.8, 1.0):
        expected = final + (initial - final) * (1 - p) ** 3
        assert sparsity_schedule(p, final, "cubic", initial) == pytest.approx(expected)
    values = [sparsity_schedule(i / 10, 0.9) for i in range(11)]
    assert values == sorted(values) and values[0] == 0.0 and values[-1] == pytest.approx(0.9)
    # Cubic prunes more early than linear (fast while redundancy is plentiful).
    assert sparsity_schedule(0.3, 0.9) > sparsity_schedule(0.3, 0.9, "linear")
    with pytest.raises(TunelabError):
        sparsity_schedule(0.5, 0.9, "exponential")  # type: ignore[arg-type]


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv1d(2, 4, 3), nn.BatchNorm1d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6, 5), nn.Linear(5, 3)
    )


def test_prunable_weights_are_linear_and_conv_weights_only():
    assert [n for n, _ in prunable_weights(_net())] == ["0.weight", "4.weight", "5.weight"]


def test_prune_magnitude_in_place_keeps_the_state_dict_keys():
    net = _net()
    keys = list(net.state_dict())
    masks = prune_magnitude_(net, 0.8)
    n = 2 * 4 * 3 + 24 * 5 + 5 * 3  # 159 prunable weights
    assert weight_sparsity(net) == {"weights": n, "zeros": int(0.8 * n + 0.5), "sparsity": 127 / n}
    assert list(net.state_dict()) == keys and set(masks) == {"0.weight", "4.weight", "5.weight"}
    assert not any("orig" in k or "mask" in k for k in net.state_dict())
    assert all(not hasattr(m, "_forward_pre_hooks") or not m._forward_pre_hooks for m in net.modules())
    with pytest.raises(ModelError, match="no Linear or Conv"):
        prune_magnitude_(nn.Sequential(nn.ReLU()), 0.5)


def test_count_nonzero_params_counts_hand_made_zeros():
    net = nn.Linear(4, 3)  # 12 weights + 3 biases
    with torch.no_grad():
        net.weight.zero_()
        net.weight[0, 0] = 1.0
        net.bias.copy_(torch.tensor([0.0, 2.0, 3.0]))
    assert count_nonzero_params(net) == {"params": 15, "nonzero": 3}


def test_sparse_state_dict_round_trip_and_is_smaller():
    net = _net()
    prune_magnitude_(net, 0.95)
    sd = net.state_dict()
    packed = sparse_state_dict(sd)
    assert packed["state_dict"]["4.weight"].layout == torch.sparse_csr  # 2-D, 95% zeros
    assert packed["state_dict"]["0.weight"].layout == torch.sparse_csr  # 3-D kernel viewed [out, -1]
    assert packed["state_dict"]["1.running_mean"].layout == torch.strided  # 1-D stays dense

    def size(obj):
        buf = io.BytesIO()
        torch.save(obj, buf)
        return buf.getbuffer().nbytes, buf

    dense_bytes, _ = size(sd)
    sparse_bytes, buf = size(packed)
    big = nn.Linear(200, 100)
    prune_magnitude_(big, 0.95)
    assert size(sparse_state_dict(big.state_dict()))[0] < size(big.state_dict())[0] / 4
    buf.seek(0)
    loaded = torch.load(buf, weights_only=True)  # plain torch can read it
    fresh = _net()
    fresh.load_state_dict(dense_state_dict(loaded))
    for k, v in sd.items():
        assert torch.equal(fresh.state_dict()[k], v)
    assert sparse_bytes < dense_bytes * 1.5  # tiny tensors: headers dominate, never a blow-up


def test_dense_tensor_stays_dense_when_csr_would_be_larger():
    sd = {"w": torch.randn(16, 16)}  # no zeros
    assert sparse_state_dict(sd)["state_dict"]["w"].layout == torch.strided
