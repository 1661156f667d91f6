"""The library's shape: modules and their lines, the longest functions, the size of the notebooks' export cells.

    python tools/code_stats.py [--json reports/code_stats.json] [--top 12]

Lines are physical lines of `plant_disease/**/*.py` (without the generated `_modidx.py`); a function's length runs
from its `def` (decorators included) to its last line; an export cell is a `#| export` / `#| exports` cell of `nbs/`.
"""

from __future__ import annotations

import argparse
import ast
import json
import statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def modules(pkg: Path = ROOT / "plant_disease") -> dict[str, int]:
    "Each module's dotted name and its number of lines, longest first."
    sizes = {
        ".".join(p.relative_to(pkg.parent).with_suffix("").parts): len(p.read_text().splitlines())
        for p in pkg.rglob("*.py")
        if p.name != "_modidx.py" and "__pycache__" not in p.parts
    }
    return dict(sorted(sizes.items(), key=lambda kv: -kv[1]))


def functions(pkg: Path = ROOT / "plant_disease") -> list[tuple[str, int]]:
    "Every function and method as (`module:Qual.name`, lines), longest first."
    out = []
    for p in pkg.rglob("*.py"):
        if p.name == "_modidx.py" or "__pycache__" in p.parts:
            continue
        mod = ".".join(p.relative_to(pkg.parent).with_suffix("").parts)

        def walk(node, prefix=""):
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                    start = min([child.lineno] + [d.lineno for d in child.decorator_list])
                    out.append((f"{mod}:{prefix}{child.name}", child.end_lineno - start + 1))
                    walk(child, f"{prefix}{child.name}.")
                elif isinstance(child, ast.ClassDef):
                    walk(child, f"{prefix}{child.name}.")

        walk(ast.parse(p.read_text()))
    return sorted(out, key=lambda kv: -kv[1])


def export_cells(nbs: Path = ROOT / "nbs") -> list[int]:
    "The number of lines of every export cell of the source notebooks."
    sizes = []
    for nb in sorted(nbs.glob("*.ipynb")):
        for cell in json.loads(nb.read_text())["cells"]:
            src = "".join(cell["source"])
            if cell["cell_type"] == "code" and src.lstrip().startswith(("#| export", "#|export")):
                sizes.append(len(src.splitlines()))
    return sizes


def stats(top: int = 12) -> dict:
    mods, funcs, cells = modules(), functions(), export_cells()
    return {
        "modules": len(mods),
        "lines": sum(mods.values()),
        "modules_over_400_lines": {m: n for m, n in mods.items() if n > 400},
        "largest_modules": dict(list(mods.items())[:top]),
        "functions_over_60_lines": dict(f for f in funcs if f[1] > 60),
        "longest_functions": dict(funcs[:top]),
        "export_cells": len(cells),
        "export_cell_lines_median": statistics.median(cells),
        "export_cell_lines_largest": max(cells),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", type=Path, help="also write the figures to this file")
    ap.add_argument("--top", type=int, default=12)
    a = ap.parse_args(argv)
    s = stats(a.top)
    print(f"{s['modules']} modules, {s['lines']} lines; over 400 lines: {s['modules_over_400_lines'] or 'none'}")
    print("longest functions:", ", ".join(f"{k} {v}" for k, v in s["longest_functions"].items()))
    print(
        f"{s['export_cells']} export cells: median {s['export_cell_lines_median']} lines, "
        f"largest {s['export_cell_lines_largest']}"
    )
    if a.json:
        a.json.write_text(json.dumps(s, indent=1) + "\n")


if __name__ == "__main__":
    main()
