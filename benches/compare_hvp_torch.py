#!/usr/bin/env python3
"""PyTorch's side of benches/bench_hvp.cpp: the same 784-1024x4-10 ReLU MLP, batch 1024,
float32, cross-entropy, on the CPU with 2 threads. Times one gradient, one HVP by double
backward, and K = 16, 64 HVPs (torch.func.vmap over the double backward when available,
else a loop). Prints milliseconds and the ratios to the gradient.

Usage: compare_hvp_torch.py [--ks 1,16,64] [--reps 3]"""
import argparse
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ks", default="1,16,64")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    layers, width = [], 784
    for _ in range(4):
        layers += [nn.Linear(width, 1024), nn.ReLU()]
        width = 1024
    layers.append(nn.Linear(width, 10))
    model = nn.Sequential(*layers)
    params = [p for p in model.parameters()]
    x = torch.randn(1024, 784)
    t = torch.arange(1024) % 10

    def loss_fn():
        return F.cross_entropy(model(x), t)

    def gradient():
        return torch.autograd.grad(loss_fn(), params)

    def hvp(vs):
        g = torch.autograd.grad(loss_fn(), params, create_graph=True)
        dot = sum((gi * vi).sum() for gi, vi in zip(g, vs))
        return torch.autograd.grad(dot, params)

    def timed(fn, reps):
        fn()  # warm-up
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        return (time.perf_counter() - t0) / reps * 1e3

    grad_ms = timed(gradient, max(args.reps, 5))
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"gradient: {grad_ms:.1f} ms")
    have_vmap = hasattr(torch, "func") and hasattr(torch.func, "vmap")
    for K in [int(k) for k in args.ks.split(",")]:
        if K == 1:
            v = [torch.randn_like(p) for p in params]
            ms = timed(lambda: hvp(v), args.reps)
            how = "double backward"
        elif have_vmap:
            # One forward/backward graph; vmap over the direction of the second backward.
            vs = [torch.randn(K, *p.shape) for p in params]

            def batched():
                g = torch.autograd.grad(loss_fn(), params, create_graph=True)

                def one(*v):
                    dot = sum((gi * vi).sum() for gi, vi in zip(g, v))
                    return torch.autograd.grad(dot, params, retain_graph=True)

                return torch.func.vmap(one)(*vs)

            try:
                ms = timed(batched, max(1, args.reps // 2))
                how = "vmap over double backward"
            except Exception as e:  # vmap of autograd.grad is not supported everywhere
                have_vmap = False
                print(f"  (vmap failed: {type(e).__name__}; looping)")
        if K > 1 and not have_vmap:
            vs = [[torch.randn_like(p) for p in params] for _ in range(K)]

            def looped():
                g = torch.autograd.grad(loss_fn(), params, create_graph=True)
                out = []
                for v in vs:
                    dot = sum((gi * vi).sum() for gi, vi in zip(g, v))
                    out.append(torch.autograd.grad(dot, params, retain_graph=True))
                return out

            ms = timed(looped, 1)
            how = "loop of double backwards (one shared first backward)"
        print(f"hvp K={K}: {ms:.1f} ms, per direction {ms / K:.1f} ms, "
              f"ratio {ms / grad_ms:.2f}, per direction ratio {ms / K / grad_ms:.2f} ({how})")


if __name__ == "__main__":
    main()
