#!/usr/bin/env python3
"""Activation variance across depth for two initialisations of a deep ReLU MLP: He keeps the
variance of the pre-activations roughly constant with depth, Xavier halves it at every ReLU
layer (docs/fidelity.md).

    python3 examples/python/init_variance.py [OUT_DIR]
"""
import pathlib
import sys
import tempfile

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

import curvnet

out = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="curvnet-"))
out.mkdir(parents=True, exist_ok=True)
depth, width = 12, 256
x = np.random.default_rng(0).standard_normal((512, 64))
fig, ax = plt.subplots(figsize=(5, 3.5))
for init in ("he_normal", "xavier_normal"):
    model = curvnet.Model(layers=[{"type": "linear", "out": width}, "relu"] * depth + [{"type": "linear", "out": 10}],
                          n_inputs=64, dtype="float64", overrides={"model.init": init})
    outs = model.forward(x, all_layers=True)
    pre = [o.var() for o, l in zip(outs, model.layers) if l["type"] == "linear"]
    print(f"{init:14s}", " ".join(f"{v:.3g}" for v in pre))
    ax.semilogy(range(1, len(pre) + 1), pre, "o-", label=init)
ax.set_xlabel("Linear layer")
ax.set_ylabel("pre-activation variance")
ax.legend()
fig.tight_layout()
fig.savefig(out / "init_variance.png", dpi=100)
print("wrote", out / "init_variance.png")
