#!/usr/bin/env python3
"""PyTorch's side of benches/bench_hvp.cpp (CPU) and benches/bench_cuda_hvp.cpp (CUDA): the
same ReLU MLP, float32, cross-entropy, fixed random inputs and cycling labels.
  M: 784-1024x4-10, batch 1024 (default)      S: 784-128-128-10, batch 256
Times one gradient, one HVP by double backward (autograd.grad of grad·v, create_graph on
the first backward), and K HVPs at once: torch.func.vmap over the second backward of one
shared first backward when available, else a loop. On CUDA "apply" also times the second
backward alone with the first backward's graph kept (the counterpart of HvpEngine::apply
after prepare()). Prints milliseconds and the ratios to the gradient.

CPU (default): 2 threads, mean of --reps calls after one warm-up (perf_counter).
CUDA: TF32 off, median of --reps calls after a warm-up, each timed with CUDA events.
--json PATH writes {"grad": ms, "hvp1": ms, "hvp64": ms, "hvp64_per_dir": ms,
"apply64_per_dir": ms, ...} (every K of --ks).

  python3 benches/compare_hvp_torch.py
  python3 benches/compare_hvp_torch.py --device cuda --ks 1,64 --json hvp_torch_M.json
  python3 benches/compare_hvp_torch.py --device cuda --net S --ks 1,64 --json hvp_torch_S.json"""
import argparse
import json
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

NETS = {"M": ([1024] * 4, 1024), "S": ([128, 128], 256)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--net", choices=sorted(NETS), default="M")
    ap.add_argument("--ks", default="1,16,64")
    ap.add_argument("--reps", type=int, default=None, help="timed calls (default: 3 on cpu, 30 on cuda)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    dev = args.device
    cuda = dev == "cuda"
    if cuda:
        if not torch.cuda.is_available():
            raise SystemExit("--device cuda: no CUDA device visible to torch")
        # Full float32 GEMMs, as the C++ side runs them.
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    else:
        torch.set_num_threads(args.threads)
    reps = args.reps if args.reps is not None else (30 if cuda else 3)
    torch.manual_seed(0)
    hidden, batch = NETS[args.net]
    layers, width = [], 784
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, 10))
    model = nn.Sequential(*layers).to(dev)
    params = [p for p in model.parameters()]
    x = torch.randn(batch, 784, device=dev)
    t = torch.arange(batch, device=dev) % 10

    def loss_fn():
        return F.cross_entropy(model(x), t)

    def gradient():
        return torch.autograd.grad(loss_fn(), params)

    def hvp(vs):
        g = torch.autograd.grad(loss_fn(), params, create_graph=True)
        dot = sum((gi * vi).sum() for gi, vi in zip(g, vs))
        return torch.autograd.grad(dot, params)

    def timed_cpu(fn, n):
        fn()  # warm-up
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - t0) / n * 1e3

    def timed_cuda(fn, n):
        for _ in range(3):  # warm-up: allocator, cuBLAS heuristics
            fn()
        torch.cuda.synchronize()
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        ms = []
        for _ in range(max(n, 1)):
            start.record()
            fn()
            stop.record()
            stop.synchronize()
            ms.append(start.elapsed_time(stop))
        return statistics.median(ms)

    def timed(fn, n):
        # On CUDA every measurement takes all reps: calls are cheap next to the CPU's.
        return timed_cuda(fn, reps) if cuda else timed_cpu(fn, n)

    def directions(K):
        # Random normals, never zeros; K = 0 means one unbatched direction.
        return [torch.randn(*((K,) if K else ()), *p.shape, device=dev) for p in params]

    grad_ms = timed(gradient, max(reps, 5))
    out = {"device": dev, "torch": torch.__version__, "net": args.net, "batch": batch,
           "params": sum(p.numel() for p in params), "grad": grad_ms}
    if cuda:
        print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}, net {args.net}, "
              f"TF32 off, median of {reps}")
    else:
        print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, net {args.net}")
    d = 3 if cuda else 1  # decimals: GPU times are a few milliseconds
    print(f"gradient: {grad_ms:.{d}f} ms")
    vmap = getattr(getattr(torch, "func", None), "vmap", None)  # torch >= 2.0
    have_vmap = vmap is not None
    for K in [int(k) for k in args.ks.split(",")]:
        apply_ms = None
        if K == 1:
            v = directions(0)
            ms = timed(lambda: hvp(v), reps)
            how = "double backward"
            # apply: the first backward's graph built once; each call runs the second backward.
            if cuda:
                g = torch.autograd.grad(loss_fn(), params, create_graph=True)
                apply_ms = timed(lambda: torch.autograd.grad(g, params, grad_outputs=v, retain_graph=True), reps)
                del g
        elif have_vmap:
            # One forward/backward graph; vmap over the cotangent of the second backward
            # (grad of g with grad_outputs v is H·v).
            vs = directions(K)

            def second(g):
                return lambda *v: torch.autograd.grad(g, params, grad_outputs=v, retain_graph=True)

            def batched():
                g = torch.autograd.grad(loss_fn(), params, create_graph=True)
                return vmap(second(g))(*vs)

            try:
                ms = timed(batched, max(1, reps // 2))
                how = "vmap over double backward"
                if cuda:
                    g = torch.autograd.grad(loss_fn(), params, create_graph=True)
                    apply_ms = timed(lambda: vmap(second(g))(*vs), reps)
                    del g
            except Exception as e:  # vmap of autograd.grad is not supported everywhere
                have_vmap = False
                print(f"  (vmap failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}; looping)")
        if K > 1 and not have_vmap:
            vs = [directions(0) for _ in range(K)]

            def looped():
                g = torch.autograd.grad(loss_fn(), params, create_graph=True)
                res = []
                for v in vs:
                    dot = sum((gi * vi).sum() for gi, vi in zip(g, v))
                    res.append(torch.autograd.grad(dot, params, retain_graph=True))
                return res

            ms = timed(looped, 1)
            how = "loop of double backwards (one shared first backward)"
        print(f"hvp K={K}: {ms:.{d}f} ms, per direction {ms / K:.{d}f} ms, "
              f"ratio {ms / grad_ms:.2f}, per direction ratio {ms / K / grad_ms:.2f} ({how})")
        out[f"hvp{K}"] = ms
        out[f"hvp{K}_per_dir"] = ms / K
        out[f"hvp{K}_how"] = how
        if apply_ms is not None:
            print(f"  apply K={K} (first backward's graph kept): {apply_ms:.3f} ms, "
                  f"per direction {apply_ms / K:.3f} ms")
            out[f"apply{K}"] = apply_ms
            out[f"apply{K}_per_dir"] = apply_ms / K
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
