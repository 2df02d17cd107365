"""The seed paper's seven conclusions (001 §5.5), each as a statement this study's runs can test
(docs/analysis.md §8).

A correlation claim is tested over runs (the per-run means of the second half of training)
after ranking both columns within their data set, or within data set × size when the grid
varies size with at least 3 runs per cell (percentiles; smaller groups drop out), so neither
a data set's own scale of losses nor the network's size can make a correlation: the statistic
is Spearman's rho of those percentiles, its p-value, and a 95 % bootstrap interval over runs.
Verdict: "supported" when the sign is the claimed one, p < 0.05 and the interval excludes 0;
"not supported" otherwise; "not testable here" when the columns are absent or runs are too few.
"""
import numpy as np
import pandas as pd
from scipy import stats as sps

from .stats import BOOTSTRAP, MIN_RUNS, SEED
from .study import KIND_PREFERENCE

ALPHA = 0.05


def _kind_column(runs, metric):
    for kind in KIND_PREFERENCE:
        c = f"{kind}.{metric}"
        if c in runs and np.isfinite(pd.to_numeric(runs[c], errors="coerce")).sum() > 0:
            return c
    return None


def _strata(runs):
    """The groups a correlation claim ranks within: data set × size when the grid varies size
    and those cells hold enough runs (size moves both sides of several claims: larger networks
    have more near-zero eigenvalues and larger generalisation gaps), else the data set."""
    dataset = runs["dataset"] if "dataset" in runs else pd.Series("—", index=runs.index)
    if "size" in runs and runs["size"].nunique() > 1:
        cells = dataset.astype(str) + " / " + runs["size"].astype(str)
        counts = cells.map(cells.value_counts())
        if int((counts >= 3).sum()) >= MIN_RUNS:
            return cells, "data set × size"
    return dataset, "data set"


def _within_stratum_pct(runs, col, groups):
    x = pd.to_numeric(runs[col], errors="coerce")
    out = pd.Series(np.nan, index=runs.index)
    for _, idx in x.groupby(groups).groups.items():
        vals = x.loc[idx]
        if vals.notna().sum() >= 3:
            out.loc[idx] = vals.rank(pct=True)
    return out


def _bootstrap(stat, n, rng):
    vals = []
    for _ in range(BOOTSTRAP):
        idx = rng.integers(0, n, n)
        v = stat(idx)
        if np.isfinite(v):
            vals.append(v)
    if len(vals) < BOOTSTRAP // 2:
        return np.nan, np.nan
    return float(np.percentile(vals, 2.5)), float(np.percentile(vals, 97.5))


def _not_testable(claim, reason):
    return {**claim, "n": 0, "statistic": "", "value": np.nan, "effect": np.nan, "ci_low": np.nan,
            "ci_high": np.nan, "p": np.nan, "verdict": "not testable here", "reason": reason}, []


