#!/usr/bin/env python3
"""The table scripts/gpu-check prints: curvnet's GPU benchmarks beside PyTorch's same work
on the same GPU, with the targets of the CUDA backend.

  python3 benches/gpu_table.py OUT_DIR

OUT_DIR holds Google Benchmark JSON (bench_cuda.json, bench_cuda_hvp.json,
bench_cuda_eigen.json, bench_cuda_curvature.json) and the PyTorch scripts' JSON
(torch_train.json, torch_hvp.json, torch_curvature.json); a missing file leaves its rows out.
"""
import json
import os
import re
import sys

# (what, curvnet file, benchmark-name regex, counter or None for the time, PyTorch file, key, target)
ROWS = [
    ("train step S 784-128-128-10 b256, graph", "bench_cuda", r"/S_784_128_128_10_b256_graph/", None,
     "torch_train", "ms.S", "<= 0.15 ms"),
    ("train step S, eager launches", "bench_cuda", r"/S_784_128_128_10_b256/", None, "torch_train", "ms.S", ""),
    ("train step M 784-1024x4-10 b1024, graph", "bench_cuda", r"/M_784_1024x4_10_b1024_graph/", None,
     "torch_train", "ms.M", "<= 0.6 ms"),
    ("train step M, eager launches", "bench_cuda", r"/M_784_1024x4_10_b1024/", None, "torch_train", "ms.M", ""),
    ("train step S, graph, GEMMs on cuBLASLt (tuned)", "bench_cuda_lt", r"/S_784_128_128_10_b256_graph/", None,
     "torch_train", "ms.S", ""),
    ("train step M, graph, GEMMs on cuBLASLt (tuned)", "bench_cuda_lt", r"/M_784_1024x4_10_b1024_graph/", None,
     "torch_train", "ms.M", "<= 0.6 ms"),
    ("train step L 784-4096x8-10 b4096", "bench_cuda", r"/L_784_4096x8_10_b4096/", None, "torch_train", "ms.L",
     "<= 1.02x PyTorch"),
    ("train step L, TF32", "bench_cuda", r"/Ltf32_784_4096x8_10_b4096/", None, "torch_train", "ms.Ltf32",
     "<= 12 ms"),
    ("train step L, TF32, GEMMs on cuBLASLt (tuned)", "bench_cuda_lt", r"/Ltf32_784_4096x8_10_b4096/", None,
     "torch_train", "ms.Ltf32", "<= 12 ms"),
    ("gradient M", "bench_cuda_hvp", r"BM_Gradient_cuda/M_", None, "torch_hvp", "grad", ""),
    ("1 exact HVP M", "bench_cuda_hvp", r"BM_Hvp_cuda/M_.*/1/", None, "torch_hvp", "hvp1", "<= 1.5 ms"),
    ("64 HVPs M, per direction", "bench_cuda_hvp", r"BM_Hvp_cuda/M_.*/64/", "ms_per_direction", "torch_hvp",
     "hvp64_per_dir", "<= 1.0 ms"),
    ("1 exact HVP M, GEMMs on cuBLASLt (tuned)", "bench_cuda_hvp_lt", r"BM_Hvp_cuda/M_.*/1/", None, "torch_hvp",
     "hvp1", "<= 1.5 ms"),
    ("syevd n=650 f32", "bench_cuda_eigen", r"BM_Syevd_f32/650/", None, None, None, ""),
    ("syevd n=2112 f32", "bench_cuda_eigen", r"BM_Syevd_f32/2112/", None, None, None, ""),
    ("syevd n=4160 f32", "bench_cuda_eigen", r"BM_Syevd_f32/4160/", None, None, None, ""),
    ("64 blocks 65x65 f32, batched Jacobi", "bench_cuda_eigen", r"BM_BatchedJacobi<float>/n:65/count:64/", None,
     "torch_curvature", "eigvalsh_batched_64x65_ms", "<= 1 ms"),
    ("64 blocks 65x65 f32, cusolverDnXsyevBatched", "bench_cuda_eigen", r"BM_BatchedCusolver<float>/n:65/count:64/",
     None, "torch_curvature", "eigvalsh_batched_64x65_ms", ""),
    ("curvature checkpoint 32-64-64-64-10 tanh b512 f32 (4 loss blocks + spectra)", "bench_cuda_curvature",
     r".", None, "torch_curvature", "checkpoint_ms", ""),
]


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def ms_of(run, counter):
    if counter:
        return float(run[counter])
    return run["real_time"] * {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[run["time_unit"]]


def lookup(d, dotted):
    for k in dotted.split("."):
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "."
    benches = {}
    for name in {r[1] for r in ROWS}:
        doc = load(os.path.join(out, name + ".json"))
        benches[name] = doc.get("benchmarks", []) if doc else None
    torch = {name: load(os.path.join(out, name + ".json")) for name in {r[4] for r in ROWS if r[4]}}
    lines, errors = [], []
    for what, bfile, pattern, counter, tfile, tkey, target in ROWS:
        runs = benches.get(bfile)
        if runs is None:
            continue
        run = next((r for r in runs if re.search(pattern, r["name"]) and r.get("run_type", "iteration") == "iteration"),
                   None)
        if run is None:
            continue
        if run.get("error_occurred"):
            lines.append((what, "error", "-", "-", target))
            errors.append(f"{run['name']}: {run.get('error_message', '')}")
            continue
        ms = ms_of(run, counter)
        t = lookup(torch.get(tfile), tkey) if tfile and torch.get(tfile) else None
        lines.append((what, f"{ms:.3f}", f"{t:.3f}" if t else "-", f"{ms / t:.2f}" if t else "-", target))
    head = ("what", "curvnet ms", "PyTorch ms", "ratio", "target")
    w = [max(len(str(x[i])) for x in lines + [head]) for i in range(5)]
    fmt = "  ".join(("{:<%d}" if i in (0, 4) else "{:>%d}") % w[i] for i in range(5))
    print(fmt.format(*head))
    for row in lines:
        print(fmt.format(*row))
    print("ratio = curvnet / PyTorch (below 1: curvnet faster). float32, TF32 off unless named; CUDA-event timed;")
    print("PyTorch: the best of eager, fused Adam and a captured CUDA graph for training; double backward for HVPs.")
    for e in errors:
        print("error:", e)


if __name__ == "__main__":
    main()
