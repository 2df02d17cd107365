"""Shared helpers of the Python module's tests (tests/python/): the installed package, the CLI
binary for the comparisons with `curvnet train`, and a torch oracle of the flat-buffer network."""
import os
import pathlib
import shutil

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def cli_path():
    """The `curvnet` program: $CURVNET_CLI, else the first build/*/curvnet of the tree."""
    env = os.environ.get("CURVNET_CLI")
    if env:
        return env
    for b in ("build/test", "build/cpu", "build/release", "build/quickstart"):
        p = ROOT / b / "curvnet"
        if p.is_file() and os.access(p, os.X_OK):
            return str(p)
    return shutil.which("curvnet")


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))


def tiny_config(**train):
    """A run of a few seconds: spirals, two tanh layers, Adam, curvature every 10 steps."""
    return {
        "data": {"dataset": "spirals", "n_samples": 300, "batch_size": 32},
        "model": {"hidden": [8, 8], "activation": "tanh", "dropout": 0.1},
        "train": {"steps": 30, "log_every": 5, "eval_every": 10, "seed": 3, "device": "cpu", **train},
        "checkpoint": {"every": 10},
        "diagnostics": {"every": 10, "kinds": ["loss", "local", "ggn"], "batch_size": 64},
    }