def _correlation_claim(claim, runs, feature, quality, sign):
    if feature is None or quality is None or feature not in runs or quality not in runs:
        missing = [n for n, c in (("feature", feature), ("quality metric", quality)) if c is None or c not in runs]
        return _not_testable(claim, f"no {' or '.join(missing)} column in this study "
                                    f"({claim['feature_wanted']} / {claim['quality_wanted']})")
    groups, strata = _strata(runs)
    fx, fy = _within_stratum_pct(runs, feature, groups), _within_stratum_pct(runs, quality, groups)
    keep = fx.notna() & fy.notna()
    n = int(keep.sum())
    claim = {**claim, "feature": feature, "quality": quality}
    if n < MIN_RUNS:
        return _not_testable(claim, f"{n} runs with both columns in groups ({strata}) of >= 3 runs "
                                    f"(at least {MIN_RUNS} needed)")
    x, y = fx[keep].to_numpy(), fy[keep].to_numpy()
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return _not_testable(claim, "a column is constant over the runs")
    rho, p = sps.spearmanr(x, y)
    rng = np.random.default_rng(SEED)

    def stat(idx):
        if np.ptp(x[idx]) == 0 or np.ptp(y[idx]) == 0:
            return np.nan
        return sps.spearmanr(x[idx], y[idx])[0]

    lo, hi = _bootstrap(stat, n, rng)
    rows = runs.loc[keep, ["run", "dataset"]].copy()
    rows["feature"], rows["feature_value"] = feature, pd.to_numeric(runs.loc[keep, feature], errors="coerce")
    rows["quality"], rows["quality_value"] = quality, pd.to_numeric(runs.loc[keep, quality], errors="coerce")
    rows["feature_pct"], rows["quality_pct"] = x, y
    ok = np.sign(rho) == sign and p < ALPHA and np.isfinite(lo) and (lo > 0 or hi < 0)
    if ok:
        verdict, reason = "supported", f"rho {rho:+.2f} has the claimed sign, p {p:.3g}"
    elif p < ALPHA and np.sign(rho) == -sign:
        verdict, reason = "not supported", f"significant in the opposite direction (rho {rho:+.2f}, p {p:.3g})"
    elif p < ALPHA:
        verdict, reason = "not supported", (f"rho {rho:+.2f} has the claimed sign and p {p:.3g}, but the bootstrap "
                                            f"interval [{lo:+.2f}, {hi:+.2f}] over runs includes 0")
    else:
        verdict, reason = "not supported", f"no significant correlation of the claimed sign (rho {rho:+.2f}, p {p:.3g})"
    return {**claim, "n": n, "statistic": f"Spearman rho of percentiles within {strata}", "value": float(rho),
            "effect": float(rho), "ci_low": lo, "ci_high": hi, "p": float(p), "verdict": verdict,
            "reason": reason}, rows


def _bias_claim(claim, runs, info):
    col = _kind_column(runs, "bias_trace_share")
    shares = {r: np.mean(list(e["bias_param_share"].values())) for r, e in info["extras"].items()
              if e.get("bias_param_share")}
    if col is None or not shares:
        return _not_testable(claim, "no bias_trace_share in diagnostics.jsonl or no layer shapes "
                                    "(stats.jsonl spectrum rows)")
    df = runs[["run", "dataset"]].copy()
    df["feature"], df["feature_value"] = col, pd.to_numeric(runs[col], errors="coerce")
    df["quality"], df["quality_value"] = "bias_param_share", df["run"].map(shares)
    df = df.dropna(subset=["feature_value", "quality_value"])
    n = len(df)
    claim = {**claim, "feature": col, "quality": "bias_param_share"}
    if n < MIN_RUNS:
        return _not_testable(claim, f"{n} runs with both values (at least {MIN_RUNS} needed)")
    diff = (df["feature_value"] - df["quality_value"]).to_numpy()
    if np.ptp(diff) == 0:
        return _not_testable(claim, "the difference is constant over the runs")
    stat, p = sps.wilcoxon(diff, alternative="greater")
    rng = np.random.default_rng(SEED)
    lo, hi = _bootstrap(lambda idx: diff[idx].mean(), n, rng)
    effect = float(diff.mean())
    supported = p < ALPHA and lo > 0
    return {**claim, "n": n, "statistic": "Wilcoxon signed-rank W (bias trace share − bias parameter share > 0)",
            "value": float(stat), "effect": effect, "ci_low": lo, "ci_high": hi, "p": float(p),
            "verdict": "supported" if supported else "not supported",
            "reason": (f"biases hold {effect:+.3f} more of the trace than of the parameters on average"
                       if supported else f"mean excess {effect:+.3f}, p {p:.3g}")}, df


def _stall(snapshots):
    """Per run: the relative training-loss decrease over the second half of training."""
    if "train_loss" not in snapshots:
        return pd.Series(dtype=float)
    out = {}
    for run, g in snapshots.sort_values("t").groupby("run"):
        late = g[g["t"] >= 0.5]
        if len(late) < 2:
            continue
        a, b = late["train_loss"].iloc[0], late["train_loss"].iloc[-1]
        if np.isfinite(a) and np.isfinite(b) and a > 0:
            out[run] = (a - b) / a
    return pd.Series(out, dtype=float)


