"""Reading a study directory into two tables (docs/analysis.md §1).

snapshots: one row per run and curvature checkpoint: the grid point, the normalised training
time t = step / last step, the spectral features (each the mean over the run's layers) and the
quality metrics as of that step. runs: one row per run, the mean of every snapshot column over
the second half of training (t >= 0.5): snapshots of one run are not independent, so every
test across runs uses these rows.
"""
import json
import math
import os
import struct
import tomllib

import numpy as np
import pandas as pd

from . import InputError  # noqa: F401 (raised by read_index)
from .index import read_index

# Hessian kinds in the order a claim about "the layer's Hessian", the phases and the CCA prefer
# them: the exact layer block of the loss Hessian first, since the seed paper's local Hessian
# vanishes for piecewise-linear activations (docs/curvature.md: a ReLU layer's local block is
# the zero matrix) and so cannot compare runs across activations; then local, then the
# approximations.
KIND_PREFERENCE = ("loss", "local", "ggn", "kfac")
# diagnostics.jsonl metrics taken per kind (docs/spec.md §3), and the derived ones.
DIAG_SHARES = ("near_zero_share", "negative_share", "symmetry", "balance", "bias_trace_share")
QUALITY_CLASSIFICATION = ("accuracy", "precision", "recall", "f1", "auc")
QUALITY_REGRESSION = ("r2", "mae", "rmse")
POINT_FACTORS = {"size": "size", "optim.name": "optimiser", "model.activation": "activation",
                 "data.dataset": "dataset", "model.init": "init"}
SECOND_HALF = 0.5


def _read_jsonl(path):
    """A run's JSON-lines file as a DataFrame; a torn last line (a killed writer) is skipped."""
    rows = []
    if not os.path.exists(path):
        return pd.DataFrame()
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return pd.DataFrame(rows)


# ---- spectra -------------------------------------------------------------------------------

_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "U8": "u1"}


def read_safetensors(path):
    """{name: 1-D float64 array} of a safetensors file (the public format: u64 header length,
    JSON header, raw little-endian data); a file that does not parse gives {}."""
    try:
        with open(path, "rb") as f:
            blob = f.read()
        (hlen,) = struct.unpack("<Q", blob[:8])
        header = json.loads(blob[8:8 + hlen])
    except (OSError, struct.error, ValueError):
        return {}
    base = 8 + hlen
    out = {}
    for name, info in header.items():
        if name == "__metadata__" or info.get("dtype") not in _DTYPES:
            continue
        begin, end = info["data_offsets"]
        out[name] = np.frombuffer(blob[base + begin:base + end], dtype=_DTYPES[info["dtype"]]).astype(np.float64)
    return out


def load_spectra(run_dir):
    """{step: {tensor name: values}} of a run's spectra: the packed series
    (spectra_series.safetensors, tensors "step_<N>/<name>", written when a sweep finishes a
    run) and any spectra/step_N.safetensors beside it (docs/design.md §5). The one place that
    knows how spectra are stored."""
    out = {}
    series = os.path.join(run_dir, "spectra_series.safetensors")
    if os.path.isfile(series):
        for key, values in read_safetensors(series).items():
            head, sep, name = key.partition("/")
            if not sep or not head.startswith("step_"):
                continue
            try:
                step = int(head[len("step_"):])
            except ValueError:
                continue
            out.setdefault(step, {})[name] = values
    folder = os.path.join(run_dir, "spectra")
    if not os.path.isdir(folder):
        return out
    for name in os.listdir(folder):
        if name.startswith("step_") and name.endswith(".safetensors"):
            try:
                step = int(name[len("step_"):-len(".safetensors")])
            except ValueError:
                continue
            tensors = read_safetensors(os.path.join(folder, name))
            if tensors:
                out[step] = tensors
    return out


# ---- one run -------------------------------------------------------------------------------

def _log10(x):
    x = pd.to_numeric(x, errors="coerce").abs()
    return np.log10(x.where(x > 0))


