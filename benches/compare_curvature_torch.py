#!/usr/bin/env python3
"""PyTorch's way to the same curvature checkpoint as bench_curvature: the exact diagonal
Hessian block of every layer of a 32-64-64-64-10 tanh MLP (batch 512, float64) by
torch.autograd.functional.hessian, and its full spectrum by numpy.linalg.eigvalsh.

Usage: compare_curvature_torch.py [--threads 2] [--layers 0,2,4,6]
"""
import argparse, time

import numpy as np
import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--layers", default="0,2,4,6")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dt = torch.float64
    sizes = [32, 64, 64, 64, 10]
    Ws = [torch.randn(o, i, dtype=dt) / i ** 0.5 for i, o in zip(sizes[:-1], sizes[1:])]
    bs = [torch.zeros(o, dtype=dt) for o in sizes[1:]]
    x = torch.randn(512, 32, dtype=dt)
    y = torch.arange(512) % 10

    def loss_with(k, w_flat, b_flat):
        h = x
        for j, (W, b) in enumerate(zip(Ws, bs)):
            if j == k:
                W, b = w_flat.view_as(W), b_flat.view_as(b)
            h = h @ W.T + b
            if j < len(Ws) - 1:
                h = torch.tanh(h)
        return torch.nn.functional.cross_entropy(h, y)

    total = 0.0
    for idx in [int(s) for s in a.layers.split(",")]:
        k = idx // 2  # nn.Sequential index of the Linear -> its position among the Linears
        t = time.perf_counter()
        p = torch.cat([Ws[k].flatten(), bs[k]])
        nW = Ws[k].numel()
        H = torch.autograd.functional.hessian(lambda v: loss_with(k, v[:nW], v[nW:]), p)
        ev = np.linalg.eigvalsh(H.numpy())
        dt_s = time.perf_counter() - t
        total += dt_s
        print(f"layer {idx}: {p.numel()} parameters, lambda_max {ev[-1]:.6g}, {dt_s:.1f} s")
    print(f"PyTorch {torch.__version__}, {a.threads} threads: all blocks + spectra {total:.1f} s")


if __name__ == "__main__":
    main()
