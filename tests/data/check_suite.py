#!/usr/bin/env python3
"""The packaged data suite against an independent read of the packaged files.

For every set of `curvnet datasets --json --load`, reads the same file with pandas (CSV,
JSON), a small ARFF parser of its own (cross-checked with scipy.io.arff where scipy reads
the file) or the sklearn loaders, applies the rules of docs/datasets.md "Tables" (rows with a
missing target or numeric feature dropped; one 0/1 column per nominal level present, plus
"?" when a nominal value is missing) and compares rows, width, classes and the sums of the
features and targets with what curvnet loaded, and with the shape `curvnet datasets` states.
Rows in each file and class counts are also compared with published counts (PUBLISHED
below: the UCI repository's and the packages' own descriptions).

Usage: check_suite.py CURVNET SOURCE_DIR. Exit 0 pass, 1 fail, 77 skip (with the reason).
"""
import json
import math
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import pandas as pd
except ImportError as e:  # pragma: no cover
    print(f"SKIP: {e}")
    sys.exit(77)

WEKA = "/usr/share/doc/weka/examples"
SM = "/usr/lib/python3/dist-packages/statsmodels/datasets"
SK = "/usr/lib/python3/dist-packages/sklearn/datasets/data"
PENGUINS = "/usr/lib/R/site-library/palmerpenguins/extdata/penguins.csv"
VEGA = "/usr/lib/python3/dist-packages/vega_datasets/_data/cars.json"
MLBENCH_RDA = "/usr/lib/R/site-library/mlbench/data"

# Published counts (rows in the file, classes): the UCI repository's and the packages' own
# descriptions; independent of both curvnet and this script's reading.
PUBLISHED = {
    "iris": (150, 3), "wine": (178, 3), "breast-cancer": (569, 2), "digits": (1797, 10),
    "fashion-mnist": (70000, 10), "pima-diabetes": (768, 2), "glass": (214, 6), "ionosphere": (351, 2),
    "german-credit": (1000, 2), "image-segmentation": (2310, 7), "house-votes": (435, 2), "soybean": (683, 19),
    "breast-cancer-ljubljana": (286, 2), "unbalanced": (856, 2), "sonar": (208, 2), "vehicle": (846, 4),
    "vowel": (990, 11), "satellite": (6435, 6), "letter": (20000, 26), "shuttle": (58000, 7), "dna": (3186, 3),
    "zoo": (101, 7), "penguins": (344, 3), "anes96-vote": (944, 2), "breast-cancer-wisconsin": (699, 2),
    "affairs-any": (6366, 2), "cars-origin": (406, 3),
    "diabetes": (442, None), "linnerud": (20, None), "boston-housing": (506, None), "cpu": (209, None),
    "ozone": (366, None), "servo": (167, None), "randhie": (20190, None), "affairs": (6366, None),
    "star98": (303, None), "grunfeld": (220, None), "us-macro": (203, None), "engel": (235, None),
    "penguins-mass": (344, None), "cars-mpg": (406, None), "state-crime": (51, None), "longley": (16, None),
    "stackloss": (21, None), "ccard": (72, None), "scotvote": (32, None),
}


# ---------------------------------------------------------------- readers (independent)

def parse_arff(path):
    """(columns, frame): columns = [(name, levels or None)], frame of strings/floats (NaN missing)."""
    def split(s):
        """Cells at commas outside quotes, stripped and unquoted, and whether each was quoted."""
        cells, quoted, i = [], [], 0
        while True:
            while i < len(s) and s[i] in " \t":
                i += 1
            if i < len(s) and s[i] in "'\"":
                q, i, cur = s[i], i + 1, ""
                while s[i] != q:
                    if s[i] == "\\":
                        i += 1
                    cur += s[i]
                    i += 1
                i += 1
                while i < len(s) and s[i] != ",":
                    i += 1
                cells.append(cur), quoted.append(True)
            else:
                j = s.find(",", i)
                j = len(s) if j < 0 else j
                cells.append(s[i:j].strip()), quoted.append(False)
                i = j
            if i >= len(s):
                return cells, quoted
            i += 1

    cols, rows, in_data = [], [], False
    for raw in open(path, encoding="latin-1"):
        line = raw.strip()
        if not line or line.startswith("%"):
            continue
        if not in_data:
            low = line.lower()
            if low.startswith("@attribute"):
                rest = line[len("@attribute"):].strip()
                if rest[0] in "'\"":
                    end = rest.index(rest[0], 1)
                    name, typ = rest[1:end], rest[end + 1:].strip()
                else:
                    parts = rest.split(None, 1)
                    name, typ = parts[0], parts[1].strip()
                if typ.startswith("{"):
                    levels, _ = split(typ[1:typ.rindex("}")])
                    cols.append((name, levels))
                else:
                    cols.append((name, None))
            elif low.startswith("@data"):
                in_data = True
            continue
        cells, quoted = split(line)
        assert len(cells) == len(cols), (path, line)
        row = []
        for (name, levels), c, q in zip(cols, cells, quoted):
            if c == "?" and not q:
                row.append(np.nan if levels is None else None)
            elif levels is None:
                row.append(float(c))
            else:
                assert c in levels, (path, name, c)
                row.append(c)
        rows.append(row)
    return cols, pd.DataFrame(rows, columns=[c[0] for c in cols])


