#!/usr/bin/env python3
"""The table scripts/gpu-check prints: curvnet's GPU benchmarks beside PyTorch's same work
on the same GPU, with the targets of the CUDA backend and whether each is met.

  python3 benches/gpu_table.py OUT_DIR [--json FILE]

OUT_DIR holds Google Benchmark JSON (bench_cuda.json, bench_cuda_streams.json, bench_cuda_cublas.json, bench_cuda_hvp.json,
bench_cuda_hvp_streams.json, bench_cuda_eigen.json, bench_cuda_curvature.json), the PyTorch
scripts' JSON (torch_train.json, torch_hvp.json, torch_curvature.json), the end-to-end run
(overlap_e2e.json, benches/overlap_e2e.py), the sanitizer's summary (sanitizer.json) and
ctest's log (ctest.log). A missing file leaves its rows out; a row with a target whose
benchmark is missing says so ("missing"), so an unrun target is never mistaken for a met one.
--json writes the rows as a list of objects (what, curvnet_ms, torch_ms, ratio, target, met).
"""
import json
import os
import re
import sys

# A target: ("ms", bound) — curvnet's ms at most bound; ("torch", bound) — curvnet / PyTorch at
# most bound; None — no target (the row is for reference).
ROWS = [
    # (what, curvnet file, benchmark-name regex, counter or None for the time, PyTorch file, key, target)
    ("train step S 784-128-128-10 b256, graph", "bench_cuda", r"/S_784_128_128_10_b256_graph/", None,
     "torch_train", "ms.S", ("ms", 0.15)),
    ("train step S, eager launches", "bench_cuda", r"/S_784_128_128_10_b256/", None, "torch_train", "ms.S", None),
    ("train step S, fused MLP kernel", "bench_cuda", r"/S_784_128_128_10_b256_fused/", None, "torch_train", "ms.S",
     ("ms", 0.04)),
    ("train step M 784-1024x4-10 b1024, graph", "bench_cuda", r"/M_784_1024x4_10_b1024_graph/", None,
     "torch_train", "ms.M", ("ms", 0.6)),
    ("train step M, eager launches", "bench_cuda", r"/M_784_1024x4_10_b1024/", None, "torch_train", "ms.M", None),
    ("train step S, graph, backward GEMMs on two streams", "bench_cuda_streams", r"/S_784_128_128_10_b256_graph/",
     None, "torch_train", "ms.S", ("ms", 0.15)),
    ("train step M, graph, backward GEMMs on two streams", "bench_cuda_streams", r"/M_784_1024x4_10_b1024_graph/",
     None, "torch_train", "ms.M", ("ms", 0.6)),
    ("train step S, graph, GEMMs on cuBLAS (the old default)", "bench_cuda_cublas", r"/S_784_128_128_10_b256_graph/", None,
     "torch_train", "ms.S", ("ms", 0.15)),
    ("train step M, graph, GEMMs on cuBLAS (the old default)", "bench_cuda_cublas", r"/M_784_1024x4_10_b1024_graph/", None,
     "torch_train", "ms.M", ("ms", 0.6)),
    ("train step L 784-4096x8-10 b4096", "bench_cuda", r"/L_784_4096x8_10_b4096/", None, "torch_train", "ms.L",
     ("torch", 1.02)),
    ("train step L, TF32", "bench_cuda", r"/Ltf32_784_4096x8_10_b4096/", None, "torch_train", "ms.Ltf32",
     ("ms", 12.0)),
    ("train step L, TF32, GEMMs on cuBLAS (the old default)", "bench_cuda_cublas", r"/Ltf32_784_4096x8_10_b4096/", None,
     "torch_train", "ms.Ltf32", ("ms", 12.0)),
    ("gradient M", "bench_cuda_hvp", r"BM_Gradient_cuda/M_", None, "torch_hvp", "grad", None),
    ("1 exact HVP M", "bench_cuda_hvp", r"BM_Hvp_cuda/M_.*/1/", None, "torch_hvp", "hvp1", ("ms", 1.5)),
    ("64 HVPs M, per direction", "bench_cuda_hvp", r"BM_Hvp_cuda/M_.*/64/", "ms_per_direction", "torch_hvp",
     "hvp64_per_dir", ("ms", 1.0)),
    ("1 exact HVP M, backward GEMMs on two streams", "bench_cuda_hvp_streams", r"BM_Hvp_cuda/M_.*/1/", None, "torch_hvp",
     "hvp1", ("ms", 1.5)),
    ("syevd n=650 f32", "bench_cuda_eigen", r"BM_Syevd_f32/650/", None, None, None, None),
    ("syevd n=2112 f32", "bench_cuda_eigen", r"BM_Syevd_f32/2112/", None, None, None, None),
    ("syevd n=4160 f32", "bench_cuda_eigen", r"BM_Syevd_f32/4160/", None, None, None, None),
    ("64 blocks 65x65 f32, batched Jacobi", "bench_cuda_eigen", r"BM_BatchedJacobi<float>/n:65/count:64/", None,
     "torch_curvature", "eigvalsh_batched_64x65_ms", ("ms", 1.0)),
    ("64 blocks 65x65 f32, cusolverDnXsyevBatched", "bench_cuda_eigen", r"BM_BatchedCusolver<float>/n:65/count:64/",
     None, "torch_curvature", "eigvalsh_batched_64x65_ms", None),
    ("curvature checkpoint 32-64-64-64-10 tanh b512 f32 (4 loss blocks + spectra)", "bench_cuda_curvature",
     r"BM_CurvatureCheckpoint_cuda_f32/", None, "torch_curvature", "checkpoint_ms", ("ms", 100.0)),
]

