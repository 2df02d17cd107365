#!/usr/bin/env python3
"""Train a small MLP with curvature checkpoints, then plot one layer's loss-Hessian spectrum
from the run (spectra/step_N.safetensors) next to the same spectrum recomputed from Python
on a batch of our own.

    python3 examples/python/train_spectrum.py [OUT_DIR]     (default: a new temporary directory)
"""
import logging
import pathlib
import sys
import tempfile

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

import curvnet

logging.basicConfig(level=logging.INFO, format="%(message)s")  # training progress via the "curvnet" logger
out = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="curvnet-"))
config = {
    "data": {"dataset": "spirals", "n_samples": 1000, "batch_size": 64},
    "model": {"hidden": [16, 16], "activation": "tanh"},
    "train": {"steps": 150, "log_every": 25, "seed": 1},
    "diagnostics": {"every": 50, "kinds": ["loss", "ggn"], "batch_size": 256},
}
run = curvnet.train(config, out=out / "run")
print(run, "final loss", run.metrics.loss.iloc[-1])

layer, last = 2, run.steps[-1]
logged = run.spectra[last][f"loss.{layer}.eigenvalues"]

# The same block from Python, on the curvature batch the run used (the first 256 training rows).
model = run.model(last, dtype="float64")
x, y = model.data("train", 256)
block = model.hessian_block(x, y, layer, "loss")
mine = np.linalg.eigvalsh(block)
print("largest eigenvalue: run", logged.max(), "Python", mine.max())
print("metrics:", {k: curvnet.metrics(mine)[k] for k in ("trace", "condition", "negative_share")})

fig, ax = plt.subplots(1, 2, figsize=(9, 3.5))
for a, (name, ev) in zip(ax, [("from the run", logged), ("from Python", mine)]):
    a.plot(np.sort(ev)[::-1], ".")
    a.set_yscale("symlog", linthresh=1e-6)
    a.set_title(f"layer {layer} loss block, step {last}, {name}")
    a.set_xlabel("index")
fig.tight_layout()
fig.savefig(out / "spectrum.png", dpi=100)
print("wrote", out / "spectrum.png")
