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
    "apps": {"core", "config", "kernels", "layers", "optim", "data", "diagnostics", "io", "train", "apps"},
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


def strip_code(text):
    """The text with comments, string and character literals blanked (newlines kept)."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i)); i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append("".join(ch if ch == "\n" else " " for ch in text[i:j])); i = j
        elif text.startswith('R"', i):
            k = text.find("(", i)
            delim = ")" + text[i + 2:k] + '"'
            j = text.find(delim, k)
            j = n if j < 0 else j + len(delim)
            out.append("".join(ch if ch == "\n" else " " for ch in text[i:j])); i = j
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(" " * (min(j + 1, n) - i)); i = j + 1
        else:
            out.append(c); i += 1
    return "".join(out)


def function_lengths(text):
    """(first line, length) of every function body opened outside any other function: from the
    first line of its declaration to its closing brace, lambdas and local classes included."""
    code = strip_code(text)
    stack = []  # per open brace: True when it opens a function body at namespace or class level
    decl_start = 0  # offset after the last statement or block end outside function bodies
    for i, c in enumerate(code):
        if c == "{":
            in_function = any(stack)
            head = code[decl_start:i]
            is_function = (not in_function and ")" in head and "=" not in head.split(")")[-1] and
                           not re.search(r"\b(namespace|class|struct|enum|union)\b[^()]*$", head))
            if is_function:
                first = code.count("\n", 0, decl_start + len(head) - len(head.lstrip())) + 1
                stack.append((first,))
            else:
                stack.append(False)
            if not in_function and not is_function:
                decl_start = i + 1
        elif c == "}":
            top = stack.pop() if stack else False
            if top:
                last = code.count("\n", 0, i) + 1
                yield top[0], last - top[0] + 1
            if not any(stack):
                decl_start = i + 1
        elif c == ";" and not any(stack):
            decl_start = i + 1
        elif c == "#" and not any(stack) and (i == 0 or code[i - 1] == "\n"):
            j = code.find("\n", i)  # a preprocessor line ends any declaration before it
            decl_start = len(code) if j < 0 else j + 1


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
            for first, length in function_lengths(text):
                if length > TRAIN_FUNCTION_MAX_LINES:
                    problems.append(f"{rel}:{first}: a function of {length} lines (at most {TRAIN_FUNCTION_MAX_LINES})")
    for p in problems:
        print(p)
    print(f"check_architecture: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
