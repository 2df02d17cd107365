"""Arrays go in without a copy or not at all: a wrong dtype or a non-contiguous array is a
TypeError naming the argument and what was expected, a wrong shape a ValueError; the
parameter views share the model's memory."""
import numpy as np
import pytest

import curvnet


@pytest.fixture(scope="module")
def model():
    return curvnet.Model(layers=[{"type": "linear", "out": 5}, "tanh", {"type": "linear", "out": 3}], n_inputs=4,
                         dtype="float64")


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    return rng.standard_normal((6, 4)), (np.arange(6) % 3).astype(np.float64)


def test_wrong_dtype_names_the_argument(model, batch):
    x, y = batch
    with pytest.raises(TypeError, match=r"^x: expected dtype float64 .*got float32"):
        model.loss(x.astype(np.float32), y)
    with pytest.raises(TypeError, match=r"^y: expected dtype float64 .*got int64"):
        model.gradient(x, np.arange(6))
    with pytest.raises(TypeError, match=r"^v: expected dtype float64"):
        model.hvp(x, y, np.ones(model.num_params, dtype=np.float32))
    with pytest.raises(TypeError, match=r"^x: expected a numpy.ndarray of float64, got list"):
        model.forward(x.tolist())


def test_non_contiguous_names_the_argument(model, batch):
    x, y = batch
    with pytest.raises(TypeError, match=r"^x: expected a C-contiguous array"):
        model.forward(np.asfortranarray(x))
    wide = np.zeros((6, 8))
    with pytest.raises(TypeError, match=r"^x: expected a C-contiguous array"):
        model.hvp(wide[:, ::2], y, np.ones(model.num_params))
    V = np.ones((2, 2 * model.num_params))
    with pytest.raises(TypeError, match=r"^v: expected a C-contiguous array"):
        model.hvp(x, y, V[:, ::2])


def test_wrong_shape_names_the_argument(model, batch):
    x, y = batch
    with pytest.raises(ValueError, match=r"^x: expected shape \(N, 4\)"):
        model.loss(x[:, :3].copy(), y)
    with pytest.raises(ValueError, match=r"^y: expected shape \(6,\)"):
        model.loss(x, y[:5].copy())
    with pytest.raises(ValueError, match=rf"^v: expected shape \({model.num_params},\) or \(k, {model.num_params}\)"):
        model.hvp(x, y, np.ones(model.num_params + 1))
    with pytest.raises(ValueError, match=r"^out: expected shape"):
        model.hvp(x, y, np.ones(model.num_params), out=np.empty(3))
    with pytest.raises(IndexError, match=r"^layer: expected"):
        model.hessian_block(x, y, 9, "loss")
    with pytest.raises(ValueError, match=r"^kind: expected one of"):
        model.hessian_block(x, y, 0, "hessian")


def test_the_engine_itself_never_converts(model, batch):
    """The second guard: the compiled module refuses what the wrapper would have (nanobind's
    .noconvert()), so no path copies a batch silently."""
    x, y = batch
    with pytest.raises(TypeError):
        model._m.loss(x.astype(np.float32), y, True, 0)
    with pytest.raises(TypeError):
        model._m.loss(np.asfortranarray(x), y, True, 0)


def test_parameters_are_views(model, batch):
    x, _ = batch
    ro = model.parameters()
    assert not ro.flags.writeable and not ro.flags.owndata
    with pytest.raises(ValueError):
        ro[0] = 1.0
    rw = model.parameters(writable=True)
    before = model.forward(x)
    w = model.layer_parameters(2, writable=True)["2.weight"]
    assert w.shape == (3, 5) and np.shares_memory(w, rw)
    saved = rw.copy()
    w[:] = 0.0
    b = model.layer_parameters(2)["2.bias"]
    np.testing.assert_array_equal(model.forward(x), np.broadcast_to(b, (6, 3)))  # zero weights: the bias
    assert ro[model.layers[2]["offset"]] == 0.0  # the read-only view sees the change too
    model.set_parameters(saved)
    np.testing.assert_array_equal(model.forward(x), before)


def test_hvp_out_and_k_directions(model, batch):
    x, y = batch
    V = np.random.default_rng(1).standard_normal((4, model.num_params))
    out = np.empty_like(V)
    res = model.hvp(x, y, V, out=out)
    assert res is out
    for k in range(4):
        np.testing.assert_allclose(model.hvp(x, y, V[k].copy()), out[k], rtol=0, atol=1e-12)
    dl = model.hvp(x, y, V, keep_on_device=True)  # DLPack (on the CPU backend: host memory)
    np.testing.assert_allclose(np.from_dlpack(dl) if hasattr(np, "from_dlpack") else np.asarray(dl), out,
                               rtol=0, atol=1e-12)
