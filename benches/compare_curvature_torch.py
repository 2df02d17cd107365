#!/usr/bin/env python3
"""PyTorch's way to the same curvature checkpoint as bench_curvature / bench_cuda_curvature:
the exact diagonal Hessian block of every layer of a 32-64-64-64-10 tanh MLP (batch 512) and
its full spectrum (numpy.linalg.eigvalsh on the CPU, torch.linalg.eigvalsh on CUDA). The
block comes from PyTorch's fastest exact Hessian available: torch.func.hessian (forward over
reverse, every column at once by vmap; PyTorch >= 2.0), else functorch's, else
torch.autograd.functional.hessian (vectorised). On CUDA it also times the local Hessian's
many small unit blocks the way PyTorch would solve them: one batched eigvalsh of 64 blocks
of 65x65.

Timed runs stop early once --time-limit seconds have been spent (the median is of the runs
done; at least one), so the script fits a stage's time cap.

Usage:
  compare_curvature_torch.py [--threads 2] [--layers 0,2,4,6]                 # CPU, float64
  compare_curvature_torch.py --device cuda --dtype float32 --json torch.json  # the GPU side
"""
import argparse
import json
import statistics
import time

import numpy as np
import torch


def hessian_candidates(choice):
    """[(name, f -> Hessian-of-f)] for the exact Hessian of a scalar function of one vector,
    fastest first: forward over reverse (every column at once by vmap), reverse over reverse
    (for builds without forward AD of log_softmax's backward, e.g. functorch 1.13), then
    autograd.functional's vectorised Hessian."""
    out = []
    if choice in ("auto", "torch.func"):
        try:
            from torch.func import hessian, jacrev
            out += [("torch.func.hessian", hessian), ("torch.func.jacrev(jacrev)", lambda f: jacrev(jacrev(f)))]
        except ImportError:
            pass
    if choice in ("auto", "functorch"):
        try:
            import warnings
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                from functorch import jacfwd, jacrev
            out += [("functorch.jacfwd(jacrev)", lambda f: jacfwd(jacrev(f))),
                    ("functorch.jacrev(jacrev)", lambda f: jacrev(jacrev(f)))]
        except ImportError:
            pass
    if choice in ("auto", "autograd"):
        out.append(("torch.autograd.functional.hessian",
                    lambda f: (lambda v: torch.autograd.functional.hessian(f, v, vectorize=True))))
    if not out:
        raise SystemExit(f"--hessian {choice}: not available in PyTorch {torch.__version__}")
    return out


class Hessian:
    """The first candidate that works here; one that raises NotImplementedError (an operator
    without the needed derivative) is dropped for the next."""

    def __init__(self, choice):
        self.candidates = hessian_candidates(choice)

    @property
    def name(self):
        return self.candidates[0][0]

    def __call__(self, f, v):
        while True:
            try:
                return self.candidates[0][1](f)(v)
            except NotImplementedError:
                if len(self.candidates) == 1:
                    raise
                self.candidates.pop(0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--layers", default="0,2,4,6")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--dtype", choices=["float32", "float64"], default=None,
                    help="default: float64 on the CPU, float32 on CUDA")
    ap.add_argument("--repeats", type=int, default=None, help="timed runs (median; default 1 on cpu, 3 on cuda)")
    ap.add_argument("--time-limit", type=float, default=40.0,
                    help="seconds: no further timed run starts once this much has been spent (default 40)")
    ap.add_argument("--hessian", choices=["auto", "torch.func", "functorch", "autograd"], default="auto",
                    help="how the exact block is formed (default: the fastest available)")
    ap.add_argument("--json", help="write {'checkpoint_ms': ..., 'eigvalsh_batched_64x65_ms': ...} here")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    cuda = a.device == "cuda"
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = False
    dt = getattr(torch, a.dtype or ("float32" if cuda else "float64"))
    repeats = a.repeats or (3 if cuda else 1)
    started = time.perf_counter()
    hessian = Hessian(a.hessian)
    torch.manual_seed(0)
    sizes = [32, 64, 64, 64, 10]
    Ws = [(torch.randn(o, i, dtype=torch.float64) / i ** 0.5).to(dev, dt) for i, o in zip(sizes[:-1], sizes[1:])]
    bs = [torch.zeros(o, dtype=dt, device=dev) for o in sizes[1:]]
    x = torch.randn(512, 32, dtype=torch.float64).to(dev, dt)
    y = torch.arange(512, device=dev) % 10

    def loss_with(k, w_flat, b_flat):
        h = x
        for j, (W, b) in enumerate(zip(Ws, bs)):
            if j == k:
                W, b = w_flat.view_as(W), b_flat.view_as(b)
            h = h @ W.T + b
            if j < len(Ws) - 1:
                h = torch.tanh(h)
        return torch.nn.functional.cross_entropy(h, y)

    def sync():
        if cuda:
            torch.cuda.synchronize()

    def checkpoint(report):
        lam = {}
        for idx in [int(s) for s in a.layers.split(",")]:
            k = idx // 2  # nn.Sequential index of the Linear -> its position among the Linears
            p = torch.cat([Ws[k].flatten(), bs[k]])
            nW = Ws[k].numel()
            H = hessian(lambda v, k=k, nW=nW: loss_with(k, v[:nW], v[nW:]), p)
            ev = torch.linalg.eigvalsh(H) if cuda else torch.from_numpy(np.linalg.eigvalsh(H.numpy()))
            lam[idx] = (p.numel(), float(ev[-1]))
        sync()
        if report:
            for idx, (n, top) in lam.items():
                print(f"layer {idx}: {n} parameters, lambda_max {top:.6g}")

    times = []
    for r in range(repeats + (1 if cuda else 0)):  # on CUDA the first run is a warm-up
        sync()
        t = time.perf_counter()
        checkpoint(report=r == 0)
        if cuda and r == 0:
            continue
        times.append(time.perf_counter() - t)
        if time.perf_counter() - started > a.time_limit:
            break
    ms = statistics.median(times) * 1e3
    print(f"PyTorch {torch.__version__} {a.device} {str(dt).replace('torch.', '')} ({hessian.name}): "
          f"all blocks + spectra {ms:.1f} ms (median of {len(times)})")
    out = {"device": a.device, "torch": torch.__version__, "hessian": hessian.name, "checkpoint_ms": ms,
           "runs": len(times)}

    if cuda:  # the local Hessian's unit blocks: 64 symmetric 65x65, one batched call
        g = torch.Generator(device="cpu").manual_seed(1)
        B = torch.randn(64, 65, 65, generator=g, dtype=torch.float64).to(dev, torch.float32)
        B = B + B.transpose(1, 2)
        torch.linalg.eigvalsh(B)
        batched = []
        for _ in range(5):
            if batched and time.perf_counter() - started > a.time_limit:
                break
            sync()
            t = time.perf_counter()
            torch.linalg.eigvalsh(B)
            sync()
            batched.append((time.perf_counter() - t) * 1e3)
        out["eigvalsh_batched_64x65_ms"] = statistics.median(batched)
        print(f"torch.linalg.eigvalsh of 64 blocks 65x65 float32: {out['eigvalsh_batched_64x65_ms']:.2f} ms")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
