"""The statistics of the study report (docs/analysis.md §2-§7); every test runs over runs (the
per-run table), never over snapshots, except the embedding and the phases, which describe
snapshots and say so."""
import numpy as np
import pandas as pd
from scipy import stats as sps

from .study import KIND_PREFERENCE, feature_columns, quality_columns

MIN_RUNS = 8          # fewer runs than this: a test across runs is "not testable here"
BOOTSTRAP = 2000
SEED = 0


def _clean_pairs(x, y):
    x = pd.to_numeric(x, errors="coerce").to_numpy(float)
    y = pd.to_numeric(y, errors="coerce").to_numpy(float)
    keep = np.isfinite(x) & np.isfinite(y)
    return x[keep], y[keep], keep


# ---- correlations --------------------------------------------------------------------------

def correlations(runs):
    """Pearson and Spearman of every spectral feature against every quality metric, over runs."""
    rows = []
    for f in feature_columns(runs):
        for q in quality_columns(runs):
            x, y, _ = _clean_pairs(runs[f], runs[q])
            row = {"feature": f, "metric": q, "n": len(x), "pearson_r": np.nan, "pearson_p": np.nan,
                   "spearman_rho": np.nan, "spearman_p": np.nan}
            if len(x) >= 3 and np.std(x) > 0 and np.std(y) > 0:
                row["pearson_r"], row["pearson_p"] = sps.pearsonr(x, y)
                rho, p = sps.spearmanr(x, y)
                row["spearman_rho"], row["spearman_p"] = float(rho), float(p)
            rows.append(row)
    return pd.DataFrame(rows, columns=["feature", "metric", "n", "pearson_r", "pearson_p", "spearman_rho",
                                       "spearman_p"])


# ---- canonical correlation -----------------------------------------------------------------

# Spectral features in the order the CCA takes them when runs are too few for all of them
# (the quantities the seed paper's claims name first).
CCA_PRIORITY = ("rank_share", "near_zero_share", "log_std", "symmetry", "bias_trace_share",
                "effective_rank_share", "negative_share", "log_condition", "log_lambda_max", "balance")


def _usable(df, cols):
    """Columns finite in every row and not constant."""
    out = []
    for c in cols:
        x = pd.to_numeric(df[c], errors="coerce").to_numpy(float)
        if np.isfinite(x).all() and np.std(x) > 1e-12 * max(1.0, np.abs(x).max()):
            out.append(c)
    return out


def _independent(df, cols):
    """Drops columns that are (numerically) linear combinations of earlier ones."""
    kept = []
    for c in cols:
        trial = kept + [c]
        m = df[trial].to_numpy(float)
        m = (m - m.mean(0)) / m.std(0)
        if np.linalg.matrix_rank(m, tol=1e-8 * len(m)) == len(trial):
            kept = trial
    return kept


def _priority(col):
    metric = col.split(".", 1)[1] if "." in col else col
    kind = col.split(".", 1)[0]
    kind_rank = KIND_PREFERENCE.index(kind) if kind in KIND_PREFERENCE else len(KIND_PREFERENCE)
    metric_rank = CCA_PRIORITY.index(metric) if metric in CCA_PRIORITY else len(CCA_PRIORITY)
    return (metric_rank, kind_rank, col)


