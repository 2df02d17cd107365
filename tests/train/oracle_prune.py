#!/usr/bin/env python3
"""The PyTorch oracle for tests/train/test_prune.cpp (float64).

oracle_prune.py saliency DIR: DIR holds spec.txt (first line "n_inputs N_IN", then
"loss mse|cross_entropy", then one "layer TYPE [OUT]" per layer: linear OUT, tanh, relu),
params.txt (curvnet's flat vector: per Linear weight [out, in] row-major, then bias), x.txt,
target.txt. Writes hdiag.txt (the diagonal of torch.autograd.functional.hessian of the mean
loss) and fisher.txt (the mean over samples of each sample's own squared loss gradient).

oracle_prune.py eval RUN_DIR CKPT DIR: builds the torch.nn.Sequential that config.toml's
[model] describes (hidden, activation, batchnorm), loads CKPT/model.safetensors into it with
load_state_dict(strict=True), evaluates it (eval mode) on DIR/x.txt, DIR/y.txt with MSE and
prints the loss."""
import sys

import numpy as np
import torch
import torch.nn.functional as F


def saliency(d):
    torch.set_default_dtype(torch.float64)
    lines = [l.split() for l in open(f"{d}/spec.txt") if l.strip()]
    n_in, loss_kind, layers = int(lines[0][1]), lines[1][1], lines[2:]
    theta0 = torch.tensor(np.atleast_1d(np.loadtxt(f"{d}/params.txt")))
    x = torch.tensor(np.loadtxt(f"{d}/x.txt", ndmin=2))
    t = torch.tensor(np.loadtxt(f"{d}/target.txt", ndmin=1))

    def net(theta, xs):
        h, off, width = xs, 0, n_in
        for l in layers:
            if l[1] == "linear":
                out = int(l[2])
                W = theta[off:off + out * width].view(out, width)
                b = theta[off + out * width:off + out * width + out]
                off += out * width + out
                h, width = h @ W.T + b, out
            elif l[1] == "tanh":
                h = torch.tanh(h)
            elif l[1] == "relu":
                h = torch.relu(h)
            else:
                raise SystemExit(f"unknown layer {l[1]}")
        return h

    def loss(theta, xs, ts):
        z = net(theta, xs)
        if loss_kind == "mse":
            return F.mse_loss(z, ts.view_as(z))
        return F.cross_entropy(z, ts.long())

    H = torch.autograd.functional.hessian(lambda th: loss(th, x, t), theta0)
    np.savetxt(f"{d}/hdiag.txt", torch.diagonal(H).numpy(), fmt="%.17g")
    C = net(theta0, x[:1]).shape[1]
    tt = t.view(x.shape[0], -1) if loss_kind == "mse" else t
    fisher = torch.zeros_like(theta0)
    for n in range(x.shape[0]):
        th = theta0.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(loss(th, x[n:n + 1], tt[n:n + 1].reshape(-1) if loss_kind != "mse" else tt[n:n + 1]), th)
        fisher += g * g
    np.savetxt(f"{d}/fisher.txt", (fisher / x.shape[0]).numpy(), fmt="%.17g")
    assert C > 0


def evaluate(run_dir, ckpt, d):
    import tomllib
    from safetensors.torch import load_file

    torch.set_default_dtype(torch.float64)
    cfg = tomllib.load(open(f"{run_dir}/config.toml", "rb"))
    m = cfg["model"]
    acts = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU}
    x = torch.tensor(np.loadtxt(f"{d}/x.txt", ndmin=2))
    y = torch.tensor(np.loadtxt(f"{d}/y.txt", ndmin=2))
    mods, width = [], x.shape[1]
    for h in m["hidden"]:
        mods.append(torch.nn.Linear(width, h))
        if m.get("batchnorm", False):
            mods.append(torch.nn.BatchNorm1d(h, eps=1e-5, momentum=m.get("bn_momentum", 0.1)))
        mods.append(acts[m.get("activation", "relu")]())
        width = h
    mods.append(torch.nn.Linear(width, y.shape[1]))
    net = torch.nn.Sequential(*mods)
    net.load_state_dict(load_file(f"{ckpt}/model.safetensors"), strict=True)
    net.eval()
    with torch.no_grad():
        print(repr(float(F.mse_loss(net(x), y))))


if __name__ == "__main__":
    if sys.argv[1] == "saliency":
        saliency(sys.argv[2])
    else:
        evaluate(sys.argv[2], sys.argv[3], sys.argv[4])
