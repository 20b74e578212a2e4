"""The shape of the code at a git revision: lines per package, modules over 500 lines, and the
longest functions (the redesign issue's before/after figures).

    python benchmarks/code_shape.py [REV]      (default HEAD; run in the repository)
"""

from __future__ import annotations

import ast
import collections
import subprocess
import sys


def main() -> None:
    rev = sys.argv[1] if len(sys.argv) > 1 else "HEAD"
    files = subprocess.run(
        ["git", "ls-tree", "-r", "--name-only", rev, "src/cranerec"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    packages: collections.Counter[str] = collections.Counter()
    functions, long_modules = [], []
    for path in (f for f in files if f.endswith(".py")):
        source = subprocess.run(
            ["git", "show", f"{rev}:{path}"], capture_output=True, text=True, check=True
        ).stdout
        n = len(source.splitlines())
        packages[path.split("/")[2]] += n
        if n > 500:
            long_modules.append((n, path))
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                name = f"{path.removeprefix('src/cranerec/')}:{node.name}"
                functions.append((node.end_lineno - node.lineno + 1, name))
    print(f"revision {rev}")
    print("lines per package: " + ", ".join(f"{k} {v}" for k, v in packages.most_common())
          + f" | total {sum(packages.values())}")  # fmt: skip
    print(f"modules over 500 lines: {sorted(long_modules, reverse=True) or 'none'}")
    print("longest functions: " + "; ".join(f"{n} {f}" for n, f in sorted(functions)[::-1][:8]))


if __name__ == "__main__":
    main()
