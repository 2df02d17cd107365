#!/usr/bin/env python3
"""Tests of `curvnet analyze` (docs/analysis.md), run by ctest:

  test_analyze.py --curvnet BUILD/curvnet planted   the planted study's correlation and canonical
                                                   correlations are recovered; the report renders in
                                                   headless Chromium with every section
  test_analyze.py --curvnet BUILD/curvnet bad       bad study directories and missing libraries: exit 2
                                                   with one line; a study too small to test still
                                                   gives a report saying "not testable here"

This driver needs only the standard library; the analysis runs under the Python `curvnet analyze`
picks ($CURVNET_PYTHON, else the project's .venv, else /usr/bin/python3), which also writes the
planted study. Exit 77 (a ctest skip) when that Python lacks the analysis libraries.
"""
import argparse
import csv
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(os.path.dirname(HERE))
SECTIONS = ("overview", "dynamics", "correlations", "cca", "normality", "embedding", "phases", "claims")
SKIP = 77
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print(f"FAIL: {what}")


def python_exe():
    p = os.environ.get("CURVNET_PYTHON")
    if p:
        return p
    venv = os.path.join(SOURCE, ".venv", "bin", "python")
    return venv if os.path.exists(venv) else "/usr/bin/python3"


def analysis_python_ready():
    probe = "import numpy, pandas, scipy, sklearn, statsmodels, matplotlib"
    return subprocess.run([python_exe(), "-c", probe], capture_output=True).returncode == 0


def analyze(curvnet, study, env=None):
    return subprocess.run([curvnet, "analyze", study], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=600)


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def fisher_z(r):
    return math.atanh(max(min(r, 0.999999), -0.999999))


def chromium():
    for name in ("chromium", "chromium-browser"):
        if shutil.which(name):
            return name
    return None


def section_text(dom, name):
    at = dom.find(f'data-section="{name}"')
    if at < 0:
        return ""
    end = dom.find("</section>", at)
    return dom[at:end if end >= 0 else len(dom)]


def check_html(html, where):
    check("http://" not in html and "https://" not in html, f"{where}: no URLs")
    check("<script" not in html, f"{where}: no scripts")
    srcs = re.findall(r'src="([^"]*)"', html)
    check(all(s.startswith("data:image/png;base64,") for s in srcs), f"{where}: every image inline")
    for name in SECTIONS:
        text = section_text(html, name)
        check(text != "", f"{where}: section {name} present")
        if name == "claims":
            rows = re.findall(r'<td class="verdict" data-verdict="([^"]+)"', text)
            check(len(rows) == 8, f"{where}: claims table has 8 rows (1a, 1b, 2-7), got {len(rows)}")
            check(all(v in ("supported", "not supported", "not testable here") for v in rows),
                  f"{where}: verdicts from the fixed set: {rows}")
        elif name != "overview":
            check("data:image/png;base64," in text, f"{where}: section {name} has a figure")
            check("not testable here" not in text, f"{where}: section {name} is tested on the planted study")


