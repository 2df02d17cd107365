"""curvnet.train against `curvnet train` (bit-identical parameters), Ctrl-C and resume, and
open_run reading every file of a run."""
import json
import os
import pathlib
import signal
import subprocess
import tomllib

import numpy as np
import pytest

import curvnet
from conftest import cli_path, tiny_config


@pytest.fixture(scope="module")
def python_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("py") / "run"
    lines = []
    run = curvnet.train(tiny_config(), out=out, callback=lines.append)
    assert lines and run.summary["steps"] == 30 and not run.summary["interrupted"]
    return run


def last_model(path):
    steps = sorted(int(p.name[5:]) for p in (pathlib.Path(path) / "checkpoints").glob("step_*"))
    return steps[-1], curvnet.read_safetensors(pathlib.Path(path) / "checkpoints" / f"step_{steps[-1]}" / "model.safetensors")


def test_train_matches_the_cli_bit_for_bit(python_run, tmp_path):
    cli = cli_path()
    if not cli:
        pytest.skip("no curvnet program found (set CURVNET_CLI or build build/cpu/curvnet)")
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(curvnet.toml_dumps(tiny_config()))
    out = tmp_path / "cli"
    subprocess.run([cli, "train", str(cfg), "--out", str(out)], check=True, capture_output=True,
                   env={**os.environ, "OMP_NUM_THREADS": "1"})
    step_py, py = last_model(python_run.path)
    step_cli, cl = last_model(out)
    assert step_py == step_cli == 30
    assert py.keys() == cl.keys()
    for k in py:
        if k != "__metadata__":
            assert py[k].tobytes() == cl[k].tobytes(), k
    # and the curvature logged along the way
    a = python_run.diagnostics
    b = pd_read(out / "diagnostics.jsonl")
    assert len(a) == len(b) and np.array_equal(a.trace.to_numpy(), b.trace.to_numpy())


def pd_read(path):
    import pandas as pd
    return pd.read_json(path, lines=True, precise_float=True)


def test_ctrl_c_stops_with_a_checkpoint_and_resumes_to_the_same_parameters(python_run, tmp_path):
    out = tmp_path / "interrupted"
    sent = []

    def on_line(line):  # the first progress line: as if Ctrl-C were pressed now
        if not sent:
            sent.append(line)
            os.kill(os.getpid(), signal.SIGINT)

    run = curvnet.train(tiny_config(steps=3000), out=out, callback=on_line)
    stopped = run.summary["steps"]
    assert run.summary["interrupted"] and 0 < stopped < 30
    assert run.steps[-1] == stopped  # a checkpoint at the stop
    resumed = curvnet.train(resume=out, overrides={"train.steps": 30}, callback=lambda line: None)
    assert resumed.summary["steps"] == 30 and not resumed.summary["interrupted"]
    _, a = last_model(out)
    _, b = last_model(python_run.path)
    assert all(a[k].tobytes() == b[k].tobytes() for k in a if k != "__metadata__")


def test_open_run_reads_every_file(python_run):
    run = curvnet.open_run(python_run.path)
    root = run.path
    seen = set()

    def lines(name):
        return [l for l in (root / name).read_text().splitlines() if l.strip()]

    for name in ("metrics", "eval", "stats", "diagnostics", "alarms"):
        frame = getattr(run, name)
        assert len(frame) == len(lines(f"{name}.jsonl")), name
        if len(frame):
            first = json.loads(lines(f"{name}.jsonl")[0])
            assert set(first) <= set(frame.columns)
        seen.add(root / f"{name}.jsonl")
    assert run.config == tomllib.loads((root / "config.toml").read_text())
    assert run.config["train"]["steps"] == 30
    seen.add(root / "config.toml")
    assert run.meta == json.loads((root / "meta.json").read_text())
    seen.add(root / "meta.json")
    from safetensors.numpy import load_file  # the independent reader
    def same(ours, path):
        theirs = load_file(str(path))
        assert set(k for k in ours if k != "__metadata__") == set(theirs), path
        for k, v in theirs.items():
            assert ours[k].dtype == v.dtype and np.array_equal(ours[k], v), (path, k)
        seen.add(path)
    same(run.data, root / "data.safetensors")
    assert run.steps == [0, 10, 20, 30]
    for step, files in run.checkpoints.items():
        for stem, tensors in files.items():
            same(tensors, root / "checkpoints" / f"step_{step}" / f"{stem}.safetensors")
    assert set(run.spectra) == {0, 10, 20, 30}
    for step, tensors in run.spectra.items():
        same(tensors, root / "spectra" / f"step_{step}.safetensors")
        assert "loss.0.eigenvalues" in tensors
    assert run.report == root / "report.html"
    seen.add(root / "report.html")
    assert run.events
    seen.update(run.events)
    everything = {p for p in root.rglob("*") if p.is_file()}
    assert everything - seen == set(), "files open_run does not read"
    # the model at a checkpoint, through the run
    m = run.model(30)
    np.testing.assert_array_equal(m.layer_parameters(0)["0.weight"], run.checkpoints[30]["model"]["0.weight"])


def test_bad_config_is_a_value_error_naming_the_key(tmp_path):
    with pytest.raises(ValueError, match="optim.lr"):
        curvnet.train({"optim": {"lr": -1.0}}, out=tmp_path / "bad")
    with pytest.raises(ValueError, match="model.hidden"):
        curvnet.Model({"model": {"hidden": "wide"}})
