#!/usr/bin/env python3
"""PyTorch's side of the training-step comparison with benches/bench_cuda.cpp.

One step = forward, mean cross-entropy, backward, Adam (lr 1e-3), float32, TF32 off (the
Ltf32 size turns it on), on the same MLP sizes as the C++ benchmark:
  S: 784-128-128-10, batch 256    M: 784-1024x4-10, batch 1024    L: 784-4096x8-10, batch 4096
On CUDA each size runs three ways, and the best counts: "eager" (Adam's default foreach
kernels), "fused" (Adam(fused=True)) and "graph" (the whole step captured with
torch.cuda.graph, Adam(capturable=True)). Timed over steps run back to back with CUDA
events (perf_counter on the CPU, one step at a time); prints the median step time in
milliseconds, and with --json writes {"ms": {"S": best, ...}, "variants": {...}}.

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
    "M": ([1024] * 4, 1024),
    "L": ([4096] * 8, 4096),
    "Ltf32": ([4096] * 8, 4096),
}
N_IN, N_OUT = 784, 10


def build(torch, hidden):
    layers, width = [], N_IN
    for h in hidden:
        layers += [torch.nn.Linear(width, h), torch.nn.ReLU()]
        width = h
    layers.append(torch.nn.Linear(width, N_OUT))
    return torch.nn.Sequential(*layers)


def make_step(torch, device, hidden, batch, variant):
    torch.manual_seed(0)
    model = build(torch, hidden).to(device)
    kwargs = {"fused": True} if variant == "fused" else {"capturable": True} if variant == "graph" else {}
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, **kwargs)
    loss_fn = torch.nn.CrossEntropyLoss()
    x = torch.randn(batch, N_IN, device=device)
    y = torch.arange(batch, device=device) % N_OUT

    def step():
        opt.zero_grad(set_to_none=False)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()

    if variant != "graph":
        return step
    # The documented whole-network capture: warm up on a side stream, then capture.
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    return graph.replay


def time_step(torch, device, step, steps, warmup, per):
    for _ in range(warmup):
        step()
    times = []
    if device == "cuda":
        torch.cuda.synchronize()
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        for _ in range(max(1, steps // per)):
            start.record()
            for _ in range(per):
                step()
            stop.record()
            stop.synchronize()
            times.append(start.elapsed_time(stop) / per)
    else:
        for _ in range(steps):
            t0 = time.perf_counter()
            step()
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    ap.add_argument("--sizes", help="comma-separated subset of " + ",".join(SIZES) + " (default: all on cuda, S,M on cpu)")
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
    results, variants = {}, {}
    sizes = args.sizes or ("S,M,L,Ltf32" if args.device == "cuda" else "S,M")
    for name in [s.strip() for s in sizes.split(",") if s.strip()]:
        if name not in SIZES:
            sys.exit(f"compare_train_torch.py: unknown size {name!r} (expected {', '.join(SIZES)})")
        hidden, batch = SIZES[name]
        tf32 = name.endswith("tf32")
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        big = batch * len(hidden) * hidden[0] > (1 << 26)
        steps, per = (max(4, args.steps // 10), 2) if big else (args.steps, 20)
        kinds = ["eager", "fused", "graph"] if args.device == "cuda" else ["eager"]
        variants[name] = {}
        for v in kinds:
            try:
                ms = time_step(torch, args.device, make_step(torch, args.device, hidden, batch, v), steps,
                               args.warmup, per)
            except Exception as e:  # a variant this torch lacks: say so, keep the others
                print(f"torch {args.device} {name} {v}: failed ({e})")
                continue
            variants[name][v] = ms
            print(f"torch {args.device} {name} (784-{'-'.join(map(str, hidden))}-10, batch {batch}) {v}: "
                  f"{ms:.3f} ms/step")
        if variants[name]:
            results[name] = min(variants[name].values())
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": args.device, "torch": torch.__version__, "ms": results, "variants": variants}, f,
                      indent=1)


if __name__ == "__main__":
    main()
