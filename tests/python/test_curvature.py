"""Hessian-vector products and layer blocks of curvnet.Model against PyTorch (float64):
hvp against torch.func's jvp∘grad for every activation with BatchNorm in training mode and
Dropout (the mask curvnet drew), the loss block against torch.autograd.functional.hessian."""
import numpy as np
import pytest
import torch

import curvnet
from torch_oracle import jvp_grad, make_loss

ACTIVATIONS = [("relu", {}), ("leaky_relu", {"slope": 0.2}), ("elu", {"alpha": 0.7}), ("sigmoid", {}),
               ("tanh", {}), ("identity", {}), ("gelu", {}), ("softplus", {})]
P_DROP = 0.25


def build(act, extra, loss="cross_entropy", n_in=5, n_out=3, seed=1):
    # Dropout after BatchNorm: its input is non-zero, so the mask reads off its output
    layers = [{"type": "linear", "out": 6}, {"type": "batchnorm"}, {"type": "dropout", "p": P_DROP},
              {"type": act, **extra}, {"type": "linear", "out": 4}, {"type": act, **extra},
              {"type": "linear", "out": n_out}]
    model = curvnet.Model(layers=layers, n_inputs=n_in, loss=loss, dtype="float64", seed=seed,
                          overrides={"model.init": "xavier_normal", "model.bias_init": "plain_uniform"})
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((12, n_in))
    if loss == "cross_entropy":
        y = (np.arange(12) % n_out).astype(np.float64)
    elif loss == "mse":
        y = rng.standard_normal((12, n_out))
    else:
        y = (rng.random((12, n_out)) < 0.5).astype(np.float64)
    return model, layers, x, y


def dropout_masks(model, layers, x, step):
    """The masks curvnet used at `step`: a Dropout layer's output over its input."""
    outs = model.forward(x, training=True, step=step, all_layers=True)
    masks = {}
    for i, l in enumerate(layers):
        if l["type"] == "dropout":
            before, after = outs[i - 1], outs[i]
            assert np.all(before != 0), "the mask is read where the input is non-zero"
            masks[i] = torch.tensor(after / before)
            kept = masks[i].numpy()
            assert np.allclose(kept[kept != 0], 1 / (1 - P_DROP)) and (kept == 0).any() and (kept != 0).any()
    return masks


def torch_loss(model, layers, x, y, step, loss="cross_entropy"):
    return make_loss(layers, loss, torch.tensor(x), torch.tensor(y), dropout_masks(model, layers, x, step))


@pytest.mark.parametrize("act,extra", ACTIVATIONS, ids=[a for a, _ in ACTIVATIONS])
def test_hvp_equals_jvp_of_grad(act, extra):
    model, layers, x, y = build(act, extra)
    step = 7
    f = torch_loss(model, layers, x, y, step)
    theta = torch.tensor(model.parameters().copy())
    rng = np.random.default_rng(2)
    V = rng.standard_normal((3, model.num_params))
    HV = model.hvp(x, y, V, step=step)
    jvp, grad = jvp_grad()
    for k in range(3):
        _, expected = jvp(grad(f), (theta,), (torch.tensor(V[k]),))
        np.testing.assert_allclose(HV[k], expected.numpy(), rtol=0, atol=1e-10 * max(1.0, np.abs(expected.numpy()).max()))
    # one direction: the same numbers as row 0 of the batch; the loss agrees too
    np.testing.assert_allclose(model.hvp(x, y, V[0], step=step), HV[0], rtol=0, atol=1e-12)
    assert model.loss(x, y, step=step) == pytest.approx(float(f(theta)), abs=1e-12)
    _, g = model.gradient(x, y, step=step)
    np.testing.assert_allclose(g, grad(f)(theta).numpy(), rtol=0, atol=1e-12)


@pytest.mark.parametrize("loss", ["mse", "bce_logits"])
def test_hvp_other_losses(loss):
    model, layers, x, y = build("tanh", {}, loss=loss)
    f = torch_loss(model, layers, x, y, 0, loss)
    v = np.random.default_rng(4).standard_normal(model.num_params)
    jvp, grad = jvp_grad()
    _, expected = jvp(grad(f), (torch.tensor(model.parameters().copy()),), (torch.tensor(v),))
    np.testing.assert_allclose(model.hvp(x, y, v), expected.numpy(), rtol=0, atol=1e-10)


