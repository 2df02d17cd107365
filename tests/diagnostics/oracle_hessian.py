#!/usr/bin/env python3
"""The PyTorch oracle for tests/diagnostics/test_hessian_blocks.cpp: the full Hessian of the mean
mini-batch loss of a small network, built functionally from curvnet's flat parameter
vector (same layout: per Linear weight [out, in] row-major then bias; per BatchNorm
weight then bias), with torch.autograd.functional.hessian.

Usage: oracle_hessian.py DIR. DIR holds spec.txt (first line "n_inputs N_IN", then
"loss KIND", "training 0|1", then one "layer TYPE [ARG]" per layer: linear OUT, batchnorm
EPS, leaky_relu SLOPE, elu ALPHA, or a bare activation), params.txt, x.txt (N × n_inputs),
target.txt; writes hessian.txt (total × total) and eigvals.txt (one line per layer with
parameters: the layer index, then numpy.linalg.eigvalsh of its diagonal block)."""
import sys

import numpy as np
import torch
import torch.nn.functional as F


def main(d):
    torch.set_default_dtype(torch.float64)
    lines = [l.split() for l in open(f"{d}/spec.txt") if l.strip()]
    n_in = int(lines[0][1])
    loss_kind = lines[1][1]
    training = lines[2][1] == "1"
    layers = lines[3:]
    theta0 = torch.tensor(np.atleast_1d(np.loadtxt(f"{d}/params.txt")))
    x = torch.tensor(np.loadtxt(f"{d}/x.txt", ndmin=2))
    t = torch.tensor(np.loadtxt(f"{d}/target.txt", ndmin=1))
    assert x.shape[1] == n_in

    slices = []  # (layer index, offset, count)

    def net(theta):
        h, off, width = x, 0, n_in
        slices.clear()
        for i, l in enumerate(layers):
            kind = l[1]
            if kind == "linear":
                out = int(l[2])
                W = theta[off:off + out * width].view(out, width)
                b = theta[off + out * width:off + out * width + out]
                slices.append((i, off, out * width + out))
                off += out * width + out
                h = h @ W.T + b
                width = out
            elif kind == "batchnorm":
                eps = float(l[2])
                g, be = theta[off:off + width], theta[off + width:off + 2 * width]
                slices.append((i, off, 2 * width))
                off += 2 * width
                assert training, "the oracle covers BatchNorm in training mode"
                mu = h.mean(0)
                var = h.var(0, unbiased=False)
                h = (h - mu) / torch.sqrt(var + eps) * g + be
            elif kind == "relu":
                h = torch.relu(h)
            elif kind == "leaky_relu":
                h = F.leaky_relu(h, float(l[2]))
            elif kind == "elu":
                h = F.elu(h, float(l[2]))
            elif kind == "sigmoid":
                h = torch.sigmoid(h)
            elif kind == "tanh":
                h = torch.tanh(h)
            elif kind == "gelu":
                h = F.gelu(h)
            elif kind == "softplus":
                h = F.softplus(h)
            elif kind == "identity":
                pass
            else:
                raise SystemExit(f"unknown layer {kind}")
        return h

    def loss(theta):
        z = net(theta)
        if loss_kind == "cross_entropy":
            return F.cross_entropy(z, t.long())
        if loss_kind == "mse":
            return F.mse_loss(z, t.view_as(z))
        return F.binary_cross_entropy_with_logits(z, t.view_as(z))

    H = torch.autograd.functional.hessian(loss, theta0).detach().numpy()
    np.savetxt(f"{d}/hessian.txt", H, fmt="%.17g")
    with open(f"{d}/eigvals.txt", "w") as f:
        for i, off, p in slices:
            ev = np.linalg.eigvalsh(H[off:off + p, off:off + p])
            f.write(" ".join([str(i)] + [repr(float(v)) for v in ev]) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
