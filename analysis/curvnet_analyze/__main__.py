"""`python -m curvnet_analyze DIR [--out OUT]` (what `curvnet analyze` runs): exit 0 with the
report's path, 2 on bad input or missing libraries (one line), 1 on a failure."""
import argparse
import os
import sys
import tempfile
import time
import warnings

REQUIRED = ("numpy", "pandas", "scipy", "sklearn", "statsmodels", "matplotlib")


def check_libraries():
    missing = []
    for name in REQUIRED:
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        print(f"curvnet analyze: {sys.executable} lacks {', '.join(missing)}: run scripts/setup-study "
              "(or set CURVNET_PYTHON to a Python that has them)", file=sys.stderr)
        sys.exit(2)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="curvnet analyze", description="the study report of a sweep directory")
    parser.add_argument("dir", help="the study directory (index.jsonl and the run directories)")
    parser.add_argument("--out", default="", help="where report.html and the CSV tables go (default DIR/analysis)")
    args = parser.parse_args(argv)
    from . import InputError
    from .index import read_index
    try:
        read_index(args.dir)
    except InputError as e:
        print(f"curvnet analyze: {e}", file=sys.stderr)
        return 2
    check_libraries()
    # A correlation over a (nearly) constant column is reported as not testable in its table;
    # scipy's warning about it would only repeat that on stderr.
    warnings.filterwarnings("ignore", message=".*(nearly )?constant.*")
    os.environ.setdefault("MPLBACKEND", "Agg")
    # UMAP's numba functions are compiled once and cached; a system install's own folder is
    # read-only, so the cache lives in the temporary directory unless the user chose one.
    os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(tempfile.gettempdir(), "curvnet-numba-cache"))

    try:
        return run(args.dir, args.out or os.path.join(args.dir, "analysis"))
    except InputError as e:
        print(f"curvnet analyze: {e}", file=sys.stderr)
        return 2


def run(study_dir, out_dir):
    import numpy as np
    import pandas as pd

    from . import claims, report, stats, study

    t0 = time.monotonic()
    snapshots, runs, info = study.load_study(study_dir)
    os.makedirs(out_dir, exist_ok=True)
    spectra = {}
    for run_id, extra in info["extras"].items():
        spectra[run_id] = stats.spectral_shapes(study.load_spectra(extra["run_dir"]))
    t_load = time.monotonic() - t0
    # UMAP spends most of its time compiling (numba) in one thread: it runs in a second
    # process while this one draws the other sections.
    embedding = _start(stats.embedding, snapshots)
    snapshots.to_csv(os.path.join(out_dir, "snapshots.csv"), index=False)
    runs.to_csv(os.path.join(out_dir, "runs.csv"), index=False)
    csvs = {"snapshots.csv": len(snapshots), "runs.csv": len(runs)}
    bodies = {}

    skipped = pd.DataFrame(info["skipped"], columns=["run", "run_dir", "reason"])
    skipped.to_csv(os.path.join(out_dir, "skipped.csv"), index=False)
    csvs["skipped.csv"] = len(skipped)
    counts = {f: runs[f].value_counts().to_dict() for f in ("task", "dataset", "size", "optimiser", "activation",
                                                            "init") if f in runs}
    lines = "".join(f"<li>{report.esc(f)}: " + report.esc(", ".join(f"{k} ({v})" for k, v in sorted(
        c.items(), key=lambda kv: str(kv[0])))) + "</li>" for f, c in counts.items())
    bodies["overview"] = (
        f"<p>{len(runs)} runs analysed of {info['n_index']} in index.jsonl ({len(skipped)} skipped), "
        f"{len(snapshots)} snapshots (run × curvature checkpoint), "
        f"{len(study.feature_columns(runs))} spectral features, {len(study.quality_columns(runs))} quality metrics. "
        "Every spectral feature is a mean over the run's layers. Snapshots of one run are not independent: every "
        "test across runs uses one row per run, the mean of each column over the snapshots in the second half of "
        "training (t ≥ 0.5; runs.csv); the embedding and the phases describe snapshots.</p>"
        f"<ul>{lines}</ul>" + ("<h3>skipped runs</h3>" + report.table_html(skipped, "skipped") if len(skipped) else ""))
    study_toml = os.path.join(study_dir, "study.toml")
    if os.path.isfile(study_toml):
        with open(study_toml, encoding="utf-8", errors="replace") as f:
            bodies["overview"] += f"<details><summary>study.toml</summary><pre>{report.esc(f.read())}</pre></details>"

    def phases():
        table, curves, note = stats.phases(snapshots, spectra)
        return report.phases_section(table, curves, note, snapshots, out_dir)

    def claims_section():
        return report.claims_section(*claims.check_claims(runs, snapshots, info), out_dir)

    sections = {
        "dynamics": lambda: report.dynamics(snapshots, out_dir),
        "correlations": lambda: report.correlations_section(stats.correlations(runs), out_dir),
        "cca": lambda: report.cca_section(_guard(stats.cca, runs), out_dir),
        "normality": lambda: report.normality_section(stats.normality(runs), runs, out_dir),
        "embedding": lambda: report.embedding_section(*embedding(), out_dir),
        "phases": phases,
        "claims": claims_section,
    }
    with np.errstate(all="ignore"):
        for name, make in sections.items():
            # One section failing on data nobody foresaw says so in the report; the others stand.
            try:
                bodies[name], c = make()
                csvs.update(c)
            except Exception as e:  # noqa: BLE001 (reported in the section and on stderr)
                print(f"curvnet analyze: section {name}: {type(e).__name__}: {e}", file=sys.stderr)
                bodies[name] = report.not_testable(f"the computation failed ({type(e).__name__}: {e})")
    path = os.path.join(out_dir, "report.html")
    report.write_html(path, study_dir, bodies)
    print(f"analysis: {len(runs)} runs, {len(snapshots)} snapshots; read in {t_load:.1f} s, "
          f"total {time.monotonic() - t0:.1f} s")
    print("tables: " + ", ".join(sorted(csvs)))
    print(f"report: {path}")
    return 0


def _guard(fn, *args):
    """A statistic that fails on degenerate data says so in its section instead of ending the report."""
    try:
        return fn(*args)
    except (ValueError, np_linalg_error()) as e:
        return {"status": "not testable", "reason": f"{type(e).__name__}: {e}"}


def _guard_pair(fn, *args):
    try:
        return fn(*args)
    except (ValueError, np_linalg_error()) as e:
        return None, f"{type(e).__name__}: {e}"


def _start(fn, *args):
    """fn(*args) in a child process; returns a function giving its result (inline when no
    child process can start)."""
    try:
        from concurrent.futures import ProcessPoolExecutor
        import multiprocessing
        pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("fork"))
        future = pool.submit(_guard_pair, fn, *args)
    except (OSError, ValueError, ImportError):
        return lambda: _guard_pair(fn, *args)

    def result():
        try:
            return future.result()
        except Exception:  # the child died (memory, a signal): compute it here instead
            return _guard_pair(fn, *args)
        finally:
            pool.shutdown()
    return result


def np_linalg_error():
    import numpy as np
    return np.linalg.LinAlgError


if __name__ == "__main__":
    sys.exit(main())