def scipy_rows(path):
    """Rows scipy.io.arff reads, or None when scipy cannot read the file."""
    try:
        from scipy.io import arff
        data, _ = arff.loadarff(path)
        return len(data)
    except Exception:
        return None


def level_order(values):
    """Sorted label values: numerically when all are numbers, else byte-wise (docs/datasets.md)."""
    vals = sorted(set(values))
    try:
        return sorted(vals, key=float)
    except ValueError:
        return sorted(vals, key=lambda s: s.encode())


def encode(df, targets, task, nominal, drop=(), declared=None, rule="column"):
    """(n, width, n_outputs, x_sum, y_sum) by the documented rules, from a pandas frame."""
    declared = declared or {}
    feats = [c for c in df.columns if c not in targets and c not in drop]
    numeric = [c for c in feats if c not in nominal]
    keep = df[targets].notna().all(axis=1)
    for c in numeric:
        keep &= df[c].notna()
    d = df[keep]
    width, x_sum = 0, 0.0
    for c in feats:
        if c in nominal:
            col = d[c].astype(object).where(d[c].notna(), None)
            present = set(v for v in col if v is not None)
            width += len(present) + (1 if col.isna().any() or any(v is None for v in col) else 0)
            x_sum += len(d)
        else:
            width += 1
            x_sum += float(d[c].astype(float).sum())
    if task == "regression":
        if rule == "share":
            y = d[targets[0]].astype(float) / d[targets[1]].astype(float)
            return len(d), width, 1, x_sum, float(y.sum())
        return len(d), width, len(targets), x_sum, float(d[targets].astype(float).values.sum())
    t = d[targets[0]]
    if rule == "positive":
        y = (t.astype(float) > 0).astype(int)
        return len(d), width, 2, x_sum, float(y.sum())
    if targets[0] in declared:
        order = [v for v in declared[targets[0]] if v in set(t)]
    else:
        order = level_order([str(v) if not isinstance(v, str) else v for v in t])
    idx = {v: i for i, v in enumerate(order)}
    y = [idx[str(v) if not isinstance(v, str) else v] for v in t]
    return len(d), width, len(order), x_sum, float(sum(y))


def arff_set(files, target, task):
    frames, cols = [], None
    for f in files:
        cols, df = parse_arff(os.path.join(WEKA, f))
        frames.append(df)
        sr = scipy_rows(os.path.join(WEKA, f))
        if sr is not None and sr != len(df):
            raise AssertionError(f"{f}: scipy reads {sr} rows, the oracle parser {len(df)}")
    df = pd.concat(frames, ignore_index=True)
    declared = {n: lv for n, lv in cols if lv is not None}
    nominal = set(declared) - {target}
    return encode(df, [target], task, nominal, declared=declared), len(df)