def _diag_features(diag):
    """Per step: each kind's metrics, mean over layers, as columns "<kind>.<metric>"."""
    if diag.empty or "kind" not in diag or "step" not in diag:
        return pd.DataFrame()
    d = diag[diag["layer"].notna()].copy() if "layer" in diag else diag.copy()
    num = lambda c: pd.to_numeric(d[c], errors="coerce") if c in d else pd.Series(np.nan, index=d.index)
    n = num("n_params")
    feats = pd.DataFrame({"step": d["step"], "kind": d["kind"]})
    feats["rank_share"] = num("rank") / n
    feats["effective_rank_share"] = num("effective_rank") / n
    for c in DIAG_SHARES:
        feats[c] = num(c)
    feats["log_std"] = _log10(num("std"))
    feats["log_lambda_max"] = _log10(num("lambda_max"))
    feats["log_condition"] = _log10(num("condition"))
    wide = feats.groupby(["step", "kind"]).mean().unstack("kind")
    wide.columns = [f"{kind}.{metric}" for metric, kind in wide.columns]
    return wide.dropna(axis=1, how="all")


def _weight_features(stats):
    """Per model checkpoint: the doctor's singular-value rows (kind "spectrum"), mean over layers."""
    if stats.empty or "kind" not in stats:
        return pd.DataFrame()
    s = stats[stats["kind"] == "spectrum"]
    if s.empty:
        return pd.DataFrame()
    num = lambda c: pd.to_numeric(s[c], errors="coerce") if c in s else pd.Series(np.nan, index=s.index)
    f = pd.DataFrame({"step": s["step"]})
    f["weights.rank_share"] = num("numerical_rank") / np.minimum(num("rows"), num("cols"))
    f["weights.stable_rank"] = num("stable_rank")
    f["grads.stable_rank"] = num("grad_stable_rank")
    f["weights.grad_corr"] = num("weight_grad_corr")
    f["weights.adjacent_similarity"] = num("spectrum_similarity")
    return f.groupby("step").mean().dropna(axis=1, how="all")


def _bias_param_share(stats):
    """Per layer: biases' share of a Linear layer's parameters, 1 / (inputs + 1)."""
    if stats.empty or "kind" not in stats or "cols" not in stats:
        return {}
    s = stats[stats["kind"] == "spectrum"].dropna(subset=["cols"])
    return {int(l): 1.0 / (float(c) + 1.0) for l, c in zip(s["layer"], s["cols"])}


def _asof(left_steps, table, columns, prefix=""):
    """The last row of `table` at or before each step (a metric "as of" a checkpoint)."""
    if table.empty or "step" not in table:
        return pd.DataFrame(index=left_steps)
    cols = [c for c in columns if c in table]
    if not cols:
        return pd.DataFrame(index=left_steps)
    right = table[["step"] + cols].copy()
    for c in cols:
        right[c] = pd.to_numeric(right[c], errors="coerce")
    right = right.sort_values("step").drop_duplicates("step", keep="last")
    right["step"] = right["step"].astype(np.int64)
    left = pd.DataFrame({"step": np.asarray(sorted(left_steps), dtype=np.int64)})
    merged = pd.merge_asof(left, right, on="step", direction="backward")
    merged = merged.set_index("step")
    merged.columns = [prefix + c for c in merged.columns]
    return merged


def load_run(study_dir, row):
    """(snapshots DataFrame or None, a reason when None, extras) of one index row."""
    run_dir = os.path.join(study_dir, row["run_dir"])
    if row["status"] != "done":
        return None, f"status {row['status']}", {}
    if not os.path.isdir(run_dir):
        return None, f"{run_dir}: no such directory", {}
    diag = _read_jsonl(os.path.join(run_dir, "diagnostics.jsonl"))
    stats = _read_jsonl(os.path.join(run_dir, "stats.jsonl"))
    metrics = _read_jsonl(os.path.join(run_dir, "metrics.jsonl"))
    evals = _read_jsonl(os.path.join(run_dir, "eval.jsonl"))
    feats = _diag_features(diag)
    wfeats = _weight_features(stats)
    if feats.empty and wfeats.empty:
        return None, "no curvature checkpoints (diagnostics.jsonl) nor weight spectra (stats.jsonl)", {}
    snap = feats.join(wfeats, how="outer") if not feats.empty else wfeats
    snap = snap.sort_index()
    steps = list(snap.index)
    last_step = max([*steps, *(metrics["step"].tolist() if "step" in metrics else [])])
    train = _asof(steps, metrics, ["loss", "grad_norm"])
    train = train.rename(columns={"loss": "train_loss"})
    if "grad_norm" in train:
        train["log_grad_norm"] = _log10(train.pop("grad_norm"))
    val = evals[evals["split"] == "val"] if "split" in evals else pd.DataFrame()
    quality = _asof(steps, val, ["loss", *QUALITY_CLASSIFICATION, *QUALITY_REGRESSION], prefix="val_")
    snap = snap.join(train).join(quality)
    if "val_loss" in snap and "train_loss" in snap:
        snap["gen_gap"] = snap["val_loss"] - snap["train_loss"]
    snap = snap.reset_index().rename(columns={"index": "step"})
    snap.insert(0, "t", snap["step"] / last_step if last_step > 0 else 0.0)
    snap.insert(0, "run", int(row["index"]))
    extras = {"bias_param_share": _bias_param_share(stats), "run_dir": run_dir}
    return snap, None, extras


