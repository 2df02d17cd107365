#!/usr/bin/env python3
"""The folder rules of docs/design.md §1, checked on the source tree.

- each folder includes only from the folders it may depend on (ALLOWED);
- no class in layers/ befriends another class (diagnostics read layers through public virtuals);
- no code outside layers/ casts to a concrete layer or switches on a layer's type name;
- train/: trainer.cpp stays under 550 lines and no function is longer than 120 lines.

Usage: check_architecture.py SOURCE_DIR. Prints one line per violation; exit 1 if any.
"""
import pathlib
import re
import sys

ALLOWED = {
    "core": {"core"},
    "config": {"core", "config"},
    "kernels": {"core", "config", "kernels"},
    "layers": {"core", "config", "kernels", "layers"},
    "optim": {"core", "config", "kernels", "optim"},
    "data": {"core", "config", "data"},
    "diagnostics": {"core", "config", "kernels", "layers", "optim", "io", "diagnostics"},
    "io": {"core", "config", "io"},
    "train": {"core", "config", "kernels", "layers", "optim", "data", "diagnostics", "io", "train"},
    "apps": {"core", "config", "kernels", "layers", "optim", "data", "diagnostics", "io", "train"},
}
SOURCE_SUFFIXES = {".h", ".cpp", ".cu", ".cuh"}
CONCRETE_LAYERS = ("Linear", "Activation", "BatchNorm", "Dropout")
TRAINER_MAX_LINES = 550
TRAIN_FUNCTION_MAX_LINES = 120

INCLUDE = re.compile(r'^\s*#\s*include\s+"([a-z_]+)/')
CAST = re.compile(r"dynamic_cast<\s*(const\s+)?(%s)\s*<" % "|".join(CONCRETE_LAYERS))
TYPE_SWITCH = re.compile(r"\btype\(\)\s*[!=]=")
FRIEND = re.compile(r"^\s*friend\s+(class|struct)\b")


def sources(root):
    for folder in ALLOWED:
        base = root / folder
        if base.is_dir():
            for path in sorted(base.rglob("*")):
                if path.suffix in SOURCE_SUFFIXES:
                    yield folder, path


def function_lengths(lines):
    """(first line, length) of every function defined at namespace level: the style puts such a
    definition's closing brace, and nothing else at namespace level, in column 0."""
    start = None
    for i, line in enumerate(lines):
        if start is None:
            if line and not line[0].isspace() and line.rstrip().endswith("{") and "(" in line and not line.startswith(
                    ("namespace", "struct", "class", "enum", "union", "extern", "#")):
                start = i
        elif line.startswith("}"):
            yield start + 1, i - start + 1
            start = None


def main():
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
    problems = []
    for folder, path in sources(root):
        rel = path.relative_to(root)
        text = path.read_text(encoding="utf-8", errors="replace")
        lines = text.split("\n")
        for n, line in enumerate(lines, 1):
            m = INCLUDE.match(line)
            if m and m.group(1) in ALLOWED and m.group(1) not in ALLOWED[folder]:
                problems.append(f"{rel}:{n}: {folder}/ must not include {m.group(1)}/ (docs/design.md §1)")
            if folder == "layers" and FRIEND.match(line):
                problems.append(f"{rel}:{n}: a friend in layers/: expose what is needed as a public virtual")
            if folder != "layers" and CAST.search(line):
                problems.append(f"{rel}:{n}: a cast to a concrete layer outside layers/: use a Layer virtual")
            if folder != "layers" and TYPE_SWITCH.search(line):
                problems.append(f"{rel}:{n}: a switch on a layer's type name outside layers/: use kind()")
        if folder == "train":
            if path.name == "trainer.cpp" and len(lines) > TRAINER_MAX_LINES:
                problems.append(f"{rel}: {len(lines)} lines (at most {TRAINER_MAX_LINES})")
            for first, length in function_lengths(lines):
                if length > TRAIN_FUNCTION_MAX_LINES:
                    problems.append(f"{rel}:{first}: a function of {length} lines (at most {TRAIN_FUNCTION_MAX_LINES})")
    for p in problems:
        print(p)
    print(f"check_architecture: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
