"""curvnet from Python: build a model, train it as ``curvnet train`` does, take exact
Hessian-vector products, layer blocks and spectra of any batch, and read run directories.

    import numpy as np, curvnet
    model = curvnet.Model({"data": {"dataset": "spirals"}, "model": {"hidden": [16, 16]}}, dtype="float64")
    x, y = model.data("train", 256)
    hv = model.hvp(x, y, np.ones(model.num_params))          # exact H·v of the mean loss
    block = model.hessian_block(x, y, layer=0, kind="loss")  # the layer's diagonal block
    spec = model.spectrum(x, y, kinds=["loss"])               # the rows `curvnet hessian` writes
    run = curvnet.train({"data": {"dataset": "spirals"}, "train": {"epochs": 1}}, out="runs/spirals")
    run.metrics.loss.iloc[-1], run.checkpoints[run.steps[-1]]["model"]["0.weight"]

Arrays go in without a copy: float32 or float64 in the model's dtype, C-contiguous; anything
else is a TypeError naming the argument (convert explicitly), a wrong shape a ValueError.
The GIL is released while the engine works. docs/python.md is the reference.
"""
from __future__ import annotations

import json
import logging
import math
import os
import pathlib
import re
import tomllib
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Union

import numpy as np

from . import _curvnet
from ._curvnet import cuda_available, cuda_built

__all__ = ["Model", "Run", "Spectrum", "train", "open_run", "metrics", "read_safetensors", "cuda_available",
           "cuda_built", "CURVATURE_KINDS"]
__version__ = _curvnet.__version__

#: The kinds of curvature (diagnostics.kinds), as the CLI names them.
CURVATURE_KINDS = ("loss", "local", "ggn", "kfac", "diag", "fisher_diag", "full_top")

_log = logging.getLogger("curvnet")
PathLike = Union[str, os.PathLike]
ConfigLike = Union[Mapping[str, Any], PathLike, None]


# --------------------------------------------------------------------------------------
# Configs: a dict (the TOML's tables), a TOML path, or None (every default)
# --------------------------------------------------------------------------------------

def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        f = float(v)
        if math.isnan(f):
            return "nan"
        if math.isinf(f):
            return "inf" if f > 0 else "-inf"
        return repr(f)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, Mapping):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"config: a value of type {type(v).__name__} has no TOML form")


def toml_dumps(config: Mapping[str, Any]) -> str:
    """A config dict ({"section": {"key": value}}, ``model.layers`` a list of dicts) as TOML."""
    out: List[str] = []
    for section, table in config.items():
        if not isinstance(table, Mapping):
            raise TypeError(f"config: [{section}] must be a dict of keys, got {type(table).__name__}")
        arrays = {k: v for k, v in table.items()
                  if isinstance(v, (list, tuple)) and v and all(isinstance(e, Mapping) for e in v)}
        out.append(f"[{section}]")
        out += [f"{k} = {_toml_value(v)}" for k, v in table.items() if k not in arrays]
        for k, entries in arrays.items():
            for e in entries:
                out.append(f"[[{section}.{k}]]")
                out += [f"{ek} = {_toml_value(ev)}" for ek, ev in e.items()]
    return "\n".join(out) + "\n"


def _config_source(config: ConfigLike, overrides: Mapping[str, Any] | None = None) -> tuple:
    """(TOML text, origin) of a config given as a dict, a path or None, with dotted overrides
    ({"optim.lr": 0.1}) merged in."""
    if config is None:
        text, origin, base = "", "run.toml", {}
    elif isinstance(config, Mapping):
        text, origin, base = None, "run.toml", {k: dict(v) for k, v in config.items()}
    elif isinstance(config, (str, os.PathLike)):
        path = pathlib.Path(config)
        text, origin = path.read_text(), str(path)
        base = tomllib.loads(text) if overrides else {}
    else:
        raise TypeError(f"config: expected a dict, a TOML path or None, got {type(config).__name__}")
    if overrides:
        for key, value in overrides.items():
            section, _, name = key.partition(".")
            if not name:
                raise ValueError(f"overrides: {key!r}: expected section.key")
            base.setdefault(section, {})[name] = value
        text = None
    if text is None:
        text = toml_dumps(base)
    return text, origin


def resolved_config(config: ConfigLike = None, overrides: Mapping[str, Any] | None = None) -> Dict[str, Any]:
    """The config with every default filled in, as ``curvnet train`` writes config.toml."""
    return tomllib.loads(_curvnet.to_toml(*_config_source(config, overrides)))