def oracle(name, cache):
    """(expected (n, width, outputs, x_sum, y_sum), rows in the file) for one set."""
    C, R = "classification", "regression"
    mb = lambda f: pd.read_csv(os.path.join(cache, f), keep_default_na=True, na_values=["NA"])
    sm = lambda f, **kw: pd.read_csv(os.path.join(SM, f), **kw)
    weka = {
        "pima-diabetes": (["diabetes.arff"], "class", C), "glass": (["glass.arff"], "Type", C),
        "ionosphere": (["ionosphere.arff"], "class", C), "german-credit": (["credit-g.arff"], "class", C),
        "image-segmentation": (["segment-challenge.arff", "segment-test.arff"], "class", C),
        "house-votes": (["vote.arff"], "Class", C), "soybean": (["soybean.arff"], "class", C),
        "breast-cancer-ljubljana": (["breast-cancer.arff"], "Class", C),
        "unbalanced": (["unbalanced.arff"], "Outcome", C), "cpu": (["cpu.arff"], "class", R),
    }
    if name in weka:
        return arff_set(*weka[name])
    if name in ("iris", "wine", "breast-cancer", "digits", "diabetes", "linnerud"):
        from sklearn import datasets as skd
        if name == "linnerud":
            b = skd.load_linnerud()
            return (20, 3, 3, float(b.data.sum()), float(b.target.sum())), 20
        b = {"iris": skd.load_iris, "wine": skd.load_wine, "breast-cancer": skd.load_breast_cancer,
             "digits": skd.load_digits}.get(name)
        if b:
            b = b()
            return (len(b.target), b.data.shape[1], len(set(b.target)), float(b.data.sum()),
                    float(b.target.sum())), len(b.target)
        b = skd.load_diabetes(scaled=False)
        return (442, 10, 1, float(b.data.sum()), float(b.target.sum())), 442
    if name == "fashion-mnist":
        return None, 70000
    table = {
        "sonar": lambda: (mb("Sonar.csv"), ["Class"], C, set(), ()),
        "vehicle": lambda: (mb("Vehicle.csv"), ["Class"], C, set(), ()),
        "vowel": lambda: (mb("Vowel.csv"), ["Class"], C, {"V1"}, ()),
        "satellite": lambda: (mb("Satellite.csv"), ["classes"], C, set(), ()),
        "letter": lambda: (mb("LetterRecognition.csv"), ["lettr"], C, set(), ()),
        "shuttle": lambda: (mb("Shuttle.csv"), ["Class"], C, set(), ()),
        "dna": lambda: (mb("DNA.csv"), ["Class"], C, {f"V{i}" for i in range(1, 181)}, ()),
        "zoo": lambda: (mb("Zoo.csv"), ["type"], C, set(), ()),
        "breast-cancer-wisconsin": lambda: (mb("BreastCancer.csv"), ["Class"], C, set(), ("Id",)),
        "boston-housing": lambda: (mb("BostonHousing2.csv"), ["cmedv"], R, {"chas"}, ("town", "tract", "medv", "b")),
        "ozone": lambda: (mb("Ozone.csv"), ["V4"], R, {"V1", "V2", "V3"}, ()),
        "servo": lambda: (mb("Servo.csv"), ["Class"], R, {"Motor", "Screw", "Pgain", "Vgain"}, ()),
        "penguins": lambda: (pd.read_csv(PENGUINS), ["species"], C, {"island", "sex"}, ("year",)),
        "penguins-mass": lambda: (pd.read_csv(PENGUINS), ["body_mass_g"], R, {"species", "island", "sex"}, ("year",)),
        "anes96-vote": lambda: (sm("anes96/anes96.csv", sep="\t").rename(columns=lambda c: c.strip("'")),
                                ["vote"], C, set(), ()),
        "affairs": lambda: (sm("fair/fair.csv"), ["affairs"], R, set(), ()),
        "randhie": lambda: (sm("randhie/randhie.csv"), ["mdvis"], R, set(), ()),
        "grunfeld": lambda: (sm("grunfeld/grunfeld.csv"), ["invest"], R, {"firm"}, ()),
        "us-macro": lambda: (sm("macrodata/macrodata.csv"), ["realinv"], R, set(), ()),
        "engel": lambda: (sm("engel/engel.csv"), ["foodexp"], R, set(), ()),
        "state-crime": lambda: (sm("statecrime/statecrime.csv"), ["murder"], R, set(), ("state",)),
        "longley": lambda: (sm("longley/longley.csv"), ["TOTEMP"], R, set(), ("Obs",)),
        "stackloss": lambda: (sm("stackloss/stackloss.csv"), ["STACKLOSS"], R, set(), ()),
        "ccard": lambda: (sm("ccard/ccard.csv"), ["AVGEXP"], R, set(), ()),
        "scotvote": lambda: (sm("scotland/scotvote.csv"), ["YES"], R, set(), ("COUNCILDIST",)),
        "cars-origin": lambda: (pd.read_json(VEGA), ["Origin"], C, set(), ("Name", "Year")),
        "cars-mpg": lambda: (pd.read_json(VEGA), ["Miles_per_Gallon"], R, {"Origin"}, ("Name", "Year")),
    }
    if name in table:
        df, targets, task, nominal, drop = table[name]()
        return encode(df, targets, task, nominal, drop), len(df)
    if name == "affairs-any":
        df = sm("fair/fair.csv")
        return encode(df, ["affairs"], C, set(), rule="positive"), len(df)
    if name == "star98":
        df = sm("star98/star98.csv")
        return encode(df, ["PR50M", "MATHTOT"], R, set(), rule="share"), len(df)
    raise KeyError(name)


