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
        for p in _library_files(pkg)
    }
    return dict(sorted(sizes.items(), key=lambda kv: -kv[1]))


REASON = "# why so long:"  # the comment that states why a function is over 60 lines


def _library_files(pkg: Path):
    return [p for p in sorted(pkg.rglob("*.py")) if p.name != "_modidx.py" and "__pycache__" not in p.parts]


def module_functions(text: str, mod: str = "") -> list[tuple[str, int, bool]]:
    "Every function and method of module source `text` as (`mod:Qual.name`, lines, states a `REASON`)."
    out = []

    def walk(node, prefix=""):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                start = min([child.lineno] + [d.lineno for d in child.decorator_list])
                body = "\n".join(text.splitlines()[child.lineno - 1 : child.end_lineno])
                out.append((f"{mod}:{prefix}{child.name}", child.end_lineno - start + 1, REASON in body))
                walk(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                walk(child, f"{prefix}{child.name}.")

    walk(ast.parse(text))
    return out


def functions(pkg: Path = ROOT / "plant_disease") -> list[tuple[str, int, bool]]:
    "Every function and method of the library as (`module:Qual.name`, lines, states a reason), longest first."
    out = []
    for p in _library_files(pkg):
        out += module_functions(p.read_text(), ".".join(p.relative_to(pkg.parent).with_suffix("").parts))
    return sorted(out, key=lambda f: -f[1])


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
        "functions_over_60_lines": {f: n for f, n, _ in funcs if n > 60},
        "functions_over_60_lines_without_reason": [f for f, n, why in funcs if n > 60 and not why],
        "longest_functions": {f: n for f, n, _ in funcs[:top]},
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