# --------------------------------------------------------------------------------------
# Argument checks: one line naming the argument and what was expected; never a copy
# --------------------------------------------------------------------------------------

def _array(name: str, a: Any, dtype: np.dtype) -> np.ndarray:
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name}: expected a numpy.ndarray of {dtype}, got {type(a).__name__}")
    if a.dtype != dtype:
        raise TypeError(f"{name}: expected dtype {dtype} (the model's dtype), got {a.dtype}; "
                        f"convert explicitly: {name}.astype(numpy.{dtype})")
    if not a.flags.c_contiguous:
        raise TypeError(f"{name}: expected a C-contiguous array, got a non-contiguous one (strides "
                        f"{a.strides}); make one explicitly: numpy.ascontiguousarray({name})")
    return a


def _shape_error(name: str, expected: str, a: np.ndarray) -> ValueError:
    return ValueError(f"{name}: expected shape {expected}, got {a.shape}")


@dataclass
class Spectrum:
    """A curvature checkpoint of one batch: ``rows`` (one per layer and kind, the fields of
    diagnostics.jsonl; a pandas DataFrame when pandas is installed, else a list of dicts) and
    ``arrays`` (the spectra/step_N.safetensors tensors: ``loss.0.eigenvalues``, ...)."""
    rows: Any
    arrays: Dict[str, np.ndarray]

    def eigenvalues(self, layer: int, kind: str = "loss") -> np.ndarray:
        return self.arrays[f"{kind}.{layer}.eigenvalues"]


def _frame(rows: List[dict]):
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas is part of the supported setup
        return rows
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------

