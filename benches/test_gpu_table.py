#!/usr/bin/env python3
"""benches/gpu_table.py on fabricated gpu-check results: each target row's verdict follows
its bound, missing benchmarks are named missing (never met), the checkpoint breakdown, the
end-to-end ratio, the sanitizer summary and ctest's count are printed. No GPU needed."""
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
TABLE = os.path.join(HERE, "gpu_table.py")


def bench(name, ms, **counters):
    return dict({"name": name, "run_name": name, "run_type": "iteration", "real_time": ms * 1e3, "time_unit": "us"},
                **counters)


def write(folder, name, doc):
    with open(os.path.join(folder, name), "w") as f:
        json.dump(doc, f)


def main():
    with tempfile.TemporaryDirectory() as d:
        write(d, "bench_cuda.json", {"benchmarks": [
            bench("BM_TrainStep_cuda/S_784_128_128_10_b256_graph/min_time:1.000/real_time", 0.12),
            bench("BM_TrainStep_cuda/S_784_128_128_10_b256/min_time:1.000/real_time", 0.2),
            bench("BM_TrainStep_cuda/S_784_128_128_10_b256_fused", 0.05),  # name without a suffix
            bench("BM_TrainStep_cuda/M_784_1024x4_10_b1024_graph/min_time:1.000/real_time", 0.55),
        ]})
        write(d, "bench_cuda_hvp.json", {"benchmarks": [
            bench("BM_Hvp_cuda/M_784_1024x4_10/1/manual_time", 1.7),
        ]})
        write(d, "bench_cuda_curvature.json", {"benchmarks": [
            dict(bench("BM_CurvatureCheckpoint_cuda_f32/10/iterations:3/manual_time", 90.0), hvp_ms=40.0,
                 assembly_ms=5.0, eigensolver_ms=30.0, metrics_ms=10.0, checks_ms=5.0),
        ]})
        write(d, "torch_train.json", {"ms": {"S": 0.25, "M": 1.0}})
        write(d, "overlap_e2e.json", {"with_s": 2.4, "without_s": 2.0, "ratio": 1.2, "curvature_s": 0.5})
        write(d, "sanitizer.json", {"test_cuda_ops": {"memcheck": {"errors": 0, "status": "ok"},
                                                      "racecheck": {"errors": 3, "status": "failed"}}})
        with open(os.path.join(d, "ctest.log"), "w") as f:
            f.write("The following tests FAILED:\n\t 17 - Trainer.X (Failed)\n"
                    "99% tests passed, 1 tests failed out of 352\n")
        js = os.path.join(d, "table.json")
        res = subprocess.run([sys.executable, TABLE, d, "--json", js], capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        text = res.stdout
        print(text)
        rows = {r["what"]: r for r in json.load(open(js))["rows"]}

        def met(what):
            return rows[what]["met"]

        assert met("train step S 784-128-128-10 b256, graph") == "yes"
        assert met("train step S, fused MLP kernel") == "NO", rows["train step S, fused MLP kernel"]
        assert abs(rows["train step S, fused MLP kernel"]["curvnet_ms"] - 0.05) < 1e-12
        assert met("train step M 784-1024x4-10 b1024, graph") == "yes"
        assert met("1 exact HVP M") == "NO"
        assert met("64 HVPs M, per direction") == "missing"  # its benchmark did not run
        assert met("train step M, graph, backward GEMMs on two streams") == "missing"
        ck = "curvature checkpoint 32-64-64-64-10 tanh b512 f32 (4 loss blocks + spectra)"
        assert met(ck) == "yes" and abs(rows[ck]["curvnet_ms"] - 90.0) < 1e-9
        assert abs(rows["train step S 784-128-128-10 b256, graph"]["ratio"] - 0.12 / 0.25) < 1e-12
        e2e = [r for w, r in rows.items() if w.startswith("end to end")][0]
        assert e2e["met"] == "NO" and abs(e2e["ratio"] - 1.2) < 1e-12
        assert "syevd n=650 f32" not in rows  # a reference row without data is left out
        assert "hvp 40.0 ms" in text and "checks 5.0 ms" in text
        assert "test_cuda_ops: memcheck 0 errors (ok), racecheck 3 errors (failed)" in text
        assert "tests: 351 of 352 passed; failed: Trainer.X" in text

        # An empty folder: every target row is missing, none is met.
        with tempfile.TemporaryDirectory() as empty:
            res = subprocess.run([sys.executable, TABLE, empty, "--json", js], capture_output=True, text=True)
            assert res.returncode == 0, res.stderr
            assert all(r["met"] == "missing" for r in json.load(open(js))["rows"])
        res = subprocess.run([sys.executable, TABLE, os.path.join(d, "nope")], capture_output=True, text=True)
        assert res.returncode == 2 and "not a directory" in res.stderr
    print("gpu_table: ok")


if __name__ == "__main__":
    main()
