"""The library keeps one concept per module: no module of `plant_disease/` over about 400 lines, and no function over
about 60 without a stated reason (a `# why so long:` comment in its body). The figures and the walk over the code are
`tools/code_stats.py`'s."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 420, 60

spec = importlib.util.spec_from_file_location("code_stats", ROOT / "tools" / "code_stats.py")
code_stats = importlib.util.module_from_spec(spec)
spec.loader.exec_module(code_stats)


def test_modules_hold_one_concept():
    sizes = code_stats.modules()
    assert len(sizes) > 40 and sum(sizes.values()) > 5000  # the walk found the library
    big = {m: n for m, n in sizes.items() if n > MAX_MODULE_LINES}
    assert not big, f"split these modules (one concept each, under about 400 lines): {big}"


def test_long_functions_say_why():
    funcs = code_stats.functions()
    assert len(funcs) > 200
    unexplained = [f"{f} ({n} lines)" for f, n, why in funcs if n > MAX_FUNCTION_LINES and not why]
    assert not unexplained, f"over {MAX_FUNCTION_LINES} lines with no `{code_stats.REASON}` comment: {unexplained}"


def test_the_check_sees_long_functions_and_reasons():
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    text = (
        f"def short():\n    return 1\n\n"
        f"class C:\n    def long(self):\n{body.replace('    ', '        ')}\n\n"
        f"def explained():\n    {code_stats.REASON} one table, row by row\n{body}\n"
    )
    assert code_stats.module_functions(text, "m") == [
        ("m:short", 2, False),
        ("m:C.long", MAX_FUNCTION_LINES + 1, False),
        ("m:explained", MAX_FUNCTION_LINES + 2, True),
    ]
