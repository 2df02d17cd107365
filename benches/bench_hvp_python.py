#!/usr/bin/env python3
"""The Python module's HVP against bench_hvp's (the same problem: the M network 784-1024x4-10,
ReLU, batch 1024, float32, cross-entropy, He-normal): ms per call for K = 1, 16, 64
directions, timed as bench_hvp times them (a warm-up call, then the mean of 10, 3, 1 calls;
--reps scales them). Run both back to back with the same OMP_NUM_THREADS:

    OMP_NUM_THREADS=2 build/cpu/benches/bench_hvp --benchmark_filter=BM_Hvp
    OMP_NUM_THREADS=2 .venv/bin/python benches/bench_hvp_python.py
"""
import argparse
import time

import numpy as np

import curvnet

ap = argparse.ArgumentParser()
ap.add_argument("--reps", type=int, default=1, help="multiply the number of timed calls")
ap.add_argument("--k", type=int, nargs="*", default=[1, 16, 64])
args = ap.parse_args()

model = curvnet.Model(layers=[{"type": "linear", "out": 1024}, "relu"] * 4 + [{"type": "linear", "out": 10}],
                      n_inputs=784, dtype="float32", seed=1, overrides={"model.init": "he_normal"})
rng = np.random.default_rng(3)
x = rng.standard_normal((1024, 784), dtype=np.float32)
t = (np.arange(1024) % 10).astype(np.float32)
iters = {1: 10, 16: 3, 64: 1}
for K in args.k:
    V = rng.standard_normal((K, model.num_params), dtype=np.float32)
    out = np.empty_like(V)
    model.hvp(x, t, V, out=out)  # warm-up (first touch of the buffers)
    n = iters.get(K, 3) * args.reps
    t0 = time.perf_counter()
    for _ in range(n):
        model.hvp(x, t, V, out=out)
    ms = (time.perf_counter() - t0) * 1e3 / n
    print(f"BM_Hvp_python/{K}  ms={ms:.1f}  ms_per_direction={ms / K:.2f}  calls={n}")

# The module's own cost per call, apart from the engine's work: a 2-4-2 network on 4 samples,
# where the products themselves take microseconds. Every call on the M network pays this once.
tiny = curvnet.Model(layers=[{"type": "linear", "out": 4}, "relu", {"type": "linear", "out": 2}], n_inputs=2,
                     dtype="float32")
xs, ts = np.ones((4, 2), np.float32), np.zeros(4, np.float32)
vs = np.ones((1, tiny.num_params), np.float32)
os_ = np.empty_like(vs)
for name, call in [("hvp via curvnet.Model (checks + binding + engine)", lambda: tiny.hvp(xs, ts, vs, out=os_)),
                   ("the binding alone (+ engine)", lambda: tiny._m.hvp_into(xs, ts, vs, os_, True, 0, False))]:
    for _ in range(100):
        call()
    n = 20000
    t0 = time.perf_counter()
    for _ in range(n):
        call()
    print(f"per call, tiny network: {name}: {(time.perf_counter() - t0) / n * 1e6:.1f} µs")