# The checkpoint's breakdown counters (bench_cuda_curvature), in ms, printed when present.
BREAKDOWN = ["hvp_ms", "assembly_ms", "eigensolver_ms", "metrics_ms", "checks_ms"]
E2E_TARGET = 1.10  # wall time with curvature / without, end to end (benches/overlap_e2e.py)


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


def target_text(target):
    if target is None:
        return ""
    kind, bound = target
    return f"<= {bound:g} ms" if kind == "ms" else f"<= {bound:g}x PyTorch"


def verdict(target, ms, t):
    if target is None:
        return ""
    kind, bound = target
    if kind == "ms":
        return "yes" if ms <= bound else "NO"
    if not t:
        return "?"  # PyTorch's side did not run
    return "yes" if ms / t <= bound else "NO"


def find_run(runs, pattern):
    """The benchmark's run: the median aggregate when repetitions ran, else the first iteration run."""
    if pattern.endswith("/"):  # a name's last part is followed by "/" or ends the name
        pattern = pattern[:-1] + "(/|$)"
    matching = [r for r in runs if re.search(pattern, r["name"])]
    for r in matching:
        if r.get("run_type") == "aggregate" and r.get("aggregate_name") == "median":
            return r
    return next((r for r in matching if r.get("run_type", "iteration") == "iteration"), None)


def table_rows(out):
    """(rows, errors, breakdown): rows are dicts; breakdown the checkpoint's counters."""
    benches = {}
    for name in {r[1] for r in ROWS}:
        doc = load(os.path.join(out, name + ".json"))
        benches[name] = doc.get("benchmarks", []) if isinstance(doc, dict) else None
    torch = {name: load(os.path.join(out, name + ".json")) for name in {r[4] for r in ROWS if r[4]}}
    rows, errors, breakdown = [], [], {}
    for what, bfile, pattern, counter, tfile, tkey, target in ROWS:
        runs = benches.get(bfile)
        run = find_run(runs, pattern) if runs is not None else None
        row = {"what": what, "curvnet_ms": None, "torch_ms": None, "ratio": None, "target": target_text(target),
               "met": ""}
        if run is None:
            if target is None:
                continue  # a reference row without data is left out
            row["met"] = "missing"
            rows.append(row)
            continue
        if run.get("error_occurred"):
            row["met"] = "error" if target else ""
            errors.append(f"{run['name']}: {run.get('error_message', '')}")
            rows.append(row)
            continue
        try:
            ms = ms_of(run, counter)
        except (KeyError, TypeError, ValueError):
            row["met"] = "error" if target else ""
            errors.append(f"{run['name']}: no {counter or 'real_time'}")
            rows.append(row)
            continue
        t = lookup(torch.get(tfile), tkey) if tfile and torch.get(tfile) else None
        t = float(t) if isinstance(t, (int, float)) and t > 0 else None
        row.update(curvnet_ms=ms, torch_ms=t, ratio=ms / t if t else None, met=verdict(target, ms, t))
        rows.append(row)
        if bfile == "bench_cuda_curvature":  # the counters come from the breakdown run, else this one
            timed = next((r for r in runs if "_breakdown/" in r["name"] and not r.get("error_occurred")), run)
            breakdown = {k: float(timed[k]) for k in BREAKDOWN if isinstance(timed.get(k), (int, float))}
    return rows, errors, breakdown