CLAIMS = [
    {"claim": "1a", "paper": "low rank of the weights ↔ overfitting",
     "statement": "Runs whose weight matrices have a lower numerical-rank share have a larger generalisation gap "
                  "(validation loss − training loss).",
     "feature_wanted": "weights.rank_share", "quality_wanted": "gen_gap", "sign": -1},
    {"claim": "1b", "paper": "low rank of the layer's (local) Hessian ↔ overfitting",
     "statement": "Runs whose layers' Hessian blocks have a lower rank share have a larger generalisation gap.",
     "feature_wanted": "<kind>.rank_share", "quality_wanted": "gen_gap", "sign": -1},
    {"claim": "2", "paper": "a Hessian piled at small eigenvalues ↔ poor generalisation",
     "statement": "Runs with a larger share of near-zero Hessian eigenvalues have a larger generalisation gap.",
     "feature_wanted": "<kind>.near_zero_share", "quality_wanted": "gen_gap", "sign": +1},
    {"claim": "3", "paper": "weight/gradient spectrum correlation ↔ rigid directions where the optimiser stalls",
     "statement": "Runs whose weight and gradient singular values correlate more make less relative progress "
                  "on the training loss over the second half of training.",
     "feature_wanted": "weights.grad_corr", "quality_wanted": "late_progress", "sign": -1},
    {"claim": "4", "paper": "small spread of the Hessian spectrum ↔ loss of generalisation",
     "statement": "Runs whose Hessian eigenvalues have a smaller standard deviation have a larger generalisation gap.",
     "feature_wanted": "<kind>.log_std", "quality_wanted": "gen_gap", "sign": -1},
    {"claim": "5", "paper": "biases form a significant part of the Hessian spectrum",
     "statement": "Bias parameters hold a larger share of the Hessian blocks' trace than their share of the "
                  "parameters.",
     "feature_wanted": "<kind>.bias_trace_share", "quality_wanted": "bias_param_share", "sign": +1},
    {"claim": "6", "paper": "a spectrum symmetric around zero ↔ saddle points (small gradients)",
     "statement": "Runs whose Hessian spectra are more symmetric around zero have smaller gradient norms.",
     "feature_wanted": "<kind>.symmetry", "quality_wanted": "log_grad_norm", "sign": -1},
    {"claim": "7", "paper": "similar adjacent layers' weights ↔ quality",
     "statement": "Runs whose adjacent layers have more similar weight spectra reach a lower validation loss.",
     "feature_wanted": "weights.adjacent_similarity", "quality_wanted": "val_loss", "sign": -1},
]


def check_claims(runs, snapshots, info):
    """(table, rows): one row per claim; the rows each test used, with the claim's id."""
    results, used = [], []
    runs = runs.copy()
    progress = _stall(snapshots)
    runs["late_progress"] = runs["run"].map(progress)
    for claim in CLAIMS:
        c = {k: v for k, v in claim.items() if k != "sign"}
        c["feature"], c["quality"] = "", ""
        if claim["claim"] == "5":
            res, rows = _bias_claim(c, runs, info)
        else:
            wanted = claim["feature_wanted"]
            feature = _kind_column(runs, wanted.split(".", 1)[1]) if wanted.startswith("<kind>.") else (
                wanted if wanted in runs else None)
            quality = claim["quality_wanted"] if claim["quality_wanted"] in runs else None
            res, rows = _correlation_claim(c, runs, feature, quality, claim["sign"])
        results.append(res)
        if len(rows):
            rows = rows.copy()
            rows.insert(0, "claim", claim["claim"])
            used.append(rows)
    table = pd.DataFrame(results)
    cols = ["claim", "paper", "statement", "feature", "quality", "n", "statistic", "value", "effect", "ci_low",
            "ci_high", "p", "verdict", "reason"]
    rows = pd.concat(used, ignore_index=True) if used else pd.DataFrame(
        columns=["claim", "run", "dataset", "feature", "feature_value", "quality", "quality_value"])
    return table[cols], rows
