"""The library keeps one concept per module: no module of `plant_disease/` over about 400 lines, and no function over
about 60 without a stated reason (a `# why so long:` comment in its body). `tools/code_stats.py` prints the figures."""

import ast
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_MODULE_LINES, MAX_FUNCTION_LINES, REASON = 420, 60, "# why so long:"

spec = importlib.util.spec_from_file_location("code_stats", ROOT / "tools" / "code_stats.py")
code_stats = importlib.util.module_from_spec(spec)
spec.loader.exec_module(code_stats)


def test_modules_hold_one_concept():
    sizes = code_stats.modules()
    assert len(sizes) > 40 and sum(sizes.values()) > 5000  # the walk found the library
    big = {m: n for m, n in sizes.items() if n > MAX_MODULE_LINES}
    assert not big, f"split these modules (one concept each, under about 400 lines): {big}"


def long_without_reason(text: str, name: str = "") -> list[str]:
    "The functions of module source `text` over the limit whose body has no `# why so long:` comment."
    out = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            src = ast.get_source_segment(text, node)
            if len(src.splitlines()) > MAX_FUNCTION_LINES and REASON not in src:
                out.append(f"{name}:{node.name} ({len(src.splitlines())} lines)")
    return out


def test_long_functions_say_why():
    files = [p for p in (ROOT / "plant_disease").rglob("*.py") if p.name != "_modidx.py"]
    assert len(files) > 40
    unexplained = [f for p in files for f in long_without_reason(p.read_text(), p.stem)]
    assert not unexplained, f"over {MAX_FUNCTION_LINES} lines with no `{REASON}` comment: {unexplained}"


def test_the_check_sees_long_functions_and_reasons():
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    text = (
        f"def short():\n    return 1\n\n"
        f"class C:\n    def long(self):\n{body.replace('    ', '        ')}\n\n"
        f"def explained():\n    {REASON} one table, row by row\n{body}\n"
    )
    assert long_without_reason(text, "m") == [f"m:long ({MAX_FUNCTION_LINES + 1} lines)"]
