from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import ElasticNet as SkElasticNet
from torch import nn

from tunelab.errors import RecipeError
from tunelab.methods import METHODS
from tunelab.methods.regularization import L1, L2, ElasticNet, elastic_net_penalty, l1_penalty, l2_penalty

# Σ|w| = 1 + 2 + 3 + 4 = 10 and Σw² = 1 + 4 + 9 + 16 = 30.
PARAMS = [torch.tensor([1.0, -2.0]), torch.tensor([[3.0, -4.0]])]


def test_closed_form_values():
    assert l1_penalty(PARAMS, 0.1).item() == pytest.approx(0.1 * 10)
    assert l2_penalty(PARAMS, 0.1).item() == pytest.approx(0.1 / 2 * 30)
    assert elastic_net_penalty(PARAMS, 0.1, 0.3).item() == pytest.approx(0.1 * (0.3 * 10 + 0.7 / 2 * 30))
    assert l2_penalty(PARAMS, 0.0).item() == 0.0


def test_gradients():
    w = torch.tensor([[0.5, -1.5], [2.0, -0.25]], requires_grad=True)
    (g2,) = torch.autograd.grad(l2_penalty([w], 0.3), w)
    torch.testing.assert_close(g2, 0.3 * w.detach())
    (g1,) = torch.autograd.grad(l1_penalty([w], 0.3), w)
    torch.testing.assert_close(g1, 0.3 * torch.sign(w.detach()))


def test_elastic_net_reduces_to_l1_and_l2():
    torch.testing.assert_close(elastic_net_penalty(PARAMS, 0.2, 1.0), l1_penalty(PARAMS, 0.2))
    torch.testing.assert_close(elastic_net_penalty(PARAMS, 0.2, 0.0), l2_penalty(PARAMS, 0.2))
    with pytest.raises(ValueError):
        elastic_net_penalty(PARAMS, 0.2, 1.5)
    with pytest.raises(ValueError):
        l2_penalty([], 0.1)


def test_elastic_net_matches_sklearn_objective():
    # scikit-learn minimizes 1/(2n)·||y − Xw||² + alpha·(l1_ratio·|w|₁ + (1 − l1_ratio)/2·|w|²).
    # If our penalty has the same convention, sklearn's solution satisfies the optimality (KKT)
    # conditions of data term + elastic_net_penalty: zero gradient on the nonzero coefficients,
    # and a data gradient within the L1 subgradient bound on the zero ones.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 8))
    y = x @ np.array([3.0, -2.0, 0.0, 0.0, 1.5, 0.0, 0.1, 0.0]) + 0.1 * rng.normal(size=200)
    alpha, l1_ratio = 0.2, 0.4
    sk = SkElasticNet(alpha=alpha, l1_ratio=l1_ratio, fit_intercept=False, tol=1e-12, max_iter=100_000)
    sk.fit(x, y)
    w = torch.tensor(sk.coef_, requires_grad=True)
    xt, yt = torch.tensor(x), torch.tensor(y)
    data = ((yt - xt @ w) ** 2).sum() / (2 * len(y))
    (g_data,) = torch.autograd.grad(data, w, retain_graph=True)
    (g_total,) = torch.autograd.grad(data + elastic_net_penalty([w], alpha, l1_ratio), w)
    nonzero = w.detach() != 0
    assert nonzero.sum() >= 3 and (~nonzero).sum() >= 1  # both kinds of coordinates are checked
    assert g_total[nonzero].abs().max() < 1e-6
    assert (g_data[~nonzero].abs() <= alpha * l1_ratio + 1e-6).all()


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))


@pytest.mark.parametrize("cls", [L1, L2, ElasticNet])
def test_biases_and_norm_excluded_by_default(cls, state_factory):
    model = _mlp()
    m = cls()
    m.setup(state_factory(model))
    assert [id(p) for p in m.params] == [id(model[0].weight), id(model[2].weight)]
    m_all = cls(include_bias_and_norm=True)
    m_all.setup(state_factory(model))
    assert len(m_all.params) == len(list(model.parameters())) == 6


def test_adapter_adds_penalty_to_loss(state_factory):
    model = _mlp()
    m = L2(weight=0.01)
    m.setup(state_factory(model))
    base = torch.tensor(1.5)
    expected = 1.5 + 0.01 / 2 * (model[0].weight.pow(2).sum() + model[2].weight.pow(2).sum())
    torch.testing.assert_close(m.loss(None, base, None, None), expected)  # type: ignore[arg-type]


