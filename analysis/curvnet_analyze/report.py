"""The study report: figures (matplotlib, PNG inlined as base64), tables, one HTML file with no
external reference, and every table as CSV beside it (docs/analysis.md §9)."""
import base64
import html
import io
import os

import numpy as np
import pandas as pd

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .stats import PHASES  # noqa: E402
from .study import feature_columns, quality_columns  # noqa: E402

SECTIONS = ("overview", "dynamics", "correlations", "cca", "normality", "embedding", "phases", "claims")
DYNAMICS_FACTORS = ("size", "optimiser", "activation")
TIME_BINS = 10


def esc(x):
    return html.escape(str(x), quote=True)


def fmt(v, digits=3):
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "—"
    if isinstance(v, (float, np.floating)):
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e4):
            return f"{v:.{digits}g}"
        return f"{v:.{digits}f}"
    return str(v)


def figure_html(fig, name, caption=""):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return (f'<figure data-plot="{esc(name)}"><img alt="{esc(name)}" '
            f'src="data:image/png;base64,{data}">{cap}</figure>')


def table_html(df, name, max_rows=200):
    if df is None or len(df) == 0:
        return f'<p class="none" data-table="{esc(name)}">no rows</p>'
    head = "".join(f"<th>{esc(c)}</th>" for c in df.columns)
    body = []
    for _, r in df.head(max_rows).astype(object).iterrows():
        cells = []
        for c in df.columns:
            v = r[c]
            cls = ' class="num"' if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_)) else ""
            if c == "verdict":
                cls = f' class="verdict" data-verdict="{esc(v)}"'
            cells.append(f"<td{cls}>{esc(fmt(v))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    more = f"<p>… {len(df) - max_rows} more rows in the CSV</p>" if len(df) > max_rows else ""
    return f'<table data-table="{esc(name)}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>{more}'


def not_testable(text):
    return f'<p class="not-testable">not testable here: {esc(text)}</p>'


# ---- sections ------------------------------------------------------------------------------

def dynamics(snapshots, out_dir):
    metrics = [c for c in feature_columns(snapshots) + quality_columns(snapshots) + ["log_grad_norm"]
               if c in snapshots and snapshots[c].notna().any()]
    if snapshots.empty or not metrics:
        return not_testable("no snapshots"), {}
    s = snapshots.copy()
    s["t_bin"] = (np.minimum(np.floor(s["t"] * TIME_BINS), TIME_BINS - 1) + 0.5) / TIME_BINS
    per_run = s.groupby(["run", "t_bin"])[metrics].mean()
    labels = s.groupby("run")[list(DYNAMICS_FACTORS)].first()
    per_run = per_run.join(labels, on="run").reset_index()
    parts, tables = [], []
    ncol = 6
    nrow = int(np.ceil(len(metrics) / ncol))
    for factor in DYNAMICS_FACTORS:
        groups = sorted(per_run[factor].astype(str).unique())
        fig, axes = plt.subplots(nrow, ncol, figsize=(3.0 * ncol, 2.3 * nrow), squeeze=False)
        for ax, m in zip(axes.flat, metrics):
            for g in groups:
                sub = per_run[per_run[factor].astype(str) == g].groupby("t_bin")[m]
                median = sub.median()
                ax.plot(median.index, median.values, marker="o", ms=2, lw=1.2, label=g)
                q1, q3 = sub.quantile(0.25), sub.quantile(0.75)
                ax.fill_between(q1.index, q1.values, q3.values, alpha=0.15)
                for tb, v, a, b, n in zip(median.index, median.values, q1.values, q3.values, sub.count().values):
                    tables.append({"factor": factor, "group": g, "metric": m, "t_bin": tb, "median": v, "q25": a,
                                   "q75": b, "n_runs": n})
            values = per_run[m].to_numpy(float)
            values = values[np.isfinite(values)]
            # Losses of different data sets span decades: a log axis keeps every group visible.
            if values.size and values.min() > 0 and values.max() > 1e3 * values.min():
                ax.set_yscale("log")
            ax.set_title(m, fontsize=8)
            ax.tick_params(labelsize=6)
        for ax in list(axes.flat)[len(metrics):]:
            ax.axis("off")
        axes.flat[0].legend(fontsize=6, title=factor, title_fontsize=6)
        fig.supxlabel("normalised training time t = step / last step", fontsize=8)
        fig.tight_layout()
        parts.append(f"<h3>by {esc(factor)}</h3>" + figure_html(
            fig, f"dynamics/{factor}", f"median over runs per tenth of training (band: runs' 25–75 %), by {factor}"))
    table = pd.DataFrame(tables)
    table.to_csv(os.path.join(out_dir, "dynamics.csv"), index=False)
    return "".join(parts), {"dynamics.csv": len(table)}


def heatmap(mat, pvals, rows, cols, title, name):
    fig, ax = plt.subplots(figsize=(1.1 * len(cols) + 3, 0.38 * len(rows) + 1.5))
    im = ax.imshow(mat, cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
    ax.set_xticks(range(len(cols)), cols, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(len(rows)), rows, fontsize=7)
    for i in range(len(rows)):
        for j in range(len(cols)):
            if np.isfinite(mat[i, j]):
                p = pvals[i, j]
                ax.text(j, i, f"{mat[i, j]:+.2f}\np={p:.2g}", ha="center", va="center", fontsize=5.5,
                        color="white" if abs(mat[i, j]) > 0.6 else "black")
    fig.colorbar(im, ax=ax, shrink=0.6)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return figure_html(fig, name, title)


def correlations_section(corr, out_dir):
    corr.to_csv(os.path.join(out_dir, "correlations.csv"), index=False)
    ok = corr.dropna(subset=["pearson_r"])
    if ok.empty:
        return not_testable("no spectral feature and quality metric vary together over at least 3 runs"), {}
    feats = sorted(ok["feature"].unique())
    mets = sorted(ok["metric"].unique())
    out = []
    for stat, p, label in (("pearson_r", "pearson_p", "Pearson r"), ("spearman_rho", "spearman_p", "Spearman ρ")):
        piv = ok.pivot(index="feature", columns="metric", values=stat).reindex(index=feats, columns=mets)
        pp = ok.pivot(index="feature", columns="metric", values=p).reindex(index=feats, columns=mets)
        out.append(heatmap(piv.to_numpy(float), pp.to_numpy(float), feats, mets,
                           f"{label} over runs (cell: coefficient and p-value)", f"heatmap/{stat.split('_')[0]}"))
    top = ok.reindex(ok["pearson_r"].abs().sort_values(ascending=False).index).head(15)
    note = ("<p>Over runs (second-half means), on the columns' own scales: in a study of several data sets a "
            "correlation here can be a difference between data sets; the claims below rank within data sets "
            "(and sizes, where the grid allows).</p>")
    return note + "".join(out) + "<h3>strongest pairs</h3>" + table_html(top, "correlations"), {"correlations.csv": len(corr)}


def cca_section(res, out_dir):
    if res["status"] != "ok":
        pd.DataFrame([{"status": "not testable", "reason": res["reason"]}]).to_csv(
            os.path.join(out_dir, "cca.csv"), index=False)
        return not_testable(res["reason"]), {"cca.csv": 0}
    res["table"].to_csv(os.path.join(out_dir, "cca.csv"), index=False)
    res["scores"].to_csv(os.path.join(out_dir, "cca_scores.csv"), index=False)
    res["loadings"].to_csv(os.path.join(out_dir, "cca_loadings.csv"), index=False)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    sc = res["scores"]
    axes[0].scatter(sc["spectral_1"], sc["quality_1"], s=14)
    axes[0].set_xlabel("spectral block, 1st canonical variate (sklearn CCA)")
    axes[0].set_ylabel("quality block, 1st canonical variate")
    t = res["table"]
    axes[1].bar(t["component"].astype(str), t["canonical_corr"])
    axes[1].set_ylim(0, 1)
    axes[1].set_xlabel("component")
    axes[1].set_ylabel("canonical correlation (statsmodels)")
    fig.tight_layout()
    text = (f"<p>Over {res['n']} runs (each run's mean over the second half of training). Spectral block: "
            f"{esc(', '.join(res['features']))}; quality block: {esc(', '.join(res['quality']))}. Columns standardised; "
            "the spectral block is cut to at most (n − 1) / 5 − q columns in a fixed priority order. "
            "Wilks' lambda tests that this and all later canonical correlations are zero.</p>")
    return (text + figure_html(fig, "cca", "first pair of canonical variates; canonical correlations")
            + table_html(t, "cca") + "<h3>structure loadings (first variate)</h3>"
            + table_html(res["loadings"], "cca_loadings"),
            {"cca.csv": len(t), "cca_scores.csv": len(sc), "cca_loadings.csv": len(res["loadings"])})


def normality_section(table, runs, out_dir):
    table.to_csv(os.path.join(out_dir, "normality.csv"), index=False)
    tested = table.dropna(subset=["p"])
    if tested.empty:
        return not_testable("no column has 3 varying values over runs") + table_html(table, "normality"), {}
    from scipy import stats as sps
    cols = list(tested["column"])[:36]
    ncol = 6
    nrow = int(np.ceil(len(cols) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(2.6 * ncol, 2.4 * nrow), squeeze=False)
    for ax, c in zip(axes.flat, cols):
        x = pd.to_numeric(runs[c], errors="coerce").dropna().to_numpy()
        (osm, osr), (slope, icpt, _) = sps.probplot(x, dist="norm")
        ax.plot(osm, osr, "o", ms=2.5)
        ax.plot(osm, slope * osm + icpt, lw=1, color="k")
        ax.set_title(c, fontsize=7)
        ax.tick_params(labelsize=6)
    for ax in list(axes.flat)[len(cols):]:
        ax.axis("off")
    fig.supxlabel("normal quantiles", fontsize=8)
    fig.tight_layout()
    n_normal = int((tested["p_bh"] >= 0.05).sum())
    text = (f"<p>Shapiro–Wilk over runs for {len(tested)} columns; Benjamini–Hochberg-adjusted p ≥ 0.05 "
            f"(normality not rejected) for {n_normal} of them.</p>")
    return text + figure_html(fig, "qq", "Q-Q plots against the normal") + table_html(table, "normality"), {
        "normality.csv": len(table)}


def embedding_section(emb, note, out_dir):
    if emb is None:
        return not_testable(note), {}
    emb.to_csv(os.path.join(out_dir, "embedding.csv"), index=False)
    have_umap = emb["umap1"].notna().any()
    fig, axes = plt.subplots(1, 2 if have_umap else 1, figsize=(11 if have_umap else 6, 4.6), squeeze=False)
    archs = sorted(emb["architecture"].astype(str).unique())
    panels = ([("umap1", "umap2", "UMAP")] if have_umap else []) + [("pc1", "pc2", "PCA")]
    for ax, (a, b, title) in zip(axes.flat, panels):
        for arch in archs:
            sub = emb[emb["architecture"].astype(str) == arch]
            ax.scatter(sub[a], sub[b], s=6, alpha=0.7, label=arch)
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])
    axes.flat[0].legend(fontsize=7, title="size / activation", markerscale=2)
    fig.tight_layout()
    extra = "" if have_umap else '<p class="not-testable" data-umap="missing">UMAP: umap-learn is not installed ' \
                                 '(run scripts/setup-study); PCA only.</p>'
    return f"<p>{esc(note)}</p>" + extra + figure_html(fig, "embedding", "snapshots coloured by architecture"), {
        "embedding.csv": len(emb)}


def phases_section(table, curves, note, snapshots, out_dir):
    if table is None or table.empty:
        return not_testable(note), {}
    table.to_csv(os.path.join(out_dir, "phases.csv"), index=False)
    fig, ax = plt.subplots(figsize=(8, 3.8))
    opt = snapshots.groupby("run")["optimiser"].first() if "optimiser" in snapshots else None
    groups = sorted(set(opt.astype(str))) if opt is not None else ["—"]
    colour = {g: f"C{i % 10}" for i, g in enumerate(groups)}
    for run, res in curves.items():
        g = str(opt.get(run, "—")) if opt is not None else "—"
        ax.plot(res["t"], res["cumulative"], lw=0.9, alpha=0.7, color=colour[g])
    for g in groups:
        ax.plot([], [], color=colour[g], label=g)
    for y in (0.10, 0.80):
        ax.axhline(y, ls=":", color="grey", lw=0.8)
    ax.set_xlabel("normalised training time")
    ax.set_ylabel("cumulative spectral change C(t)")
    ax.legend(fontsize=7, title="optimiser")
    fig.tight_layout()
    dur = table.assign(duration=table["t_end"] - table["t_start"])
    labels = snapshots.groupby("run")[["size", "optimiser", "activation"]].first()
    dur = dur.join(labels, on="run")
    summary = dur.pivot_table(index=["size", "optimiser", "activation"], columns="phase", values="duration",
                              aggfunc="median").reset_index()
    summary.columns = [str(c) for c in summary.columns]
    summary = summary[[c for c in summary.columns if c not in PHASES] + [p for p in PHASES if p in summary.columns]]
    summary.to_csv(os.path.join(out_dir, "phases_summary.csv"), index=False)
    text = (f"<p>{esc(note)}. The spectral change between checkpoints is the mean absolute difference of ten "
            "quantiles of log10 |λ| per layer; C(t) is its cumulative share. Initial: until C reaches 10 %; fast "
            "learning: until 80 %; saturation: the trailing checkpoints where the change (running median over 5) "
            "stays below 10 % of its largest value; fine-tuning: in between (seed 001 §5.3). A phase can be "
            "empty: a run whose spectrum keeps moving has no saturation.</p>")
    return (text + figure_html(fig, "phases", "cumulative spectral change per run; dotted: phase thresholds")
            + "<h3>median phase duration (share of training)</h3>" + table_html(summary, "phases_summary")
            + table_html(table, "phases", max_rows=40),
            {"phases.csv": len(table), "phases_summary.csv": len(summary)})


def claims_section(table, rows, out_dir):
    table.to_csv(os.path.join(out_dir, "claims.csv"), index=False)
    rows.to_csv(os.path.join(out_dir, "claims_rows.csv"), index=False)
    counts = table["verdict"].value_counts().to_dict()
    text = ("<p>Each of the seed paper's seven conclusions (001 §5.5) as a statement about this study's runs. "
            "Correlation claims: Spearman ρ of the two columns after ranking each within its data set, over runs "
            "(second-half means); 95 % interval: bootstrap over runs (2000 resamples, seed 0). "
            "The rows each test used are in claims_rows.csv. "
            + esc(", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))) + ".</p>")
    show = table[["claim", "paper", "statement", "feature", "quality", "n", "statistic", "value", "effect", "ci_low",
                  "ci_high", "p", "verdict", "reason"]]
    return text + table_html(show, "claims"), {"claims.csv": len(table), "claims_rows.csv": len(rows)}


CSS = """body{font-family:sans-serif;margin:1.5em auto;max-width:1500px;color:#222}
h1{font-size:1.5em}h2{border-bottom:1px solid #ccc;margin-top:1.6em}
table{border-collapse:collapse;font-size:12px;margin:.6em 0}td,th{border:1px solid #ddd;padding:2px 6px}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
td[data-verdict="supported"]{background:#d8f0d8}td[data-verdict="not supported"]{background:#f6dada}
td[data-verdict="not testable here"]{background:#eee}.not-testable{color:#955}figure{margin:.6em 0}
figure img{max-width:100%}figcaption{font-size:12px;color:#555}nav a{margin-right:1em}"""

TITLES = {"overview": "Study", "dynamics": "Dynamics over normalised training time",
          "correlations": "Spectral features against quality: Pearson and Spearman",
          "cca": "Canonical correlation: spectral block ↔ quality block",
          "normality": "Shapiro–Wilk normality with Benjamini–Hochberg correction",
          "embedding": "Snapshots in two dimensions: UMAP and PCA",
          "phases": "Training phases from the spectra", "claims": "The paper's claims, checked"}


def write_html(path, study_dir, bodies):
    nav = "".join(f'<a href="#{s}">{esc(TITLES[s])}</a>' for s in SECTIONS)
    parts = [f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>curvnet study: '
             f'{esc(os.path.basename(os.path.abspath(study_dir)))}</title><style>{CSS}</style></head><body>',
             f"<h1>curvnet study report: {esc(os.path.abspath(study_dir))}</h1><nav>{nav}</nav>"]
    for s in SECTIONS:
        parts.append(f'<section id="{s}" data-section="{s}"><h2>{esc(TITLES[s])}</h2>{bodies[s]}</section>')
    parts.append("</body></html>\n")
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("".join(parts))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