def test_hvp_differs_with_another_mask():
    """The Dropout mask is keyed by the step: another step is another product (the test above
    would fail if curvnet and the oracle used different masks)."""
    model, layers, x, y = build("tanh", {})
    v = np.ones(model.num_params)
    assert not np.allclose(model.hvp(x, y, v, step=1), model.hvp(x, y, v, step=2))


def test_loss_block_equals_torch_hessian_diagonal_block():
    model, layers, x, y = build("softplus", {})
    step = 3
    f = torch_loss(model, layers, x, y, step)
    H = torch.autograd.functional.hessian(f, torch.tensor(model.parameters().copy())).numpy()
    checked = 0
    for layer in model.layers:
        if layer["n_params"] == 0:
            continue
        o, p = layer["offset"], layer["n_params"]
        block = model.hessian_block(x, y, layer["index"], "loss", step=step)
        np.testing.assert_allclose(block, H[o:o + p, o:o + p], rtol=0, atol=1e-10)
        diag = model.hessian_block(x, y, layer["index"], "diag", step=step)
        np.testing.assert_allclose(diag, np.diag(H)[o:o + p], rtol=0, atol=1e-10)
        checked += 1
    assert checked == 4
    full = model.hessian_block(x, y, None, "full_top", step=step)
    np.testing.assert_allclose(full, H, rtol=0, atol=1e-10)


def test_every_kind_has_a_block_and_ggn_is_psd():
    model, layers, x, y = build("tanh", {})
    shapes = {}
    for kind in curvnet.CURVATURE_KINDS:
        layer = None if kind == "full_top" else 4  # Linear -> tanh: every kind applies
        shapes[kind] = model.hessian_block(x, y, layer, kind).shape
    p = model.layers[4]["n_params"]
    assert shapes == {"loss": (p, p), "local": (p, p), "ggn": (p, p), "kfac": (p, p), "diag": (p,),
                      "fisher_diag": (p,), "full_top": (model.num_params, model.num_params)}
    # a kind without a closed form here says so: the local Hessian of a Linear followed by BatchNorm
    with pytest.raises(ValueError, match="local: Linear followed by BatchNorm"):
        model.hessian_block(x, y, 0, "local")
    ggn = model.hessian_block(x, y, 6, "ggn")
    assert np.linalg.eigvalsh(ggn).min() > -1e-12 * np.abs(ggn).max()


def test_spectrum_rows_match_metrics_of_the_block():
    model = curvnet.Model({"data": {"dataset": "spirals", "n_samples": 200},
                           "model": {"hidden": [6], "activation": "tanh"}}, dtype="float64")
    x, y = model.data("train", 64)
    spec = model.spectrum(x, y, kinds=["loss", "local"])
    rows = spec.rows
    assert set(rows.kind) == {"loss", "local"} and set(rows.layer) == {0, 2}
    for layer in (0, 2):
        ev = np.linalg.eigvalsh(model.hessian_block(x, y, layer, "loss"))
        np.testing.assert_allclose(spec.eigenvalues(layer, "loss"), ev, rtol=0, atol=1e-12)
        m = curvnet.metrics(ev)
        row = rows[(rows.layer == layer) & (rows.kind == "loss")].iloc[0]
        assert row.trace == pytest.approx(ev.sum(), abs=1e-12)
        assert row.lambda_max == pytest.approx(m["lambda_max"]) and row["rank"] == m["rank"]
    # the iterative path with the CLI's options
    it = model.spectrum(x, y, kinds=["loss"], layers=[0], dense_max_params=4, lanczos_k=3, probes=4)
    assert it.rows.method.iloc[0].startswith("lanczos")
    assert it.rows.lambda_max.iloc[0] == pytest.approx(spec.eigenvalues(0).max(), rel=1e-6)


def test_metrics_closed_form():
    m = curvnet.metrics([3.0, -1.0, 0.0, 2.0])
    assert m["trace"] == 4.0 and m["lambda_max"] == 3.0 and m["lambda_min"] == -1.0
    assert m["rank"] == 3 and m["near_zero_share"] == 0.25 and m["negative_share"] == 0.25
    assert m["condition"] == 3.0 and m["effective_rank"] == pytest.approx(2.0)
    assert m["logdet"] is None and m["logdet_status"]