def test_l2_penalty_step_equals_sgd_weight_decay():
    lam, lr = 0.05, 0.1
    torch.manual_seed(1)
    a = nn.Linear(5, 3)
    b = nn.Linear(5, 3)
    b.load_state_dict(a.state_dict())
    x, y = torch.randn(16, 5), torch.randn(16, 3)
    opt_a = torch.optim.SGD(a.parameters(), lr=lr, momentum=0.9)
    opt_b = torch.optim.SGD(b.parameters(), lr=lr, momentum=0.9, weight_decay=lam)
    for _ in range(3):  # with momentum, equality over several steps is the stronger claim
        opt_a.zero_grad()
        (nn.functional.mse_loss(a(x), y) + l2_penalty(a.parameters(), lam)).backward()
        opt_a.step()
        opt_b.zero_grad()
        nn.functional.mse_loss(b(x), y).backward()
        opt_b.step()
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa, pb)


def test_model_without_weight_matrices_raises(state_factory):
    model = nn.BatchNorm1d(4)  # only 1-d parameters: the default rule penalizes nothing
    with pytest.raises(RecipeError) as e:
        L2().setup(state_factory(model))
    assert e.value.path == "methods.l2.include_bias_and_norm"
    m = L2(include_bias_and_norm=True)
    m.setup(state_factory(model))
    assert len(m.params) == 2


def test_recipe_parameters_are_checked():
    entry = METHODS.get("elastic_net")
    assert entry.check({"weight": "1e-3", "l1_ratio": 1}, "methods.elastic_net") == {
        "weight": 1e-3,
        "l1_ratio": 1.0,
    }
    with pytest.raises(RecipeError) as e:
        entry.check({"l1_ratio": 1.5}, "methods.elastic_net")
    assert e.value.path == "methods.elastic_net.l1_ratio"
    with pytest.raises(RecipeError) as e:
        METHODS.get("l2").check({"weight": -1}, "methods.l2")
    assert e.value.path == "methods.l2.weight"


def test_soft_threshold_is_the_l1_proximal_operator():
    from tunelab.methods.regularization import soft_threshold_

    w = torch.tensor([0.5, -0.05, -2.0, 0.1])
    soft_threshold_([w], 0.1)
    assert torch.equal(w, torch.tensor([0.4, 0.0, -1.9, 0.0]))


def test_proximal_l1_with_gd_reaches_the_lasso_solution():
    """Full-batch GD + soft-thresholding on an MSE loss is ISTA; its fixed point is scikit-learn's
    Lasso with alpha = weight / 2 (Lasso's data term is 1/(2n)·||y − Xw||², tunelab's is the MSE)."""
    from sklearn.linear_model import Lasso

    import tunelab

    weight = 0.1
    r = tunelab.fit(
        {
            "data": {"name": "diabetes"},
            "model": {"name": "linear"},
            "optimizer": {"name": "gd", "lr": 0.2},
            "train": {"epochs": 3000, "efficiency": False, "tensorboard": False},
            "methods": [{"name": "l1", "weight": weight, "proximal": True}],
        },
        save=False,
    )
    data = tunelab.load_data(tunelab.load_recipe({"data": {"name": "diabetes"}}).data)
    ref = Lasso(alpha=weight / 2).fit(data.x_train.numpy(), data.y_train.numpy().ravel())
    layer = next(m for m in r.model.modules() if isinstance(m, nn.Linear))
    coef = layer.weight.detach().numpy().ravel()
    assert (coef == 0).sum() == (ref.coef_ == 0).sum() > 0  # exact zeros, as many as the lasso
    assert coef == pytest.approx(ref.coef_, abs=2e-3)


def test_proximal_l1_thresholds_each_group_with_its_own_lr(state_factory):
    model = nn.Sequential(nn.Linear(3, 3, bias=False), nn.Linear(3, 1, bias=False))
    state = state_factory(model)
    state.optimizer = torch.optim.SGD(
        [{"params": model[0].parameters(), "lr": 0.1}, {"params": model[1].parameters(), "lr": 1.0}]
    )
    m = L1(weight=0.5, proximal=True)
    m.setup(state)
    with torch.no_grad():
        model[0].weight.fill_(0.1)
        model[1].weight.fill_(0.1)
    m.after_step(state)
    assert torch.allclose(model[0].weight, torch.full((3, 3), 0.05))  # 0.1 - 0.1 * 0.5
    assert torch.equal(model[1].weight, torch.zeros(1, 3))  # 0.1 - 1.0 * 0.5 < 0 -> 0