def _point_value(v):
    if isinstance(v, (list, dict)):
        return json.dumps(v, sort_keys=True)
    return v


def _config_value(run_dir, dotted):
    """A key of the run's resolved config.toml (for points that do not name it)."""
    try:
        with open(os.path.join(run_dir, "config.toml"), "rb") as f:
            cfg = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError):
        return None
    node = cfg
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return _point_value(node)


def load_study(study_dir):
    """(snapshots, runs, info): the two tables of docs/analysis.md §1 and what was skipped."""
    index = read_index(study_dir)
    frames, skipped, extras = [], [], {}
    for row in index:
        snap, reason, extra = load_run(study_dir, row)
        if snap is None:
            skipped.append({"run": row["index"], "run_dir": row["run_dir"], "reason": reason})
            continue
        run_dir = extra["run_dir"]
        for key, name in POINT_FACTORS.items():
            value = row["point"].get(key)
            if value is None and key != "size":
                value = _config_value(run_dir, key)
            snap.insert(1, name, "—" if value is None else str(_point_value(value)))
        snap.insert(1, "task", _task_of(snap))
        frames.append(snap)
        extras[int(row["index"])] = extra
    if not frames:
        snapshots = pd.DataFrame(columns=["run", "t", "step"])
    else:
        snapshots = pd.concat(frames, ignore_index=True, sort=False)
    snapshots["architecture"] = (snapshots.get("size", "—").astype(str) + " / "
                                 + snapshots.get("activation", "—").astype(str)) if len(snapshots) else []
    runs = aggregate_runs(snapshots)
    info = {"n_index": len(index), "skipped": skipped, "extras": extras,
            "grid_keys": sorted({k for r in index for k in r["point"]})}
    return snapshots, runs, info


def _task_of(snap):
    if any(c in snap and snap[c].notna().any() for c in ("val_r2", "val_rmse", "val_mae")):
        return "regression"
    if any(c in snap and snap[c].notna().any() for c in ("val_accuracy", "val_f1")):
        return "classification"
    return "—"


LABELS = ("run", "task", "dataset", "size", "optimiser", "activation", "init", "architecture")


def numeric_columns(df):
    return [c for c in df.columns if c not in LABELS and c not in ("t", "step")
            and pd.api.types.is_numeric_dtype(df[c])]


def aggregate_runs(snapshots):
    """One row per run: each numeric column's mean over the snapshots with t >= 0.5 (the run's
    last snapshot when none is that late), plus the label columns."""
    if snapshots.empty:
        return pd.DataFrame(columns=list(LABELS))
    late = snapshots[snapshots["t"] >= SECOND_HALF]
    missing = set(snapshots["run"]) - set(late["run"])
    if missing:
        last = snapshots[snapshots["run"].isin(missing)].sort_values("t").groupby("run").tail(1)
        late = pd.concat([late, last])
    num = numeric_columns(snapshots)
    agg = late.groupby("run")[num].mean()
    labels = snapshots.groupby("run")[[c for c in LABELS if c in snapshots and c != "run"]].first()
    out = labels.join(agg).reset_index()
    out["n_snapshots"] = snapshots.groupby("run").size().reindex(out["run"]).to_numpy()
    return out


def feature_columns(df):
    """Spectral features: the per-kind Hessian metrics and the weight/gradient spectra."""
    return [c for c in numeric_columns(df) if "." in c]


def quality_columns(df):
    return [c for c in numeric_columns(df) if c in ("train_loss", "gen_gap") or c.startswith("val_")]


def finite_count(series):
    x = pd.to_numeric(series, errors="coerce")
    return int(np.isfinite(x).sum())


def is_finite_number(v):
    return isinstance(v, (int, float)) and math.isfinite(v)
