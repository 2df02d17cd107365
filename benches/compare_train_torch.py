#!/usr/bin/env python3
"""PyTorch's side of the training-step comparison with benches/bench_cuda.cpp.

One step = forward, mean cross-entropy, backward, Adam (lr 1e-3), float32, TF32 off, on
the same MLP sizes as the C++ benchmark:
  S: 784-128-128-10, batch 256       M: 784-1024x4-10, batch 1024
Timed per step with CUDA events (or perf_counter on the CPU); prints the median step time
in milliseconds per size, and with --json writes {"S": ms, "M": ms, ...}.

  python3 benches/compare_train_torch.py --device cuda --json torch.json
  python3 benches/compare_train_torch.py --device cpu --sizes S --steps 20
"""
import argparse
import json
import statistics
import sys
import time

SIZES = {
    "S": ([128, 128], 256),
    "M": ([1024, 1024, 1024, 1024], 1024),
}
N_IN, N_OUT = 784, 10


def build(torch, hidden):
    layers, width = [], N_IN
    for h in hidden:
        layers += [torch.nn.Linear(width, h), torch.nn.ReLU()]
        width = h
    layers.append(torch.nn.Linear(width, N_OUT))
    return torch.nn.Sequential(*layers)


def time_size(torch, device, hidden, batch, steps, warmup):
    torch.manual_seed(0)
    model = build(torch, hidden).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    x = torch.randn(batch, N_IN, device=device)
    y = torch.arange(batch, device=device) % N_OUT

    def step():
        opt.zero_grad(set_to_none=False)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    times = []
    if device == "cuda":
        torch.cuda.synchronize()
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        for _ in range(steps):
            start.record()
            step()
            stop.record()
            stop.synchronize()
            times.append(start.elapsed_time(stop))
    else:
        for _ in range(steps):
            t0 = time.perf_counter()
            step()
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    ap.add_argument("--sizes", default="S,M", help="comma-separated subset of " + ",".join(SIZES))
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()

    try:
        import torch
    except ImportError:
        sys.exit("compare_train_torch.py: PyTorch is not importable by " + sys.executable)
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("compare_train_torch.py: --device cuda but torch sees no GPU (use --device cpu)")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False

    results = {}
    for name in [s.strip() for s in args.sizes.split(",") if s.strip()]:
        if name not in SIZES:
            sys.exit(f"compare_train_torch.py: unknown size {name!r} (expected {', '.join(SIZES)})")
        hidden, batch = SIZES[name]
        ms = time_size(torch, args.device, hidden, batch, args.steps, args.warmup)
        results[name] = ms
        print(f"torch {args.device} {name} (784-{'-'.join(map(str, hidden))}-10, batch {batch}): {ms:.3f} ms/step")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": args.device, "torch": torch.__version__, "ms": results}, f, indent=1)


if __name__ == "__main__":
    main()