class Model:
    """A network over curvnet's flat parameter buffer, its loss and the exact curvature engine.

    ``Model(config)`` builds what ``curvnet train`` would (config: a dict of TOML tables, a TOML
    path, or None), its data set included (``data()``), initialised from ``train.seed``.
    ``Model(layers=[...], n_inputs=d, loss="mse")`` builds a bare stack ([[model.layers]]
    entries as dicts, or an activation's name) without data. ``dtype`` defaults to
    ``train.dtype``; ``device`` to ``train.device`` ("auto" | "cpu" | "cuda").

    Batches: ``x`` of shape (N, n_inputs); ``y`` the loss's targets: class indices of shape (N,)
    for cross-entropy (as floats of the model's dtype), (N, n_outputs) values for mse and
    bce_logits. Both in the model's dtype and C-contiguous (no silent copy). Curvature passes
    use ``training=True`` by default (BatchNorm with batch statistics, Dropout masks drawn
    from the curvature stream keyed by ``step``), as ``diagnostics.mode = "train"`` does.
    """

    def __init__(self, config: ConfigLike = None, *, layers: Optional[Sequence[Union[str, Mapping]]] = None,
                 n_inputs: Optional[int] = None, loss: Optional[str] = None, dtype: Optional[str] = None,
                 device: Optional[str] = None, seed: Optional[int] = None,
                 overrides: Optional[Mapping[str, Any]] = None):
        overrides = dict(overrides or {})
        if seed is not None:
            overrides["train.seed"] = seed
        if loss is not None:
            overrides["loss.kind"] = loss
        if layers is not None:
            specs = [{"type": l} if isinstance(l, str) else dict(l) for l in layers]
            linears = [s for s in specs if s.get("type", "linear") == "linear"]
            if not linears or "out" not in linears[-1]:
                raise ValueError("layers: expected at least one linear layer with its 'out' width")
            if n_inputs is None:
                raise ValueError("n_inputs: required with layers= (the input width)")
            overrides["model.layers"] = specs
        text, origin = _config_source(config, overrides)
        self.config: Dict[str, Any] = tomllib.loads(_curvnet.to_toml(text, origin))
        self.dtype = np.dtype(dtype or self.config["train"]["dtype"])
        if self.dtype not in (np.float32, np.float64):
            raise TypeError(f"dtype: expected 'float32' or 'float64', got {dtype!r}")
        cls = _curvnet.Model64 if self.dtype == np.float64 else _curvnet.Model32
        if layers is not None:
            self._m = cls(text, origin, int(n_inputs), int(linears[-1]["out"]), device or "")
        else:
            self._m = cls(text, origin, device or "")
        self._segments = self._m.segments()

    # ---- description ------------------------------------------------------------------
    n_inputs = property(lambda self: self._m.n_inputs, doc="Input width.")
    n_outputs = property(lambda self: self._m.n_outputs, doc="Output width.")
    num_params = property(lambda self: self._m.num_params, doc="Number of parameters (the flat buffer's length).")
    device = property(lambda self: self._m.device, doc='"cpu" or "cuda".')

    @property
    def layers(self) -> List[dict]:
        """Every layer: index, type, n_params and its first index in the flat buffer."""
        return [dict(index=i, type=t, n_params=n, offset=o) for i, t, n, o in self._m.layers()]

    def __repr__(self) -> str:
        stack = " -> ".join(l["type"] for l in self.layers)
        return f"curvnet.Model({self.n_inputs} inputs: {stack}; {self.num_params} parameters, {self.dtype}, {self.device})"

    # ---- parameters -------------------------------------------------------------------
    def parameters(self, writable: bool = False) -> np.ndarray:
        """The flat parameter buffer as a numpy array without a copy (layout: per layer its
        weight, out × in row-major, then its bias; BatchNorm weight then bias). Read-only
        unless ``writable``: writing changes the model. The array keeps the model alive."""
        return self._m.params_view(writable)

    def layer_parameters(self, layer: int, writable: bool = False) -> Dict[str, np.ndarray]:
        """Layer ``layer``'s tensors by their nn.Sequential names ("0.weight" of shape (out, in),
        "0.bias"), as views of the flat buffer (no copy)."""
        flat = self.parameters(writable)
        out = {}
        for name, l, off, rows, cols, _ in self._segments:
            if l == layer:
                v = flat[off:off + rows * cols]
                out[name] = v.reshape(rows, cols) if self.layers[l]["type"] == "linear" and name.endswith("weight") else v
        if not out and not 0 <= layer < len(self.layers):
            raise IndexError(f"layer: expected 0 ≤ layer < {len(self.layers)}, got {layer}")
        return out

    def state_dict(self) -> Dict[str, np.ndarray]:
        """Every parameter tensor (views) and running statistic (copies), nn.Sequential names."""
        out = {}
        for i in range(len(self.layers)):
            out.update(self.layer_parameters(i))
        out.update({k: np.asarray(v, dtype=self.dtype) for k, v in self._m.buffers().items()})
        return out

    def set_parameters(self, values: np.ndarray) -> None:
        """Copies ``values`` (num_params, the model's dtype) into the parameter buffer."""
        values = _array("values", values, self.dtype)
        if values.shape != (self.num_params,):
            raise _shape_error("values", f"({self.num_params},)", values)
        self._m.set_params(values)

    def parameters_dlpack(self):
        """The flat parameter buffer through DLPack where it lives (a CUDA model: on the GPU,
        e.g. ``torch.from_dlpack(model.parameters_dlpack())``), without a copy."""
        return self._m.params_dlpack()

    def load_checkpoint(self, path: PathLike) -> None:
        """Loads a checkpoints/step_N directory of a run with this model's config."""
        self._m.load_checkpoint(os.fspath(path))

    def data(self, split: str = "train", n: Optional[int] = None):
        """(x, y) of a split ("train" | "val" | "test") of the config's data set as the run sees
        it (standardised; targets in the loss's layout), the first ``n`` rows, in the model's dtype."""
        return self._m.data(split, -1 if n is None else int(n))

    # ---- checks -------------------------------------------------------------------------
    def _x(self, x):
        x = _array("x", x, self.dtype)
        if x.ndim != 2 or x.shape[1] != self.n_inputs or x.shape[0] == 0:
            raise _shape_error("x", f"(N, {self.n_inputs}) with N ≥ 1", x)
        return x

    def _xy(self, x, y):
        x = self._x(x)
        y = _array("y", y, self.dtype)
        width = self._m.target_width
        if self.config["loss"]["kind"] == "cross_entropy":
            if y.shape != (x.shape[0],):
                raise _shape_error("y", f"({x.shape[0]},) (class indices, one per row of x)", y)
        elif y.shape != (x.shape[0], width):
            raise _shape_error("y", f"({x.shape[0]}, {width})", y)
        return x, y

    def _v(self, v):
        v = _array("v", v, self.dtype)
        if v.ndim == 1 and v.shape[0] == self.num_params:
            return v.reshape(1, -1)
        if v.ndim == 2 and v.shape[1] == self.num_params and v.shape[0] > 0:
            return v
        raise _shape_error("v", f"({self.num_params},) or (k, {self.num_params})", v)

    # ---- passes -------------------------------------------------------------------------
    def forward(self, x: np.ndarray, *, training: bool = False, step: int = 0, all_layers: bool = False):
        """The network's output (N, n_outputs) — or every layer's output, a list — on ``x``.
        Evaluation mode by default; BatchNorm's running statistics are never updated."""
        outs = self._m.forward(self._x(x), training, step, all_layers)
        return outs if all_layers else outs[0]

    def loss(self, x: np.ndarray, y: np.ndarray, *, training: bool = True, step: int = 0) -> float:
        """The mean loss on the batch."""
        return self._m.loss(*self._xy(x, y), training, step)

    def gradient(self, x: np.ndarray, y: np.ndarray, *, training: bool = True, step: int = 0):
        """(mean loss, its gradient as a flat array of num_params)."""
        return self._m.gradient(*self._xy(x, y), training, step)

    def hvp(self, x: np.ndarray, y: np.ndarray, v: np.ndarray, *, training: bool = True, step: int = 0,
            mode: str = "hessian", out: Optional[np.ndarray] = None, keep_on_device: bool = False):
        """Exact Hessian-vector products H·v of the mean loss (Pearlmutter's R-operator), for one
        direction (v of shape (P,)) or k at once ((k, P), row i = direction i). ``mode="ggn"``:
        the Gauss-Newton matrix instead. The result has v's shape; ``out`` (same shape and
        dtype, C-contiguous) receives it without an allocation. ``keep_on_device``: the result
        stays where the model is and comes back through DLPack (a CUDA model: no copy to the
        host; ``torch.from_dlpack(...)``)."""
        if mode not in ("hessian", "ggn"):
            raise ValueError(f"mode: expected 'hessian' or 'ggn', got {mode!r}")
        x, y = self._xy(x, y)
        v2 = self._v(v)
        if keep_on_device:
            return self._m.hvp_device(x, y, v2, training, step, mode == "ggn")
        if out is None:
            out = np.empty(v.shape, dtype=self.dtype)
        else:
            out = _array("out", out, self.dtype)
            if out.shape != v.shape:
                raise _shape_error("out", str(v.shape), out)
            if not out.flags.writeable:
                raise TypeError("out: expected a writable array")
        self._m.hvp_into(x, y, v2, out.reshape(v2.shape), training, step, mode == "ggn")
        return out

    def hessian_block(self, x: np.ndarray, y: np.ndarray, layer: Optional[int], kind: str = "loss", *,
                      training: bool = True, step: int = 0, dense_max: int = 8192, probes: int = 256,
                      seed: Optional[int] = None) -> np.ndarray:
        """One layer's curvature of ``kind`` on the batch, in the layer's flat parameter order:
        "loss" the exact diagonal block of the loss Hessian, "ggn" its Gauss-Newton block,
        "local" the layer's local Hessian (closed form), "kfac" K-FAC's G ⊗ A — each p × p;
        "diag" the exact diagonal (Hutchinson's estimate with ``probes`` above ``dense_max``
        parameters), "fisher_diag" the empirical Fisher diagonal — each p values; "full_top"
        (``layer=None``) the whole network's P × P Hessian."""
        if kind not in CURVATURE_KINDS:
            raise ValueError(f"kind: expected one of {', '.join(CURVATURE_KINDS)}, got {kind!r}")
        x, y = self._xy(x, y)
        seed = self.config["train"]["seed"] if seed is None else seed
        return self._m.hessian_block(x, y, -1 if layer is None else int(layer), kind, training, step, dense_max,
                                     probes, seed)

    def spectrum(self, x: np.ndarray, y: np.ndarray, *, kinds: Sequence[str] = ("loss", "local"),
                 layers: Sequence[int] = (), mode: Optional[str] = None, dense_max_params: Optional[int] = None,
                 lanczos_k: Optional[int] = None, probes: Optional[int] = None, tau_rel: Optional[float] = None,
                 dtype: Optional[str] = None, seed: Optional[int] = None, step: int = 0,
                 lr: Optional[float] = None) -> Spectrum:
        """A curvature checkpoint on this batch, as ``curvnet hessian`` computes it: for every
        layer (``layers``, empty = all with parameters) and kind, the spectrum (dense up to
        ``dense_max_params``, else Lanczos + SLQ + Hutchinson) and the row of metrics and
        self-checks diagnostics.jsonl holds. Options default to the config's [diagnostics]
        keys (docs/config.md); ``lr`` (default optim.lr) sets full_top's stability edge."""
        x, y = self._xy(x, y)
        d = self.config["diagnostics"]
        pick = lambda v, k: d[k] if v is None else v
        for k in kinds:
            if k not in CURVATURE_KINDS:
                raise ValueError(f"kinds: expected each of {', '.join(CURVATURE_KINDS)}, got {k!r}")
        rows, arrays = self._m.spectrum(
            x, y, list(kinds), [int(l) for l in layers], pick(mode, "mode"), int(pick(dense_max_params, "dense_max_params")),
            int(pick(lanczos_k, "lanczos_k")), int(pick(probes, "probes")), float(pick(tau_rel, "tau_rel")),
            pick(dtype, "dtype"), self.config["train"]["seed"] if seed is None else seed, step,
            self.config["optim"]["lr"] if lr is None else lr)
        return Spectrum(_frame([json.loads(r) for r in rows]), dict(arrays))


