"""The study analysis behind `curvnet analyze DIR` (docs/analysis.md).

Reads a study directory (DIR/index.jsonl and one run directory per grid point, docs/design.md
§5 "Run directory"), builds one table of snapshots (run × curvature checkpoint) and one of
runs, and writes DIR/analysis/report.html with its tables as CSV beside it.
"""


class InputError(Exception):
    """Bad input: one line naming the file (and line) and what was expected; exit status 2."""