def close(a, b):
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6)


def main():
    curvnet, source = sys.argv[1], pathlib.Path(sys.argv[2])
    failures = []
    tmp = tempfile.mkdtemp(prefix="curvnet-suite-")
    try:
        env = dict(os.environ)
        env["CURVNET_DATA_CACHE"] = tmp
        env.pop("CURVNET_DATA_ROOT", None)
        have_r = shutil.which("Rscript") and os.path.isdir(MLBENCH_RDA)
        if have_r:
            subprocess.run(["Rscript", str(source / "scripts/export-mlbench.R"), os.path.join(tmp, "mlbench")],
                           check=True)
        out = subprocess.run([curvnet, "datasets", "--json", "--load"], env=env, check=True,
                             capture_output=True, text=True).stdout
        sets = json.loads(out)
        packaged = [s for s in sets if s["packaged"]]
        n_cls = sum(s["task"] == "classification" for s in packaged)
        n_reg = sum(s["task"] == "regression" for s in packaged)
        print(f"packaged sets: {n_cls} classification, {n_reg} regression")
        if n_cls < 22 or n_reg < 15:
            failures.append(f"expected at least 22 classification and 15 regression sets, found {n_cls} + {n_reg}")
        skipped = []
        for s in packaged:
            name = s["name"]
            if set(s) < {"name", "task", "n_samples", "n_features", "n_classes", "available", "source"}:
                failures.append(f"{name}: missing contract fields in {sorted(s)}")
            if (s["task"] == "regression") != (s["n_classes"] is None):
                failures.append(f"{name}: n_classes {s['n_classes']} for task {s['task']}")
            if not s["available"]:
                skipped.append(f"{name} ({s['install']})")
                continue
            got = s["loaded"]
            stated = (s["n_samples"], s["n_features"], s["n_outputs"])
            if (got["n_samples"], got["n_features"], got["n_outputs"]) != stated:
                failures.append(f"{name}: loaded {got['n_samples']} x {got['n_features']}, {got['n_outputs']} "
                                f"outputs; `curvnet datasets` states {stated}")
            mlb = os.path.join(tmp, "mlbench")
            expected, file_rows = oracle(name, mlb)
            rows_pub, classes_pub = PUBLISHED[name]
            if file_rows != rows_pub:
                failures.append(f"{name}: the file has {file_rows} rows, published {rows_pub}")
            if classes_pub is not None and got["n_outputs"] != classes_pub:
                failures.append(f"{name}: {got['n_outputs']} classes, published {classes_pub}")
            if expected is None:
                continue
            n, w, k, xs, ys = expected
            if (got["n_samples"], got["n_features"], got["n_outputs"]) != (n, w, k):
                failures.append(f"{name}: loaded {got['n_samples']} x {got['n_features']}, {got['n_outputs']} "
                                f"outputs; the independent read gives {n} x {w}, {k}")
            if not close(got["x_sum"], xs) or not close(got["y_sum"], ys):
                failures.append(f"{name}: sums x {got['x_sum']} y {got['y_sum']}; the independent read gives "
                                f"x {xs} y {ys}")
        for s in skipped:
            print(f"not installed here: {s}")
        # Weka's files live under usr/share/doc, which images may exclude from dpkg.
        weka_installed = subprocess.run(["dpkg", "-s", "weka"], capture_output=True).returncode == 0
        if weka_installed and not os.path.isdir(WEKA):
            failures.append(f"weka is installed but {WEKA} is missing (dpkg path-exclude of /usr/share/doc?)")
        if skipped and len(skipped) == len(packaged):
            print("SKIP: no packaged data set is installed")
            return 77
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for f in failures:
        print("FAIL:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