def e2e_row(out):
    e = load(os.path.join(out, "overlap_e2e.json"))
    row = {"what": "end to end 784-256-128-10 b128, wall with / without curvature", "curvnet_ms": None,
           "torch_ms": None, "ratio": None, "target": f"<= {E2E_TARGET:g}x without", "met": "missing"}
    if not isinstance(e, dict):
        return row, None
    try:
        ratio = float(e["ratio"])
    except (KeyError, TypeError, ValueError):
        row["met"] = "error"
        return row, e
    row.update(curvnet_ms=float(e.get("with_s", 0)) * 1e3, ratio=ratio, met="yes" if ratio <= E2E_TARGET else "NO")
    return row, e


def fmt_ms(v):
    return "-" if v is None else f"{v:.3f}"


def print_table(rows):
    head = ("what", "curvnet ms", "PyTorch ms", "ratio", "target", "met")
    cells = [(r["what"], fmt_ms(r["curvnet_ms"]), fmt_ms(r["torch_ms"]),
              "-" if r["ratio"] is None else f"{r['ratio']:.2f}", r["target"], r["met"]) for r in rows]
    w = [max(len(str(x[i])) for x in cells + [head]) for i in range(6)]
    fmt = "  ".join(("{:<%d}" if i in (0, 4, 5) else "{:>%d}") % w[i] for i in range(6))
    print(fmt.format(*head))
    for c in cells:
        print(fmt.format(*c))


def sanitizer_lines(out):
    """One line per CUDA test binary and tool from sanitizer.json ({binary: {tool: {errors, status}}})."""
    s = load(os.path.join(out, "sanitizer.json"))
    if not isinstance(s, dict):
        return None
    lines = []
    for binary in sorted(s):
        parts = []
        for tool in ("memcheck", "racecheck"):
            r = s[binary].get(tool) if isinstance(s[binary], dict) else None
            if not isinstance(r, dict):
                parts.append(f"{tool} not run")
                continue
            errors, status = r.get("errors"), r.get("status", "?")
            parts.append(f"{tool} {errors if errors is not None else '?'} errors ({status})")
        lines.append(f"  {binary}: " + ", ".join(parts))
    return lines


def ctest_line(out):
    try:
        with open(os.path.join(out, "ctest.log"), errors="replace") as f:
            text = f.read()
    except OSError:
        return None
    m = re.findall(r"(\d+)% tests passed, (\d+) tests? failed out of (\d+)", text)
    if not m:
        return "tests: no ctest summary in ctest.log (cut short?)"
    pct, failed, total = m[-1]
    failed_names = re.findall(r"^\s*\d+ - (\S+) \((?:Failed|Timeout|SEGFAULT|Subprocess aborted|Exception)", text,
                              re.M)
    line = f"tests: {int(total) - int(failed)} of {total} passed"
    if failed_names:
        line += "; failed: " + ", ".join(failed_names)
    return line


def main(argv):
    args = list(argv)
    json_out = None
    if "--json" in args:
        i = args.index("--json")
        if i + 1 >= len(args):
            print("gpu_table.py: --json needs a file name", file=sys.stderr)
            return 2
        json_out = args[i + 1]
        del args[i:i + 2]
    out = args[0] if args else "."
    if not os.path.isdir(out):
        print(f"gpu_table.py: {out}: not a directory (expected gpu-check's results folder)", file=sys.stderr)
        return 2
    rows, errors, breakdown = table_rows(out)
    e2e, e2e_doc = e2e_row(out)
    rows.append(e2e)
    print_table(rows)
    print("ratio = curvnet / PyTorch (below 1: curvnet faster); end to end: wall with / without curvature.")
    print("float32, TF32 off unless named; CUDA-event timed; PyTorch: the best of eager, fused Adam and a captured")
    print("CUDA graph for training; double backward for HVPs. met: yes / NO / missing (did not run).")
    if breakdown:
        print("curvature checkpoint breakdown: " + ", ".join(f"{k[:-3]} {v:.1f} ms" for k, v in breakdown.items()))
    if isinstance(e2e_doc, dict):
        keys = ["with_s", "without_s", "ratio", "curvature_s", "curvature_wait_s", "device", "steps"]
        print("end to end: " + ", ".join(f"{k} {e2e_doc[k]:.3f}" if isinstance(e2e_doc.get(k), float) else
                                         f"{k} {e2e_doc[k]}" for k in keys if k in e2e_doc))
    san = sanitizer_lines(out)
    if san is not None:
        print("compute-sanitizer (errors per CUDA test binary):")
        for line in san:
            print(line)
    tests = ctest_line(out)
    if tests:
        print(tests)
    for e in errors:
        print("error:", e)
    if json_out:
        with open(json_out, "w") as f:
            json.dump({"rows": rows, "breakdown_ms": breakdown, "sanitizer": load(os.path.join(out, "sanitizer.json")),
                       "tests": tests}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
