#!/usr/bin/env python3
"""curvnet's exact Hessian-vector products against PyTorch's forward-over-reverse
(torch.func.jvp of torch.func.grad; functorch on PyTorch 1.x) on the same network and batch.

    python3 examples/python/hvp_torch.py
"""
import numpy as np
import torch

import curvnet

try:
    from torch.func import grad, jvp
except ImportError:  # PyTorch 1.13
    from functorch import grad, jvp

torch.set_default_dtype(torch.float64)
model = curvnet.Model(layers=[{"type": "linear", "out": 32}, "tanh", {"type": "linear", "out": 32}, "gelu",
                              {"type": "linear", "out": 4}], n_inputs=8, dtype="float64", loss="mse")
rng = np.random.default_rng(0)
x, y = rng.standard_normal((128, 8)), rng.standard_normal((128, 4))
V = rng.standard_normal((4, model.num_params))  # four directions at once
HV = model.hvp(x, y, V)

# The same network in torch as a function of the flat parameter vector, its tensors cut out
# in curvnet's layout (per layer: weight (out × in) row-major, then bias; nn.Sequential names).
params = {k: torch.tensor(v) for k, v in model.state_dict().items()}
names = list(params)
flat0 = torch.tensor(model.parameters().copy())
F = torch.nn.functional


def loss(flat):
    t, off = {}, 0
    for n in names:
        t[n] = flat[off:off + params[n].numel()].view_as(params[n])
        off += params[n].numel()
    h = torch.tanh(F.linear(torch.tensor(x), t["0.weight"], t["0.bias"]))
    h = F.linear(h, t["2.weight"], t["2.bias"])
    h = 0.5 * h * (1 + torch.erf(h / 2 ** 0.5))  # GELU (exact); PyTorch 1.13's forward mode lacks F.gelu's
    z = F.linear(h, t["4.weight"], t["4.bias"])
    return ((z - torch.tensor(y)) ** 2).mean()


worst = 0.0
for k in range(len(V)):
    _, hv = jvp(grad(loss), (flat0,), (torch.tensor(V[k]),))
    worst = max(worst, float(np.abs(hv.numpy() - HV[k]).max() / np.abs(hv.numpy()).max()))
print(f"{model}\nmax relative difference over {len(V)} directions: {worst:.2e}")
assert worst < 1e-10
