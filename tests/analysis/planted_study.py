#!/usr/bin/env python3
"""A planted study: index.jsonl and run directories in the run-directory format of
docs/design.md §5, written from chosen latent variables so that the answers are known.

Per run (independent across runs), with a, b, u1, u2, u3 ~ N(0, 1):
  loss.log_std          = -2 + 0.3 a            (diagnostics.jsonl "std" = 10 ** that)
  loss.near_zero_share  = 0.3 + 0.05 b
  val_loss               = 0.5 + 0.1 (R1 a + sqrt(1 - R1²) u1)
  val_accuracy           = 0.8 + 0.03 (R2 b + sqrt(1 - R2²) u2)
  train_loss             = 0.3 + 0.05 u3
so Pearson(loss.log_std, val_loss) = R1, Pearson(loss.near_zero_share, val_accuracy) = R2, and
the canonical correlations between the spectral and the quality blocks are R1 and R2 (then 0).
Every other feature is noise (with an offset per architecture, so the embedding has clusters).
Within a run each column is its run value plus a shape over normalised time shared by every
run (the same checkpoints everywhere), so the per-run second-half means keep the planted values
up to a constant; a little snapshot noise is added.

  planted_study.py OUT [--runs N] [--checkpoints K] [--kinds loss,local] [--seed S]
prints the planted values as JSON.
"""
import argparse
import json
import math
import os
import struct

import numpy as np