def metrics(eigenvalues: Iterable[float], *, tau: Optional[float] = None, tau_rel: float = 0.0,
            eps: float = float(np.finfo(np.float64).eps)) -> Dict[str, Any]:
    """The spectral metrics of a full eigenvalue vector (trace, logdet, condition, effective
    rank, rank, near-zero and negative shares, balance, symmetry, mean, std, λmax, λmin), the
    fields of a dense diagnostics row; τ = ``tau``, else ``tau_rel`` (0: the dtype's default
    for ``eps``) × max|λ|. An absent metric is None with "<metric>_status" saying why."""
    values = [float(v) for v in np.asarray(eigenvalues, dtype=np.float64).ravel()]
    return json.loads(_curvnet.metrics(values, tau, tau_rel, eps))


# --------------------------------------------------------------------------------------
# Runs
# --------------------------------------------------------------------------------------

_ST_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
              "I16": np.int16, "I8": np.int8, "U64": np.uint64, "U32": np.uint32, "U16": np.uint16,
              "U8": np.uint8, "BOOL": np.bool_}


def read_safetensors(path: PathLike) -> Dict[str, np.ndarray]:
    """Every tensor of a safetensors file as a numpy array (the "__metadata__" entry, when
    present, as the key "__metadata__" holding a dict)."""
    raw = pathlib.Path(path).read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    base = 8 + n
    out: Dict[str, Any] = {}
    for name, info in header.items():
        if name == "__metadata__":
            out[name] = info
            continue
        begin, end = info["data_offsets"]
        dt = np.dtype(_ST_DTYPES[info["dtype"]]).newbyteorder("<")
        out[name] = np.frombuffer(raw, dtype=dt, count=(end - begin) // dt.itemsize,
                                  offset=base + begin).reshape(info["shape"]).copy()
    return out