def test_planted(curvnet, tmp):
    study = os.path.join(tmp, "planted")
    gen = subprocess.run([python_exe(), os.path.join(HERE, "planted_study.py"), study, "--runs", "100",
                          "--checkpoints", "10"], capture_output=True, text=True)
    check(gen.returncode == 0, f"planted study written: {gen.stderr}")
    if failures:
        return
    planted = json.loads(gen.stdout)  # the generator prints the values it planted
    R1, R2 = planted["cancorr"]
    res = analyze(curvnet, study)
    check(res.returncode == 0, f"analyze exit 0: {res.stderr[-2000:]}")
    out = os.path.join(study, "analysis")
    for name in ("report.html", "snapshots.csv", "runs.csv", "correlations.csv", "cca.csv", "cca_scores.csv",
                 "cca_loadings.csv", "normality.csv", "embedding.csv", "phases.csv", "phases_summary.csv",
                 "dynamics.csv", "claims.csv", "claims_rows.csv", "skipped.csv"):
        check(os.path.exists(os.path.join(out, name)), f"{name} written")
    if failures:
        return
    runs = read_csv(os.path.join(out, "runs.csv"))
    n = len(runs)
    check(n == 100, f"100 runs analysed (the failed grid point skipped), got {n}")
    skipped = read_csv(os.path.join(out, "skipped.csv"))
    check(len(skipped) == 1 and "failed" in skipped[0]["reason"], f"the failed point is listed: {skipped}")

    # Pearson over runs: within 3 standard errors of the planted value on Fisher's z scale.
    tol = 3 / math.sqrt(n - 3)
    corr = {(r["feature"], r["metric"]): r for r in read_csv(os.path.join(out, "correlations.csv"))}
    pairs = [((p["feature"], p["metric"]), p["r"]) for p in planted["pearson"]]
    check(pairs[0][1] == R1 and pairs[1][1] == R2, "the generator's pairs carry the canonical correlations")
    for (f, m), rho in pairs + [(("loss.symmetry", "val_loss"), 0.0), (("loss.log_std", "val_accuracy"), 0.0)]:
        row = corr.get((f, m))
        check(row is not None, f"correlation {f} ~ {m} reported")
        if row:
            r = float(row["pearson_r"])
            check(abs(fisher_z(r) - fisher_z(rho)) <= tol, f"Pearson {f} ~ {m}: {r:.3f}, planted {rho} (±z {tol:.3f})")
            if rho != 0:
                check(float(row["pearson_p"]) < 0.05, f"Pearson {f} ~ {m} significant: p {row['pearson_p']}")

    # Canonical correlations: the two planted ones, each within 3 standard errors of
    # Fisher's z with the columns' degrees of freedom taken off n.
    cca = read_csv(os.path.join(out, "cca.csv"))
    loadings = read_csv(os.path.join(out, "cca_loadings.csv"))
    p = sum(r["block"] == "spectral" for r in loadings)
    q = sum(r["block"] == "quality" for r in loadings)
    tol_cc = 3 / math.sqrt(n - 3 - p - q)
    check(len(cca) >= 2, f"at least two canonical correlations, got {len(cca)}")
    if len(cca) >= 2:
        for k, rho in enumerate((R1, R2)):
            r = float(cca[k]["canonical_corr"])
            check(abs(fisher_z(r) - fisher_z(rho)) <= tol_cc,
                  f"canonical correlation {k + 1}: {r:.3f}, planted {rho} (±z {tol_cc:.3f}, p {p}, q {q})")
        check(float(cca[0]["p_value"]) < 1e-6, f"Wilks' test rejects 'no canonical correlation': {cca[0]['p_value']}")
    # Claims: every test's rows are written, one per run it used.
    claims = read_csv(os.path.join(out, "claims.csv"))
    used = read_csv(os.path.join(out, "claims_rows.csv"))
    for c in claims:
        k = sum(r["claim"] == c["claim"] for r in used)
        expect = int(float(c["n"])) if c["verdict"] != "not testable here" else 0
        check(k == expect, f"claim {c['claim']}: {k} rows written for n = {c['n']}")
    # Claim 4 on the planted data: log std rises with the validation loss (and so with the gap):
    # the claim predicts the opposite sign, so "not supported".
    c4 = next(c for c in claims if c["claim"] == "4")
    check(c4["verdict"] == "not supported" and float(c4["value"]) > 0, f"claim 4 judged on the planted sign: {c4}")

    with open(os.path.join(out, "report.html"), encoding="utf-8") as f:
        check_html(f.read(), "report.html")
    browser = chromium()
    if not browser:
        print("SKIP (part): no headless Chromium installed (apt-get install chromium): the DOM check is skipped")
        return
    dom = subprocess.run(
        ["timeout", "180", browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         f"--user-data-dir={tmp}/chromium-profile", "--dump-dom", "file://" + os.path.join(out, "report.html")],
        capture_output=True, text=True)
    check(dom.returncode == 0 and "</html>" in dom.stdout, f"Chromium parsed the report (rc {dom.returncode})")
    check_html(dom.stdout, "Chromium DOM")