def cca(runs):
    """Canonical correlation between the spectral block and the quality block over runs.

    Returns dict with status "ok" or "not testable" (reason). Blocks keep the columns finite in
    every run; the spectral block is cut to at most (n - 1) // 5 - q columns (at least one), in
    the priority order above, so the sample canonical correlations are not pure overfit.
    """
    from sklearn.cross_decomposition import CCA
    from statsmodels.multivariate.cancorr import CanCorr

    n = len(runs)
    if n < MIN_RUNS:
        return {"status": "not testable", "reason": f"{n} runs (at least {MIN_RUNS} needed)"}
    quality = [c for c in _usable(runs, quality_columns(runs)) if c != "gen_gap"]
    quality = _independent(runs, quality)
    features = _independent(runs, sorted(_usable(runs, feature_columns(runs)), key=_priority))
    if not quality or not features:
        return {"status": "not testable",
                "reason": "no quality metric or spectral feature is finite and varying in every run"}
    p_max = max(1, (n - 1) // 5 - len(quality))
    features = features[:p_max]
    if n <= len(features) + len(quality) + 1:
        return {"status": "not testable", "reason": f"{n} runs for {len(features)} + {len(quality)} columns"}
    X = runs[features].to_numpy(float)
    Y = runs[quality].to_numpy(float)
    Xs = (X - X.mean(0)) / X.std(0)
    Ys = (Y - Y.mean(0)) / Y.std(0)
    cc = CanCorr(Ys, Xs)
    test = cc.corr_test().stats
    k = min(len(features), len(quality))
    table = pd.DataFrame({
        "component": np.arange(1, k + 1),
        "canonical_corr": np.asarray(cc.cancorr[:k], float),
        "wilks_lambda": pd.to_numeric(test["Wilks' lambda"], errors="coerce").to_numpy()[:k],
        "F": pd.to_numeric(test["F Value"], errors="coerce").to_numpy()[:k],
        "num_df": pd.to_numeric(test["Num DF"], errors="coerce").to_numpy()[:k],
        "den_df": pd.to_numeric(test["Den DF"], errors="coerce").to_numpy()[:k],
        "p_value": pd.to_numeric(test["Pr > F"], errors="coerce").to_numpy()[:k],
    })
    table["n_runs"] = n
    model = CCA(n_components=k, max_iter=2000).fit(Xs, Ys)
    xs, ys = model.transform(Xs, Ys)
    scores = pd.DataFrame({"run": runs["run"].to_numpy()})
    for i in range(k):
        scores[f"spectral_{i + 1}"] = xs[:, i]
        scores[f"quality_{i + 1}"] = ys[:, i]
    # Structure loadings: each column's correlation with its block's first canonical variate.
    loadings = pd.DataFrame(
        [{"block": "spectral", "column": c, "loading_1": np.corrcoef(Xs[:, i], xs[:, 0])[0, 1]}
         for i, c in enumerate(features)] +
        [{"block": "quality", "column": c, "loading_1": np.corrcoef(Ys[:, i], ys[:, 0])[0, 1]}
         for i, c in enumerate(quality)])
    return {"status": "ok", "table": table, "scores": scores, "loadings": loadings,
            "features": features, "quality": quality, "n": n}


# ---- normality -----------------------------------------------------------------------------

def normality(runs):
    """Shapiro–Wilk of every spectral feature and quality metric over runs, Benjamini–Hochberg."""
    from statsmodels.stats.multitest import multipletests

    rows = []
    for c in feature_columns(runs) + quality_columns(runs):
        x = pd.to_numeric(runs[c], errors="coerce").to_numpy(float)
        x = x[np.isfinite(x)]
        row = {"column": c, "n": len(x), "W": np.nan, "p": np.nan, "reason": ""}
        if len(x) < 3:
            row["reason"] = f"{len(x)} finite values (Shapiro–Wilk needs 3)"
        elif np.ptp(x) == 0:
            row["reason"] = "constant"
        else:
            w, p = sps.shapiro(x[:5000])
            row["W"], row["p"] = float(w), float(p)
        rows.append(row)
    table = pd.DataFrame(rows, columns=["column", "n", "W", "p", "reason"])
    table["p_bh"] = np.nan
    ok = table["p"].notna()
    if ok.any():
        table.loc[ok, "p_bh"] = multipletests(table.loc[ok, "p"], method="fdr_bh")[1]
    table["normal_at_5pct"] = np.where(ok, table["p_bh"] >= 0.05, None)
    return table


# ---- embedding -----------------------------------------------------------------------------

def embedding(snapshots):
    """2-D UMAP (seed 0) and PCA of the snapshots' standardised spectral features.

    Returns (table or None, note). Columns missing in a snapshot take the column's median."""
    from sklearn.decomposition import PCA

    cols = [c for c in feature_columns(snapshots) if snapshots[c].notna().mean() >= 0.5]
    if len(snapshots) < 5 or len(cols) < 2:
        return None, f"{len(snapshots)} snapshots with {len(cols)} spectral features: too few to embed"
    X = snapshots[cols].apply(pd.to_numeric, errors="coerce")
    X = X.fillna(X.median()).to_numpy(float)
    sd = X.std(0)
    X = (X[:, sd > 0] - X[:, sd > 0].mean(0)) / sd[sd > 0]
    if X.shape[1] < 2:
        return None, "fewer than two varying spectral features"
    out = snapshots[["run", "step", "t", "architecture"]].copy()
    pcs = PCA(n_components=2, random_state=SEED).fit(X)
    pc = pcs.transform(X)
    out["pc1"], out["pc2"] = pc[:, 0], pc[:, 1]
    note = (f"{len(out)} snapshots × {X.shape[1]} standardised spectral features; PCA explains "
            f"{100 * pcs.explained_variance_ratio_[:2].sum():.0f}% of the variance.")
    try:
        import umap  # noqa: F401 (optional)
    except ImportError:
        out["umap1"], out["umap2"] = np.nan, np.nan
        return out, note + " UMAP: umap-learn is not installed (scripts/setup-study installs it)."
    reducer = umap.UMAP(n_components=2, random_state=SEED, n_neighbors=min(15, len(X) - 1), min_dist=0.1, n_jobs=1)
    um = reducer.fit_transform(X)
    out["umap1"], out["umap2"] = um[:, 0], um[:, 1]
    return out, note + " UMAP: n_neighbors 15, min_dist 0.1, random_state 0."


# ---- training phases (seed 001 §5.3) -------------------------------------------------------

PHASES = ("initial", "fast learning", "fine-tuning", "saturation")
PHASE_INITIAL_END = 0.10     # cumulative spectral change reached when the initial phase ends
PHASE_FAST_END = 0.80        # ... when fast learning ends
PHASE_SATURATION_SPEED = 0.10  # saturation: the smoothed change stays below this × its maximum
PHASE_SMOOTHING = 5          # checkpoints in the running median of the change
QUANTILES = np.linspace(0.05, 0.95, 10)
EIGEN_FLOOR = 1e-10          # |λ| below this counts as this (log10 of an exact zero)


def spectrum_descriptor(tensors, kind):
    """A checkpoint's spectral shape: per layer of `kind`, ten quantiles (5 %–95 %) of
    log10(|λ| + 1e-10), concatenated in layer order. Quantiles move continuously with the
    eigenvalues, where a histogram of a 40-eigenvalue block jumps by whole bins."""
    names = sorted((n for n in tensors if n.startswith(kind + ".") and n.endswith(".eigenvalues")),
                   key=lambda n: int(n.split(".")[1]) if n.split(".")[1].isdigit() else 0)
    parts = []
    for n in names:
        ev = np.abs(tensors[n][np.isfinite(tensors[n])])
        if ev.size:
            parts.append(np.quantile(np.log10(ev + EIGEN_FLOOR), QUANTILES))
    return np.concatenate(parts) if parts else None


def phases_of_run(steps_t, descriptors):
    """Phase boundaries of one run from its spectral descriptors over normalised time.

    The spectral change between consecutive checkpoints is the mean absolute difference of
    their descriptors (decades); C(t) is its cumulative sum normalised to 1. initial: until
    C >= 0.10; fast learning: until C >= 0.80; saturation: the trailing checkpoints where the
    change, smoothed by a running median over 5 checkpoints, stays below 10 % of its largest
    value; fine-tuning: in between."""
    t = np.asarray(steps_t, float)
    if len(t) < 4:
        return None, "fewer than 4 spectra"
    d = np.array([np.abs(descriptors[i + 1] - descriptors[i]).mean() for i in range(len(t) - 1)])
    total = d.sum()
    if total <= 0:
        return None, "the spectrum never changes"
    c = np.concatenate([[0.0], np.cumsum(d) / total])
    i_init = int(np.argmax(c >= PHASE_INITIAL_END))
    i_fast = max(i_init, int(np.argmax(c >= PHASE_FAST_END)))
    smooth = pd.Series(d).rolling(PHASE_SMOOTHING, center=True, min_periods=1).median().to_numpy()
    slow = smooth < PHASE_SATURATION_SPEED * smooth.max()
    i_sat = len(t) - 1
    while i_sat - 1 >= i_fast and slow[i_sat - 1]:
        i_sat -= 1
    bounds = [0, i_init, i_fast, i_sat, len(t) - 1]
    rows = []
    for k, name in enumerate(PHASES):
        a, b = bounds[k], bounds[k + 1]
        rows.append({"phase": name, "t_start": t[a], "t_end": t[b], "empty": a == b})
    return {"rows": rows, "t": t, "cumulative": c}, None


def spectral_shapes(spectra):
    """{kind: {step: descriptor}} of one run's spectra ({step: tensors}); small, so a study's
    spectra need not all be in memory at once."""
    kinds = sorted({n.split(".")[0] for tensors in spectra.values() for n in tensors if n.endswith(".eigenvalues")})
    out = {}
    for kind in kinds:
        shapes = {}
        for step in sorted(spectra):
            dsc = spectrum_descriptor(spectra[step], kind)
            if dsc is not None:
                shapes[step] = dsc
        out[kind] = shapes
    return out


def phases(snapshots, shapes_by_run):
    """Phase table over runs. shapes_by_run: {run: spectral_shapes(its spectra)}."""
    kinds = {k for shapes in shapes_by_run.values() for k, v in shapes.items() if v}
    kind = next((k for k in KIND_PREFERENCE if k in kinds), sorted(kinds)[0] if kinds else None)
    if kind is None:
        return None, {}, "no Hessian eigenvalues in any run's spectra"
    rows, curves, reasons = [], {}, []
    for run, shapes in shapes_by_run.items():
        sp = shapes.get(kind, {})
        descs, kept = [], []
        for s in sorted(sp):
            if not descs or sp[s].shape == descs[0].shape:
                descs.append(sp[s])
                kept.append(s)
        last = snapshots.loc[snapshots["run"] == run, "step"]
        last_step = max([*kept, *last.tolist()]) if kept else 0
        res, why = phases_of_run([s / last_step if last_step else 0 for s in kept], descs)
        if res is None:
            reasons.append(f"run {run}: {why}")
            continue
        curves[run] = res
        for r in res["rows"]:
            rows.append({"run": run, "kind": kind, **r})
    table = pd.DataFrame(rows, columns=["run", "kind", "phase", "t_start", "t_end", "empty"])
    note = f"phases from the {kind} Hessian's eigenvalues"
    if reasons:
        note += f"; {len(reasons)} runs without phases ({reasons[0]}{', …' if len(reasons) > 1 else ''})"
    return table, curves, note