def _read_jsonl(path: pathlib.Path):
    import pandas as pd
    if not path.exists() or path.stat().st_size == 0:
        return pd.DataFrame()
    return pd.read_json(path, lines=True, precise_float=True)


_STEP = re.compile(r"^step_(\d+)$")


class Run:
    """A run directory (README "The run directory"): ``metrics``, ``eval``, ``stats``,
    ``diagnostics`` and ``alarms`` as pandas DataFrames; ``checkpoints`` {step: {"model": {...},
    "state": {...}}} and ``spectra`` {step: {...}} as dicts of numpy arrays; ``config`` (dict),
    ``meta`` (dict), ``data`` (the splits' source rows and standardisation). Files are read
    when first asked for. ``summary``: what ``train`` returned (runs it started)."""

    def __init__(self, path: PathLike, summary: Optional[dict] = None):
        self.path = pathlib.Path(path)
        if not (self.path / "config.toml").is_file():
            raise ValueError(f"path: {self.path} is not a run directory (no config.toml)")
        self.summary = summary
        self._cache: Dict[str, Any] = {}

    def _cached(self, key, load):
        if key not in self._cache:
            self._cache[key] = load()
        return self._cache[key]

    metrics = property(lambda self: self._cached("metrics", lambda: _read_jsonl(self.path / "metrics.jsonl")))
    eval = property(lambda self: self._cached("eval", lambda: _read_jsonl(self.path / "eval.jsonl")))
    stats = property(lambda self: self._cached("stats", lambda: _read_jsonl(self.path / "stats.jsonl")))
    diagnostics = property(lambda self: self._cached("diagnostics", lambda: _read_jsonl(self.path / "diagnostics.jsonl")))
    alarms = property(lambda self: self._cached("alarms", lambda: _read_jsonl(self.path / "alarms.jsonl")))

    @property
    def config(self) -> Dict[str, Any]:
        return self._cached("config", lambda: tomllib.loads((self.path / "config.toml").read_text()))

    @property
    def meta(self) -> Dict[str, Any]:
        return self._cached("meta", lambda: json.loads((self.path / "meta.json").read_text()))

    @property
    def data(self) -> Dict[str, np.ndarray]:
        return self._cached("data", lambda: read_safetensors(self.path / "data.safetensors"))

    @property
    def steps(self) -> List[int]:
        """The steps with a complete checkpoint, ascending."""
        d = self.path / "checkpoints"
        found = [int(m.group(1)) for p in d.iterdir() if (m := _STEP.match(p.name))
                 and (p / "model.safetensors").is_file()] if d.is_dir() else []
        return sorted(found)

    @property
    def checkpoints(self) -> Dict[int, Dict[str, Dict[str, np.ndarray]]]:
        def load():
            out = {}
            for s in self.steps:
                d = self.path / "checkpoints" / f"step_{s}"
                out[s] = {f.stem: read_safetensors(f) for f in sorted(d.glob("*.safetensors"))}
            return out
        return self._cached("checkpoints", load)

    @property
    def spectra(self) -> Dict[int, Dict[str, np.ndarray]]:
        def load():
            d = self.path / "spectra"
            files = [(int(m.group(1)), f) for f in d.glob("step_*.safetensors")
                     if (m := _STEP.match(f.name[:-len(".safetensors")]))] if d.is_dir() else []
            return {s: read_safetensors(f) for s, f in sorted(files)}
        return self._cached("spectra", load)

    @property
    def report(self) -> Optional[pathlib.Path]:
        p = self.path / "report.html"
        return p if p.is_file() else None

    @property
    def events(self) -> List[pathlib.Path]:
        """The TensorBoard event files."""
        return sorted(self.path.glob("**/events.out.tfevents.*"))

    def model(self, step: Optional[int] = None, *, dtype: Optional[str] = None, device: Optional[str] = None) -> Model:
        """The run's model at a checkpoint (the last by default)."""
        steps = self.steps
        if not steps:
            raise ValueError(f"step: {self.path} has no checkpoint")
        step = steps[-1] if step is None else step
        if step not in steps:
            raise ValueError(f"step: no checkpoint at step {step} (have {steps})")
        m = Model(self.path / "config.toml", dtype=dtype, device=device)
        m.load_checkpoint(self.path / "checkpoints" / f"step_{step}")
        return m

    def __repr__(self) -> str:
        return f"curvnet.Run({str(self.path)!r}, checkpoints at {self.steps})"


