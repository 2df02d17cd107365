"""DIR/index.jsonl, checked row by row (docs/analysis.md §1); standard library only, so a bad
study directory is reported before the analysis libraries load."""
import json
import os

from . import InputError


def read_index(study_dir):
    """DIR/index.jsonl as a list of dicts; a malformed row is an InputError naming file and line."""
    path = os.path.join(study_dir, "index.jsonl")
    if not os.path.isdir(study_dir):
        raise InputError(f"{study_dir}: not a directory (expected a study directory holding index.jsonl)")
    if not os.path.isfile(path):
        raise InputError(f"{path}: no such file (expected the study's index, written by curvnet sweep)")
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(f"{path}:{n}: not a JSON object ({e.msg})") from None
            if not isinstance(row, dict):
                raise InputError(f"{path}:{n}: expected a JSON object, got {type(row).__name__}")
            for key, kind, what in (("index", int, "an integer"), ("point", dict, "an object"),
                                    ("status", str, "a string"), ("run_dir", str, "a string")):
                if key not in row:
                    raise InputError(f"{path}:{n}: missing key \"{key}\"")
                if not isinstance(row[key], kind) or isinstance(row[key], bool):
                    raise InputError(f"{path}:{n}: \"{key}\" must be {what}")
            if row["status"] not in ("done", "failed", "pending", "running"):
                raise InputError(f"{path}:{n}: \"status\" must be done | failed | pending | running, "
                                 f"got \"{row['status']}\"")
            row["_line"] = n
            rows.append(row)
    if not rows:
        raise InputError(f"{path}: no rows (expected one JSON object per grid point)")
    return rows