R1 = 0.8
R2 = 0.5
LAYERS = {0: (8, 4), 2: (8, 8), 4: (3, 8)}  # layer: (outputs, inputs) of an iris-sized MLP
STEPS = 500


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, values in tensors.items():
        data = np.asarray(values, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": [len(values)], "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def spread_at(t, t0):
    """Spread of log10 |eigenvalue|: a fast rise around t0, a slow drift, then constant."""
    fast = 1.5 / (1 + math.exp(-(t - t0) / 0.04))
    slow = 0.3 * min(max((t - t0 - 0.15) / 0.35, 0.0), 1.0)
    return 0.3 + fast + slow


def write_run(run_dir, point, latent, rng, checkpoints, kinds):
    os.makedirs(os.path.join(run_dir, "spectra"), exist_ok=True)
    a, b, u1, u2, u3, arch_shift, t0 = latent
    run_log_std = -2 + 0.3 * a
    run_nzs = 0.3 + 0.05 * b
    run_val = 0.5 + 0.1 * (R1 * a + math.sqrt(1 - R1 ** 2) * u1)
    run_acc = 0.8 + 0.03 * (R2 * b + math.sqrt(1 - R2 ** 2) * u2)
    run_train = 0.3 + 0.05 * u3
    noise = lambda: rng.normal(0, 0.005)
    steps = np.linspace(0, STEPS, checkpoints).round().astype(int)
    with open(os.path.join(run_dir, "config.toml"), "w") as f:
        f.write(f'[data]\ndataset = "{point["data.dataset"]}"\n[model]\nhidden = [8, 8]\n'
                f'activation = "{point["model.activation"]}"\n[optim]\nname = "{point["optim.name"]}"\n')
    metrics, evals, diags, stats = [], [], [], []
    z = np.sort(rng.standard_normal(256))
    for step in steps:
        t = step / STEPS
        shape = 0.2 * math.exp(-3 * t)  # every column relaxes the same way in every run
        metrics.append({"step": int(step), "epoch": int(step // 50), "loss": run_train + shape + noise(),
                        "grad_norm": 10 ** (-1 - t + 0.1 * rng.normal()), "lr": 1e-3})
        evals.append({"step": int(step), "epoch": int(step // 50), "split": "val", "loss": run_val + shape + noise(),
                      "accuracy": run_acc - 0.1 * shape + noise() * 0.2})
        tensors = {}
        for layer, (rows, cols) in LAYERS.items():
            n_params = rows * cols + rows
            for k, kind in enumerate(kinds):
                std = 10 ** (run_log_std + shape + noise() + 0.1 * k)
                sym = 0.2 + arch_shift + noise()
                diags.append({"step": int(step), "layer": layer, "kind": kind, "n_params": n_params,
                              "method": "dense", "std": std, "near_zero_share": run_nzs + shape + noise(),
                              "symmetry": sym, "bias_trace_share": 0.3 + 0.5 * arch_shift + rng.normal(0, 0.02),
                              "rank": int(n_params * (0.8 + 0.05 * rng.normal()))})
                s = spread_at(t, t0)
                tensors[f"{kind}.{layer}.eigenvalues"] = np.sign(z[:n_params] + 0.5) * 10 ** (-2 + s * z[:n_params])
            w = np.sort(np.abs(rng.normal(1 + arch_shift, 0.3, min(rows, cols))))[::-1]
            g = np.sort(np.abs(rng.normal(0.1, 0.03, min(rows, cols))))[::-1]
            tensors[f"weights.{layer}.singular_values"] = w
            tensors[f"grads.{layer}.singular_values"] = g
            row = {"step": int(step), "layer": layer, "kind": "spectrum", "type": "linear", "rows": rows,
                   "cols": cols, "sigma_max": float(w[0]), "sigma_min": float(w[-1]),
                   "numerical_rank": min(rows, cols), "stable_rank": float((w ** 2).sum() / w[0] ** 2),
                   "grad_stable_rank": float((g ** 2).sum() / g[0] ** 2),
                   "weight_grad_corr": float(np.corrcoef(w, g)[0, 1]) if len(w) > 1 else None}
            if layer != 4:
                row["next_layer"] = layer + 2
                row["spectrum_similarity"] = float(0.5 + arch_shift + rng.normal(0, 0.05))
            stats.append(row)
        write_safetensors(os.path.join(run_dir, "spectra", f"step_{step}.safetensors"), tensors)
    for name, rows in (("metrics", metrics), ("eval", evals), ("diagnostics", diags), ("stats", stats)):
        with open(os.path.join(run_dir, f"{name}.jsonl"), "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
    with open(os.path.join(run_dir, "alarms.jsonl"), "w"):
        pass


def make_study(out, runs=150, checkpoints=12, kinds=("loss",), seed=0, failed=1):
    """Writes the study; returns the planted values {'pearson': ..., 'cancorr': [...]}."""
    rng = np.random.default_rng(seed)
    os.makedirs(out, exist_ok=True)
    datasets = ["iris", "wine", "breast-cancer"]
    sizes, optims, acts = ["small", "medium", "huge"], ["adam", "sgd", "rmsprop"], ["relu", "sigmoid"]
    index = []
    for i in range(runs + failed):
        point = {"data.dataset": datasets[i % 3], "size": sizes[(i // 3) % 3], "optim.name": optims[(i // 9) % 3],
                 "model.activation": acts[(i // 27) % 2]}
        run_dir = f"runs/{i:04d}"
        if i >= runs:  # a failed grid point: in the index, no run to read
            index.append({"index": i, "point": point, "status": "failed", "run_dir": run_dir, "wall_s": 0.1})
            continue
        arch_shift = 0.1 * sizes.index(point["size"]) + 0.3 * acts.index(point["model.activation"])
        latent = (*rng.standard_normal(5), arch_shift, rng.uniform(0.12, 0.3))
        write_run(os.path.join(out, run_dir), point, latent, rng, checkpoints, list(kinds))
        index.append({"index": i, "point": point, "status": "done", "run_dir": run_dir, "wall_s": 1.0})
    with open(os.path.join(out, "index.jsonl"), "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in index)
    with open(os.path.join(out, "study.toml"), "w") as f:
        f.write('[grid]\n"data.dataset" = ["iris", "wine", "breast-cancer"]\nsize = ["small", "medium", "huge"]\n')
    return {"pearson": [{"feature": "loss.log_std", "metric": "val_loss", "r": R1},
                        {"feature": "loss.near_zero_share", "metric": "val_accuracy", "r": R2}],
            "cancorr": [R1, R2], "runs": runs}


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--runs", type=int, default=150)
    p.add_argument("--checkpoints", type=int, default=12)
    p.add_argument("--kinds", default="loss")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    print(json.dumps(make_study(a.out, a.runs, a.checkpoints, tuple(a.kinds.split(",")), a.seed)))