def open_run(path: PathLike) -> Run:
    """Reads a run directory (see Run)."""
    return Run(path)


def train(config: ConfigLike = None, out: Optional[PathLike] = None, *, overrides: Optional[Mapping[str, Any]] = None,
          device: Optional[str] = None, callback: Optional[Callable[[str], Any]] = None,
          resume: Optional[PathLike] = None) -> Run:
    """Trains as ``curvnet train`` does (same engine, same files, bit-identical parameters) and
    returns the Run. ``out``: the run directory (must not exist or be empty; None:
    runs/<UTC>-<name>). ``overrides``: {"optim.lr": 0.1, ...} like ``--set``. ``resume``: a
    run directory to continue (``config`` may then change only train.steps/epochs/log_every
    and diagnostics.*). Progress lines go to ``callback(line)``, else to the "curvnet" logger
    (INFO). Ctrl-C stops training as SIGINT stops the CLI: the step finishes, a checkpoint is
    written, and the Run comes back with ``summary["interrupted"]`` true (resume it with
    ``train(resume=run.path)``). Bad config or data: ValueError with the CLI's message."""
    if config is None and resume is not None:
        # resume alone: the run's own config; with overrides: that config, changed by them
        text, origin = _config_source(pathlib.Path(resume) / "config.toml", overrides) if overrides else ("", "")
    else:
        text, origin = _config_source(config, overrides)
    on_line = callback if callback is not None else _log.info
    summary = _curvnet.train(text, origin, os.fspath(out) if out is not None else "",
                             os.fspath(resume) if resume is not None else "", device or "", on_line)
    summary["final_eval"] = json.loads(summary["final_eval"]) if summary["final_eval"] else None
    if summary.pop("callback_error"):
        _log.warning("the progress callback raised; later lines were dropped")
    if summary["interrupted"]:
        _log.warning("training interrupted at step %d; continue with curvnet.train(resume=%r)",
                     summary["steps"], summary["run_dir"])
    return Run(summary["run_dir"], summary)