def test_bad(curvnet, tmp):
    res = analyze(curvnet, os.path.join(tmp, "absent"))
    check(res.returncode == 2 and "absent: not a directory" in res.stderr, f"absent dir: {res.returncode} {res.stderr}")
    study = os.path.join(tmp, "study")
    os.makedirs(study)
    res = analyze(curvnet, study)
    check(res.returncode == 2 and "index.jsonl: no such file" in res.stderr, f"no index: {res.stderr}")
    index = os.path.join(study, "index.jsonl")
    good = '{"index": 0, "point": {"data.dataset": "iris"}, "status": "done", "run_dir": "r0", "wall_s": 1}\n'
    for bad, what in (('{"index": 1, "point": {}, "status": "done"\n', "not a JSON object"),
                      ('{"index": 1, "point": {}, "status": "done"}\n', 'missing key "run_dir"'),
                      ('{"index": "1", "point": {}, "status": "done", "run_dir": "r1"}\n', '"index" must be an integer'),
                      ('{"index": 1, "point": {}, "status": "ok", "run_dir": "r1"}\n', '"status" must be'),
                      ('[1, 2]\n', "expected a JSON object")):
        with open(index, "w") as f:
            f.write(good + bad)
        res = analyze(curvnet, study)
        lines = res.stderr.strip().splitlines()
        check(res.returncode == 2 and len(lines) == 1 and f"{index}:2: " in lines[0] and what in lines[0],
              f"malformed row ({what}): rc {res.returncode}, {res.stderr!r}")
    # A study with one unreadable run: a report whose tests say "not testable here".
    with open(index, "w") as f:
        f.write(good)
    res = analyze(curvnet, study)
    check(res.returncode == 0, f"a study without readable runs still gives a report: {res.stderr}")
    report = os.path.join(study, "analysis", "report.html")
    if os.path.exists(report):
        with open(report, encoding="utf-8") as f:
            html = f.read()
        for name in ("correlations", "cca", "normality", "embedding", "phases"):
            check("not testable here" in section_text(html, name), f"empty study: {name} says not testable")
        check(html.count('<td class="verdict" data-verdict="not testable here"') == 8,
              "empty study: every claim not testable")
    # Missing libraries: a package that fails to import stands in for an absent statsmodels.
    shadow = os.path.join(tmp, "shadow", "statsmodels")
    os.makedirs(shadow)
    with open(os.path.join(shadow, "__init__.py"), "w") as f:
        f.write("raise ImportError('statsmodels is not installed')\n")
    res = analyze(curvnet, study, {"PYTHONPATH": os.path.dirname(shadow)})
    lines = res.stderr.strip().splitlines()
    check(res.returncode == 2 and len(lines) == 1 and "statsmodels" in lines[0] and "scripts/setup-study" in lines[0],
          f"missing library: rc {res.returncode}, {res.stderr!r}")
    res = analyze(curvnet, study, {"CURVNET_PYTHON": os.path.join(tmp, "no-python")})
    check(res.returncode == 2 and "scripts/setup-study" in res.stderr, f"no interpreter: {res.stderr!r}")
    # Without the optional umap-learn: the embedding section says so and shows PCA alone; a
    # study of 6 runs is too small for the tests across runs, which say so too.
    small = os.path.join(tmp, "small")
    gen = subprocess.run([python_exe(), os.path.join(HERE, "planted_study.py"), small, "--runs", "6",
                          "--checkpoints", "4"], capture_output=True, text=True)
    check(gen.returncode == 0, f"small planted study written: {gen.stderr}")
    no_umap = os.path.join(tmp, "no-umap", "umap")
    os.makedirs(no_umap)
    with open(os.path.join(no_umap, "__init__.py"), "w") as f:
        f.write("raise ImportError('umap-learn is not installed')\n")
    res = analyze(curvnet, small, {"PYTHONPATH": os.path.dirname(no_umap)})
    check(res.returncode == 0, f"a study without umap-learn: {res.stderr[-2000:]}")
    report = os.path.join(small, "analysis", "report.html")
    if os.path.exists(report):
        with open(report, encoding="utf-8") as f:
            html = f.read()
        emb = section_text(html, "embedding")
        check('data-umap="missing"' in emb and "data:image/png;base64," in emb, "no umap: PCA alone, and said so")
        for name in ("cca", "claims"):
            check("not testable here" in section_text(html, name), f"6 runs: {name} says not testable")
        check("data:image/png;base64," in section_text(html, "dynamics"), "6 runs: dynamics still drawn")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--curvnet", required=True)
    ap.add_argument("which", choices=["planted", "bad"])
    a = ap.parse_args()
    if not analysis_python_ready():
        print(f"SKIP: {python_exe()} lacks the analysis libraries (run scripts/setup-study or set CURVNET_PYTHON)")
        return SKIP
    with tempfile.TemporaryDirectory() as tmp:
        (test_planted if a.which == "planted" else test_bad)(os.path.abspath(a.curvnet), tmp)
    if failures:
        print(f"{len(failures)} checks failed")
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
