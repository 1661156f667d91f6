"""The README's and its docs pages' commands and the code they call cannot drift apart: every `plant-disease ...` line
parses with the CLI's own parser (and its `--set`/`-S` keys validate against the parameter schema), every `make`
target exists, every path named in backquotes is in the checkout and every link points at a file that is. The README
fits on one screen above its table of docs pages, and that table lists every page. Nothing here runs a command."""

import re
import shlex
from pathlib import Path

import pytest

from plant_disease import cli
from plant_disease.config import load_params, parse_overrides

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
PAGES = {p: p.read_text() for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]}
ALL = "\n".join(PAGES.values())


def shell_blocks(text: str) -> list[str]:
    "The README's ```bash blocks, with backslash continuations joined."
    return [b.replace("\\\n", " ") for b in re.findall(r"```bash\n(.*?)```", text, flags=re.S)]


def commands(text: str) -> list[list[str]]:
    "Every simple command of the shell blocks as argv (comments dropped; `&&`, `||`, `;`, `|` split; env prefixes off)."
    out = []
    for block in shell_blocks(text):
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            cmd: list[str] = []
            for w in [*words, ";"]:
                if w in ("&&", "||", ";", "|", "&"):
                    while cmd and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", cmd[0]):
                        cmd.pop(0)  # VAR=value prefixes
                    if cmd:
                        out.append(cmd)
                    cmd = []
                else:
                    cmd.append(w)
    return out


CMDS = commands(ALL)
CLI = [c for c in CMDS if c[0] == "plant-disease"]


def test_commands_found():
    "The parser below sees the README's commands (a change of fences or wording would otherwise skip them all)."
    assert len(CLI) >= 8, CLI
    assert any(c[:2] == ["dvc", "repro"] for c in CMDS)
    assert ["make", "run"] in commands(README) and ["make", "test"] in commands(README)


def test_readme_is_one_screen_over_its_docs():
    "What the project is, the two commands and the figures fit on one screen; then the table of every docs page."
    head = README[: README.index("| read | for |")]
    assert len(head.splitlines()) <= 45, len(head.splitlines())
    listed = set(re.findall(r"\]\((docs/[\w.-]+\.md)\)", README))
    assert listed == {f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")}, listed


@pytest.mark.parametrize("argv", CLI, ids=[" ".join(c[1:3]) for c in CLI])
def test_plant_disease_lines_parse(argv):
    "Each `plant-disease` line parses with the CLI's parser, and its profiles and `--set` keys are valid parameters."
    try:
        args = cli.build_parser().parse_args(argv[1:])
    except SystemExit as e:
        pytest.fail(f"README line does not parse: {shlex.join(argv)} (argparse exit {e.code})")
    load_params(None, getattr(args, "profile", None), parse_overrides(getattr(args, "overrides", None)))


def test_dvc_set_keys_are_parameters():
    "`dvc exp run -S key=value` lines name real parameters (`++` adds a key the profile decides)."
    sets = [c[i + 1] for c in CMDS if c[:3] == ["dvc", "exp", "run"] for i, w in enumerate(c) if w == "-S"]
    assert sets
    for s in sets:
        key, value = s.lstrip("+").split("=", 1)
        if key == "profile":
            load_params(None, value.strip("[]"))
        else:
            load_params(None, None, parse_overrides([f"{key}={value}"]))


def test_make_targets_exist():
    targets = set(re.findall(r"^([a-z][a-z-]*):", (ROOT / "Makefile").read_text(), flags=re.M))
    used = {c[1] for c in CMDS if c[0] == "make" and len(c) > 1}
    assert used and used <= targets, used - targets


def test_named_paths_exist():
    """Source paths the pages name in backquotes (under nbs/, app/, plant_disease/, tests/, bench/, deploy/, ...) exist
    from the checkout's root, and their relative links from the page's folder (anchors aside)."""
    sources = ("nbs/", "app/", "plant_disease/", "tests/", "bench/", "deploy/", "tools/", ".ci/")
    missing, n = [], 0
    for page, text in PAGES.items():
        named = {p for p in re.findall(r"`((?:[\w.-]+/)+[\w.*-]*)`", text) if p.startswith(sources)}
        named |= {p for p in re.findall(r"`(reports/[\w./-]+\.md)`", text)}
        links = {p.split("#")[0] for p in re.findall(r"\]\(([^)\s#][^)\s]*)\)", text) if not p.startswith("http")}
        n += len(named) + len(links)
        missing += [f"{page.name}: {p}" for p in named if not any(ROOT.glob(p))]
        missing += [f"{page.name}: link {p}" for p in links if not (page.parent / p).exists()]
    assert n > 10
    assert not missing, f"the README and docs name paths that are not in the checkout: {sorted(missing)}"
