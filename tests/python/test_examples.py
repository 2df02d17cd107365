"""The examples of examples/python/ run (each in its own process, a few seconds each)."""
import os
import pathlib
import subprocess
import sys

import pytest

from conftest import ROOT

EXAMPLES = sorted((ROOT / "examples" / "python").glob("*.py"))


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs(script, tmp_path):
    r = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"})
    assert r.returncode == 0, r.stdout + r.stderr
    for png in ("spectrum.png", "init_variance.png"):
        if png in r.stdout:
            assert (tmp_path / png).stat().st_size > 1000
